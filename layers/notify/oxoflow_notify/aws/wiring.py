"""Build the Notifier from the environment: the one place real AWS clients are created.

Handlers call ``build_notifier()`` once at module scope, so clients, the config cache and the
HTTP connection pool survive between invocations of a warm container. boto3 honours
``AWS_ENDPOINT_URL``, which is how local runs point it at moto.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config as BotoConfig

from oxoflow_notify.config import is_reference
from oxoflow_notify.config.scopes import prefix_segments, reference_segments, under_config_grants
from oxoflow_notify.errors import SettingsError
from oxoflow_notify.outbound.delivery import HttpSender
from oxoflow_notify.outbound.guard import TargetGuard
from oxoflow_notify.pipeline.handoff import DynamoHandoffLog, NoHandoffLog
from oxoflow_notify.pipeline.ledger import IdempotencyLedger, NoLedger
from oxoflow_notify.pipeline.notifier import Notifier

from .config_store import ConfigStore
from .letters import LetterStore
from .queues import SqsQueue
from .references import References
from .settings import Settings

if TYPE_CHECKING:
    from oxoflow_notify.inbound.ingest import Ingest

_BOTO = BotoConfig(connect_timeout=3, read_timeout=10, retries={"max_attempts": 3, "mode": "standard"})


def build_ingest(env: Mapping[str, str] | None = None) -> Ingest:
    """The ingest function's one dependency set: the topic, the secret reference, SNS. (Imported
    here: the dispatch and retry functions never pay for the ingest module at cold start.)"""
    from oxoflow_notify.inbound.ingest import Ingest, secrets_from

    env = os.environ if env is None else env
    topic, secret = env.get("TOPIC_ARN", "").strip(), env.get("INGEST_SECRET", "").strip()
    if not topic or not secret:
        raise SettingsError("environment variables TOPIC_ARN and INGEST_SECRET are required")
    if not is_reference(secret):
        raise SettingsError("INGEST_SECRET must name where the secret is kept (ssm:/... or secretsmanager:...), not hold it")
    if reference_segments(secret) is None:
        raise SettingsError("INGEST_SECRET is not a valid reference (ssm:/path/name or secretsmanager:name[#key], no '..' or '//')")
    prefix = env.get("SECRETS_PREFIX", "").strip() or Settings.secrets_prefix
    try:
        prefix = "/".join(prefix_segments(prefix)) + "/"
    except ValueError as exc:
        raise SettingsError(f"SECRETS_PREFIX: {exc}") from None
    if under_config_grants(secret, prefix):
        # a config could reference it as a webhook's secret and have bodies signed with it
        raise SettingsError(f"INGEST_SECRET must be outside every config's scope ({prefix}workflows/ and {prefix}shared/ under "
                            "SECRETS_PREFIX); keep it in its own name, e.g. ssm:/oxoflow-notify-ingest/secret")  # fmt: skip
    # This function reads its own secret and nothing else (the template grants it that one name).
    references = _references(prefix, Settings.secrets_max_age, only=secret)
    sns = _Lazy(lambda: boto3.client("sns", config=_BOTO))
    dead_letters = env.get("DEAD_LETTER_QUEUE_URL", "").strip()
    keep = SqsQueue(_Lazy(lambda: boto3.client("sqs", config=_BOTO)), dead_letters) if dead_letters else None
    return Ingest(topic, lambda: secrets_from(secret, references.resolve), sns, keep)


def build_notifier(env: Mapping[str, str] | None = None) -> Notifier:
    settings = Settings.from_env(env)
    s3 = boto3.client("s3", config=_BOTO)
    sqs = _Lazy(lambda: boto3.client("sqs", config=_BOTO))
    dynamodb = _Lazy(lambda: boto3.client("dynamodb", config=_BOTO))  # the ledger and the hand-off log share it
    letters = LetterStore(s3, settings.config_bucket)  # letters too big for their queue (aws.letters)
    return Notifier(
        settings=settings,
        store=ConfigStore(
            s3, settings.config_bucket, settings.config_prefix, settings.config_cache_seconds, secrets_prefix=settings.secrets_prefix
        ),
        sender=HttpSender(
            settings.connect_timeout,
            settings.read_timeout,
            settings.max_concurrency,
            TargetGuard(settings.target_allowlist, settings.require_https),
        ),
        retry_queue=SqsQueue(sqs, settings.retry_queue_url, letters),
        dead_letters=SqsQueue(sqs, settings.dead_letter_queue_url, letters),
        letters=letters,
        ledger=IdempotencyLedger(settings.ledger_table, settings.ledger_ttl_seconds, dynamodb) if settings.ledger_table else NoLedger(),
        handoffs=(
            DynamoHandoffLog(settings.ledger_table, settings.ledger_ttl_seconds, dynamodb) if settings.ledger_table else NoHandoffLog()
        ),
        references=_references(settings.secrets_prefix, settings.secrets_max_age, config_prefix=settings.config_prefix),
        # Digest windows and rate-limit slots live on the ledger's table too; without one, digests and limits are off.
        # (built, and their modules imported, on first use: a cold start that meets no digest or limit pays nothing)
        windows=_OnFirstUse(lambda: _windows(settings, dynamodb)) if settings.ledger_table else None,
        pacer=_OnFirstUse(lambda: _pacer(settings, dynamodb)) if settings.ledger_table else None,
    )


def _references(prefix: str, max_age: int, config_prefix: str = "workflows/", only: str | None = None) -> References:
    """ssm:/secretsmanager: resolution: each config's references within its scope under the prefix
    (or ``only`` that one reference); Powertools and its clients built on first use."""
    return References(
        ssm=lambda: _parameters().SSMProvider(boto3_client=boto3.client("ssm", config=_BOTO)),
        secrets=lambda: _parameters().SecretsProvider(boto3_client=boto3.client("secretsmanager", config=_BOTO)),
        prefix=prefix,
        max_age=max_age,
        config_prefix=config_prefix,
        only=only,
    )


def _windows(settings: Settings, dynamodb: Any) -> Any:
    from oxoflow_notify.pipeline.windows import DynamoWindowStore

    return DynamoWindowStore(settings.ledger_table, settings.ledger_ttl_seconds, dynamodb)


def _pacer(settings: Settings, dynamodb: Any) -> Any:
    from oxoflow_notify.pipeline.pacing import DynamoPacer

    return DynamoPacer(settings.ledger_table, dynamodb)


class _OnFirstUse:
    """Stands in for an object built on first use: every attribute read and write goes to it."""

    def __init__(self, build: Any) -> None:
        object.__setattr__(self, "_build", build)
        object.__setattr__(self, "_target", None)

    def _get(self) -> Any:
        if self._target is None:
            object.__setattr__(self, "_target", self._build())
        return self._target

    def __getattr__(self, name: str) -> Any:
        return getattr(self._get(), name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._get(), name, value)


class _Lazy:
    """Builds the wrapped client on first call; both queues share it."""

    def __init__(self, factory: Any) -> None:
        self.factory = factory
        self.value: Any = None

    def __call__(self) -> Any:
        if self.value is None:
            self.value = self.factory()
        return self.value


def _parameters() -> Any:
    """Imported on first use: most webhooks hold no references, and cold starts should not pay."""
    from aws_lambda_powertools.utilities import parameters

    return parameters
