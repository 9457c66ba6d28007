"""PagerDuty Events API v2 (``POST https://events.pagerduty.com/v2/enqueue``): a failed run opens an
incident, the next good run of the workflow (or of the run) resolves it.

``WorkflowFailed`` and ``RuleFailed`` (and ``WebhookDisabled``) send ``trigger``; ``WorkflowCompleted``
sends ``resolve`` for the same ``dedup_key``: one key per workflow, or per run with
``incident_per = "run"``. PagerDuty deduplicates triggers on that key, so a storm of failures of one
workflow is one incident. The ``routing_key`` (the integration key) is the webhook's secret: it is
put in the body only when the request is built (``outbound.delivery.prepare``); what this module
renders alone carries ``ROUTING_KEY_PLACEHOLDER`` (the delivery log's body, the golden files).
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

from oxoflow_notify.config.format_names import INCIDENT_PER as INCIDENT_PER
from oxoflow_notify.config.format_names import PAGERDUTY_RESOLVES, PAGERDUTY_TRIGGERS
from oxoflow_notify.config.format_names import SEVERITIES as SEVERITIES

from .common import clean, facts, fit

if TYPE_CHECKING:
    from oxoflow_notify.inbound.digests import Digest
    from oxoflow_notify.inbound.events import Event

ROUTING_KEY_PLACEHOLDER = "(routing key: set when sent, never kept)"
# What each event does to the incident, and a trigger's default severity.
TRIGGERS = {name: ("warning" if name in ("WebhookDisabled", "WorkflowOverdue") else "error") for name in PAGERDUTY_TRIGGERS}
RESOLVES = frozenset(PAGERDUTY_RESOLVES)
SUMMARY_MAX = 1024  # PagerDuty's limit on payload.summary
DEDUP_MAX = 255  # and on dedup_key
SOURCE_MAX = 255  # payload.source, as its receivers' shape check holds it
SOURCE = "oxoflow-notify"


def dedup_key(workflow: str, run_id: str | None, incident_per: str = "workflow") -> str:
    """One incident per workflow (or per run): the key every trigger and resolve of it carries."""
    key = f"oxoflow-notify/{workflow}" + (f"/run/{run_id}" if incident_per == "run" and run_id else "")
    if len(key) <= DEDUP_MAX:
        return key
    return f"oxoflow-notify/{hashlib.sha256(key.encode()).hexdigest()}"  # a run id near its 1,024-character limit


def payload(
    event: Event, routing_key: str = ROUTING_KEY_PLACEHOLDER, incident_per: str = "workflow", severity: str | None = None
) -> dict[str, Any]:
    """The Events API v2 body for one event."""
    key = dedup_key(event.workflow, event.run_id, incident_per)
    if event.event in RESOLVES:
        return {"routing_key": routing_key, "event_action": "resolve", "dedup_key": key}
    summary = clean(f"{event.workflow}: {event.message}")
    details: dict[str, Any] = {"event": event.event, "event_id": event.id, **{label: value for label, value in facts(event)}}
    if event.details:
        details["details"] = event.details
    return {
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": key,
        "payload": {
            "summary": fit(summary, SUMMARY_MAX),
            "source": fit(f"{SOURCE}/{event.workflow}", SOURCE_MAX),
            "severity": severity or TRIGGERS.get(event.event, "info"),
            "timestamp": event.timestamp,
            "component": event.rule or event.workflow,
            "group": event.workflow,
            "class": event.event,
            "custom_details": details,
        },
    }


def render_pagerduty(event: Event) -> dict[str, Any]:
    return payload(event)


def render_pagerduty_digest(digest: Digest) -> dict[str, Any]:
    """A digest has no incident meaning (the config refuses digest with pagerduty); rendered as one
    trigger naming its counts, so a digest that reached this format by any path still reads."""
    counts = ", ".join(f"{n} {name}" for name, n in digest.counts.items())
    body = {
        "summary": fit(clean(f"{digest.workflow}: {counts}"), SUMMARY_MAX),
        "source": fit(f"{SOURCE}/{digest.workflow}", SOURCE_MAX),
        "severity": "error" if digest.failed else "info",
        "timestamp": digest.closed,
        "class": "Digest",
        "custom_details": {"counts": digest.counts, "total": digest.total},
    }
    key = dedup_key(digest.workflow, digest.run_id, "workflow")
    return {"routing_key": ROUTING_KEY_PLACEHOLDER, "event_action": "trigger", "dedup_key": key, "payload": body}
