"""The composition root: the Notifier and the ingest built from the environment, the one place
real AWS clients are created (above ``aws/``, whose adapters it hands to the pipeline).

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

from oxoflow_notify.aws.config_store import ConfigStore
from oxoflow_notify.aws.letters import LetterStore
from oxoflow_notify.aws.queues import SqsQueue
from oxoflow_notify.aws.references import References
from oxoflow_notify.aws.settings import Settings
from oxoflow_notify.config import is_reference
from oxoflow_notify.config.scopes import prefix_segments, reference_segments, under_config_grants
from oxoflow_notify.errors import SettingsError
from oxoflow_notify.lazy import Lazy
from oxoflow_notify.outbound.delivery import HttpSender
from oxoflow_notify.outbound.guard import TargetGuard
from oxoflow_notify.pipeline.notifier import Notifier

if TYPE_CHECKING:
    from oxoflow_notify.pipeline.delivery_log import DeliveryLog
    from oxoflow_notify.pipeline.disabled_notice import Alarm
    from oxoflow_notify.pipeline.endpoints import EndpointStore
    from oxoflow_notify.pipeline.handoff import HandoffLog
    from oxoflow_notify.pipeline.ingest import Ingest
    from oxoflow_notify.pipeline.ledger import Ledger
    from oxoflow_notify.pipeline.live import LiveStore
    from oxoflow_notify.pipeline.pacing import Pacer, Slot
    from oxoflow_notify.pipeline.watching import RunWatches
    from oxoflow_notify.pipeline.windows import Closing, Group, Schedule, WindowStore

_BOTO = BotoConfig(connect_timeout=3, read_timeout=10, retries={"max_attempts": 3, "mode": "standard"})
# The delivery log's own client: its write comes after every POST of an invocation, and a throttled
# table must not hold the invocation long (with _BOTO's retries a write could take ~40 s). One call
# takes at most (2 + 3) s twice and a backoff: about 11 s (settlement.LOG_TIME), then it is given up.
# (total_max_attempts counts the first try: botocore's max_attempts would add one to it)
_LOG_BOTO = BotoConfig(connect_timeout=2, read_timeout=3, retries={"total_max_attempts": 2, "mode": "standard"})


def build_ingest(env: Mapping[str, str] | None = None) -> Ingest:
    """The ingest function's one dependency set: the topic, the secret reference, SNS. (Imported
    here: the dispatch and retry functions never pay for the ingest module at cold start.)"""
    from oxoflow_notify.pipeline.ingest import Ingest, secrets_from

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
    sns = Lazy(lambda: boto3.client("sns", config=_BOTO))
    dead_letters = env.get("DEAD_LETTER_QUEUE_URL", "").strip()
    keep = SqsQueue(Lazy(lambda: boto3.client("sqs", config=_BOTO)), dead_letters) if dead_letters else None
    return Ingest(topic, lambda: secrets_from(secret, references.resolve), sns, keep)


def build_notifier(env: Mapping[str, str] | None = None) -> Notifier:
    settings = Settings.from_env(env)
    s3 = boto3.client("s3", config=_BOTO)
    sqs = Lazy(lambda: boto3.client("sqs", config=_BOTO))
    dynamodb = Lazy(lambda: boto3.client("dynamodb", config=_BOTO))  # the ledger and the hand-off log share it
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
        ledger=_ledger(settings, dynamodb),
        handoffs=_handoffs(settings, dynamodb),
        references=_references(settings.secrets_prefix, settings.secrets_max_age, config_prefix=settings.config_prefix),
        # Digest windows and rate-limit slots live on the ledger's table too; without one, digests and limits are off.
        # (built, and their modules imported, on first use: a cold start that meets no digest or limit pays nothing)
        windows=LazyWindows(Lazy(lambda: _windows(settings, dynamodb))) if settings.ledger_table else None,
        pacer=LazyPacer(Lazy(lambda: _pacer(settings, dynamodb))) if settings.ledger_table else None,
        log=_delivery_log(settings, Lazy(lambda: boto3.client("dynamodb", config=_LOG_BOTO))),
        endpoints=_endpoints(settings, dynamodb),
        alarm=_alarm(env),
        watches=_watches(settings, dynamodb),
        live=_live(settings, dynamodb),
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


def _ledger(settings: Settings, dynamodb: Lazy[Any]) -> Ledger:
    """The delivery ledger on the table; without one, none (and its modules never imported)."""
    if not settings.ledger_table:
        from oxoflow_notify.pipeline.ledger import NoLedger

        return NoLedger()
    from oxoflow_notify.aws.ledger_table import IdempotencyLedger

    return IdempotencyLedger(settings.ledger_table, settings.ledger_ttl_seconds, dynamodb)


def _handoffs(settings: Settings, dynamodb: Lazy[Any]) -> HandoffLog:
    """The hand-off log on the ledger's table; without one, none."""
    if not settings.ledger_table:
        from oxoflow_notify.pipeline.handoff import NoHandoffLog

        return NoHandoffLog()
    from oxoflow_notify.aws.handoff_table import DynamoHandoffLog

    return DynamoHandoffLog(settings.ledger_table, settings.ledger_ttl_seconds, dynamodb)


def _delivery_log(settings: Settings, dynamodb: Lazy[Any]) -> DeliveryLog | None:
    """The delivery log on its table; without one, none (nothing is kept)."""
    if not settings.delivery_log_table:
        return None
    from oxoflow_notify.aws.delivery_log_table import DynamoDeliveryLog

    return DynamoDeliveryLog(settings.delivery_log_table, settings.delivery_log_days, dynamodb)


def _endpoints(settings: Settings, dynamodb: Lazy[Any]) -> EndpointStore | None:
    """Failing and disabled webhooks on the ledger's table; without one, nothing is disabled."""
    if not settings.ledger_table:
        return None
    from oxoflow_notify.aws.endpoints_table import DynamoEndpointStore

    return DynamoEndpointStore(settings.ledger_table, dynamodb)


def _watches(settings: Settings, dynamodb: Lazy[Any]) -> RunWatches | None:
    """Runs watched for overdue and silent, on the ledger's table; without one, none is watched."""
    if not settings.ledger_table:
        return None
    from oxoflow_notify.aws.watches_table import DynamoRunWatches

    return DynamoRunWatches(settings.ledger_table, dynamodb)


def _live(settings: Settings, dynamodb: Lazy[Any]) -> Lazy[LiveStore] | None:
    """Live messages' state, on the ledger's table, built (its modules imported) when a live webhook
    first needs it; without a table, no message is live."""
    if not settings.ledger_table:
        return None

    def build() -> LiveStore:
        from oxoflow_notify.aws.live_table import DynamoLiveStore

        return DynamoLiveStore(settings.ledger_table, dynamodb)

    return Lazy(build)


def _alarm(env: Mapping[str, str] | None) -> Alarm | None:
    """The stack's alarm topic (ALARM_TOPIC_ARN), told when a webhook is disabled; client built on first use."""
    topic = (os.environ if env is None else env).get("ALARM_TOPIC_ARN", "").strip()
    if not topic:
        return None
    sns = Lazy(lambda: boto3.client("sns", config=_BOTO))
    return lambda subject, message: sns.get().publish(TopicArn=topic, Subject=subject, Message=message)


def _windows(settings: Settings, dynamodb: Lazy[Any]) -> WindowStore:
    from oxoflow_notify.aws.windows_table import DynamoWindowStore

    return DynamoWindowStore(settings.ledger_table, settings.ledger_ttl_seconds, dynamodb)


def _pacer(settings: Settings, dynamodb: Lazy[Any]) -> Pacer:
    from oxoflow_notify.aws.pacing_table import DynamoPacer

    return DynamoPacer(settings.ledger_table, dynamodb)


class LazyWindows:
    """The digest windows' store, built (and its modules imported) on first use: a WindowStore."""

    def __init__(self, store: Lazy[WindowStore]) -> None:
        self.store = store

    def add(self, group: Group, event: dict[str, Any], event_key: str, now: float, schedule: Schedule) -> str:
        return self.store.get().add(group, event, event_key, now, schedule)

    def close(self, group: Group, window: int, now: float, closed_by: str) -> Closing:
        return self.store.get().close(group, window, now, closed_by)

    def current(self, group: Group) -> int | None:
        return self.store.get().current(group)


class LazyPacer:
    """The rate limits' slots, built (and their modules imported) on first use: a Pacer."""

    def __init__(self, pacer: Lazy[Pacer]) -> None:
        self.pacer = pacer

    def now(self, local: float) -> float:
        return self.pacer.get().now(local)

    def reserve(self, target: str, rate: float, now: float, tenant: str = "") -> Slot:
        return self.pacer.get().reserve(target, rate, now, tenant)

    def pause(self, target: str, until: float) -> None:
        self.pacer.get().pause(target, until)

    def paused_until(self, target: str) -> float:
        return self.pacer.get().paused_until(target)


def _parameters() -> Any:
    """Imported on first use: most webhooks hold no references, and cold starts should not pay."""
    from aws_lambda_powertools.utilities import parameters

    return parameters
