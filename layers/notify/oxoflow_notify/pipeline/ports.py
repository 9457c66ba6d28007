"""What the pipeline asks of the services behind it, as small protocols the pipeline owns.

The pipeline's modules depend on these (and on the store protocols beside their own rules:
``handoff.HandoffLog``, ``ledger.Ledger``, ``windows.WindowStore``, ``pacing.Pacer``), never on
``aws``: the SQS, S3, DynamoDB and Parameters adapters in ``aws/`` implement them, and the
composition root (``wiring``) hands them in. So the imports follow the data path, and a test can
hand in memory instead of AWS.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from oxoflow_notify.config import Config, Webhook
    from oxoflow_notify.errors import ConfigError

SQS_MAX_DELAY = 900  # seconds: the longest a queue holds a message back (SQS refuses longer DelaySeconds)


class MessageQueue(Protocol):
    """The retry queue or the dead-letter queue: a message, sent at most ``SQS_MAX_DELAY`` late."""

    def send(self, message: dict[str, Any], delay_seconds: int = 0) -> None: ...


class SecretReferences(Protocol):
    """``ssm:`` / ``secretsmanager:`` values, each config file's within its scope; raises
    ``errors.ReferenceProblem`` (``permanent`` when waiting cannot help)."""

    def resolve(self, reference: str) -> str: ...

    def webhook(self, webhook: Webhook) -> Webhook: ...

    def publish_keys(self, keys: tuple[str, ...], source: str) -> tuple[str, ...]: ...


class ConfigSource(Protocol):
    """The ``.oxoflow`` files: a workflow's own and ``_default``, parsed (or why one is unusable)."""

    def load(self, key: str) -> Config | ConfigError | None: ...

    def configs_for(self, workflow: str) -> list[Config | ConfigError]: ...

    def key_for(self, workflow: str) -> str: ...


class LetterBodies(Protocol):
    """Where bodies too big for their queue are kept (``aws.letters``): a claim-check pointer
    (``claim_check``) in, the body it names out; ``errors.ClaimCheckError`` when it cannot be followed."""

    def resolve(self, body: str) -> str: ...


class Tuning(Protocol):
    """The function's settings the pipeline reads (``aws.settings.Settings`` has them, from the
    environment and ``defaults``)."""

    @property
    def retry_schedule(self) -> tuple[int, ...]: ...
    @property
    def retry_jitter(self) -> float: ...
    @property
    def throttle_floor(self) -> float: ...
    @property
    def claim_wait(self) -> float: ...
    @property
    def circuit_threshold(self) -> int: ...
    @property
    def circuit_cooldown(self) -> float: ...
    @property
    def invocation_reserve(self) -> float: ...
