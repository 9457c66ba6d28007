"""The notice of a disabled webhook: one ``WebhookDisabled`` event, sent once (by the instance whose
conditional write disabled it) to each other webhook of its ``.oxoflow`` file that subscribes to
it, and to the stack's alarm topic. The deliveries go through the retry queue as attempt 1, due at
once: signed, retried, dead-lettered and logged like any other.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable

from oxoflow_notify.config import Config, Webhook
from oxoflow_notify.inbound.events import WEBHOOK_DISABLED, Event
from oxoflow_notify.inbound.timestamps import epoch_millis
from oxoflow_notify.observability import logger
from oxoflow_notify.outbound.delivery import delivery_id_for

from .endpoints import EndpointState
from .ports import ConfigSource, MessageQueue
from .retry import RetryTask

_NOTICE_NAMESPACE = uuid.UUID("0e5b7a52-3c1d-5f4e-8a9b-7c6d5e4f3a2b")
Alarm = Callable[[str, str], None]  # (subject, message) to the stack's alarm topic


def notice_event(webhook: Webhook, state: EndpointState, workflow: str) -> Event:
    """The WebhookDisabled event: which webhook, since when it failed, when it was disabled, how to
    enable it again. Its id is derived from the webhook and the disable, so a re-sent notice is the same."""
    since, at = state.failing_since or 0.0, state.disabled_at or 0.0
    days = webhook.disable_after / 86400
    message = (f"Webhook '{webhook.id}' was disabled: no 2xx for {days:g} days while its deliveries failed. "
               "Its deliveries are dead-lettered (endpoint_disabled) until it is enabled again: "
               f"oxoflow-notify endpoints enable {webhook.id} --workflow {_file_name(webhook.source)}, "
               "or upload a config that changes its entry.")  # fmt: skip
    return Event(
        event=WEBHOOK_DISABLED, workflow=workflow, timestamp=epoch_millis(at),
        id=str(uuid.uuid5(_NOTICE_NAMESPACE, f"{webhook.source}\n{webhook.id}\n{at:.6f}")), message=message,
        details={"webhook_id": webhook.id, "format": webhook.format, "failing_since": epoch_millis(since), "disabled_at": epoch_millis(at),
                 "disable_after_seconds": webhook.disable_after},
    )  # fmt: skip


def _file_name(source: str) -> str:
    """What `endpoints enable --workflow` names a file by: its name (``_default`` for the shared one)."""
    return source.rsplit("/", 1)[-1].removesuffix(".oxoflow")


def workflow_of(source: str) -> str:
    """``workflows/variant-calling.oxoflow`` -> ``variant-calling`` (``default`` for the shared ``_default``
    file: a workflow name starts with a letter or digit)."""
    return source.rsplit("/", 1)[-1].removesuffix(".oxoflow").lstrip("_") or "default"


class DisabledNotice:
    def __init__(self, store: ConfigSource, retry_queue: MessageQueue, alarm: Alarm | None = None) -> None:
        self.store = store
        self.retry_queue = retry_queue
        self.alarm = alarm

    def __call__(self, webhook: Webhook, state: EndpointState, now: float) -> None:
        event = notice_event(webhook, state, workflow_of(webhook.source))
        config = self.store.load(webhook.source)
        others = [w for w in config.webhooks if w.id != webhook.id and w.matches(WEBHOOK_DISABLED)] if isinstance(config, Config) else []
        for other in others:
            task = RetryTask(event=event.to_payload(), config_key=other.source, webhook_id=other.id, format=other.format,
                             delivery_id=delivery_id_for(event, other.source, other.id), attempt=1, not_before=now)  # fmt: skip
            self.retry_queue.send(task.to_message(), delay_seconds=0)
        if self.alarm is not None:
            self.alarm(f"oxoflow-notify: webhook {webhook.id} of {event.workflow} disabled"[:100], json.dumps(event.to_payload()))
        logger.info("webhook disabled notice sent", extra={"webhook_id": webhook.id, "webhooks_told": len(others)})
