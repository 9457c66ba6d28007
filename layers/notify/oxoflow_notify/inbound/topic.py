"""Publishing an event to the topic: one place for the message attributes subscribers filter on,
and for the ``oxoflow-signature`` attribute that binds an event to its workflow's publish key."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from .events import canonical_event_name
from .timestamps import format_timestamp

SIGNATURE_ATTRIBUTE = "oxoflow-signature"  # sha256=<lowercase hex HMAC-SHA256(publish key, the exact Message bytes)>
SIGNATURE_PREFIX = "sha256="


def publish_signature(key: str, body: str) -> str:
    """The ``oxoflow-signature`` of a Message: sha256= and the lowercase hex HMAC-SHA256 of its
    exact bytes (UTF-8) under the publish key (UTF-8)."""
    digest = hmac.new(key.encode("utf-8"), body.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()
    return SIGNATURE_PREFIX + digest


def signature_of(sns: Mapping[str, Any]) -> str | None:
    """The ``oxoflow-signature`` message attribute of a Lambda SNS record, if it has one."""
    attributes = sns.get("MessageAttributes")
    attribute = attributes.get(SIGNATURE_ATTRIBUTE) if isinstance(attributes, Mapping) else None
    value = attribute.get("Value") if isinstance(attribute, Mapping) else None
    return value if isinstance(value, str) else None


def signable(message: dict[str, Any]) -> dict[str, Any]:
    """The message with an ``id`` (a uuid4) and a ``timestamp`` (now, UTC) when it has none: a signed
    message replayed byte for byte by anyone else then has the same delivery ids, so it is posted once."""
    out = dict(message)
    if out.get("id") in (None, ""):
        out["id"] = str(uuid.uuid4())
    if out.get("timestamp") is None:
        out["timestamp"] = format_timestamp(datetime.now(UTC))
    return out


def publish_message(sns: Any, topic_arn: str, message: dict[str, Any], key: str | None = None) -> str:
    """Publish one validated message with the `event` and `workflow` attributes filter policies use;
    with a publish ``key``, signed (``signable`` first: it gains an id and a timestamp if it has none)."""
    if key is not None:
        message = signable(message)
    # ASCII escapes: a lone surrogate (which the dispatcher accepts and scrubs) cannot be UTF-8 encoded.
    body = json.dumps(message, ensure_ascii=True, separators=(",", ":"))
    return publish_body(sns, topic_arn, body, message, publish_signature(key, body) if key is not None else None)


def publish_body(sns: Any, topic_arn: str, body: str, message: dict[str, Any], signature: str | None = None) -> str:
    """Publish ``body`` exactly as given (``message`` is what it holds, for the attributes) with its
    signature, if any: how a signed message is published again without its key (replay --on-failure)."""
    attributes = {
        "event": {"DataType": "String", "StringValue": canonical_event_name(message["event"]) or message["event"]},
        "workflow": {"DataType": "String", "StringValue": message["workflow"]},
    }
    if signature is not None:
        attributes[SIGNATURE_ATTRIBUTE] = {"DataType": "String", "StringValue": signature}
    return str(sns.publish(TopicArn=topic_arn, Message=body, MessageAttributes=attributes)["MessageId"])
