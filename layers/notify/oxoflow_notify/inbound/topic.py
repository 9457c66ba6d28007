"""Publishing an event to the topic: one place for the message attributes subscribers filter on."""

from __future__ import annotations

import json
from typing import Any

from .events import canonical_event_name


def publish_message(sns: Any, topic_arn: str, message: dict[str, Any]) -> str:
    """Publish one validated message with the `event` and `workflow` attributes filter policies use."""
    attributes = {
        "event": {"DataType": "String", "StringValue": canonical_event_name(message["event"]) or message["event"]},
        "workflow": {"DataType": "String", "StringValue": message["workflow"]},
    }
    # ASCII escapes: a lone surrogate (which the dispatcher accepts and scrubs) cannot be UTF-8 encoded.
    body = json.dumps(message, ensure_ascii=True, separators=(",", ":"))
    return str(sns.publish(TopicArn=topic_arn, Message=body, MessageAttributes=attributes)["MessageId"])
