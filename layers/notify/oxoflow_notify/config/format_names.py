"""The format names a webhook may choose, kept apart from the renderers so config parsing imports none."""

from __future__ import annotations

FORMAT_NAMES = ("json", "slack", "teams", "discord", "text", "oxoflow", "pagerduty")  # formats.FORMATS renders each, in this order
DEFAULT_FORMAT = "json"

# pagerduty (PagerDuty's Events API v2): what its keys accept, and the events it has a meaning for
# (formats.pagerduty turns them into trigger and resolve).
PAGERDUTY_TRIGGERS = ("WorkflowFailed", "WorkflowOverdue", "RuleFailed", "WebhookDisabled")
PAGERDUTY_RESOLVES = ("WorkflowCompleted",)
PAGERDUTY_DEFAULT_EVENTS = frozenset({"WorkflowFailed", "WorkflowCompleted"})
SEVERITIES = ("critical", "error", "warning", "info")
INCIDENT_PER = ("workflow", "run")
