"""What each real receiver requires of a payload, written from the vendors' documentation and
independent of the renderers, so tests and loopback receivers can check our output against it.

Each checker returns a list of problems; an empty list means the service would accept the shape.
Lengths are counted in UTF-16 code units (JavaScript's ``length``), the strictest reading.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any


def _u16(text: str) -> int:
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def _text_field(problems: list[str], where: str, value: Any, limit: int, required: bool = True) -> None:
    if value is None and not required:
        return
    if not isinstance(value, str):
        problems.append(f"{where} must be a string")
    elif required and not value:
        problems.append(f"{where} is empty")
    elif _u16(value) > limit:
        problems.append(f"{where} is {_u16(value)} long; limit {limit}")


def slack(payload: dict[str, Any], raw: bytes) -> list[str]:
    problems: list[str] = []
    if not payload.get("text") and not payload.get("blocks"):
        problems.append("needs text or blocks")
    _text_field(problems, "text", payload.get("text"), 40000, required=False)
    blocks = list(payload.get("blocks", []))
    for attachment in payload.get("attachments", []):
        colour = attachment.get("color", "")
        if not (colour in ("good", "warning", "danger") or (colour.startswith("#") and len(colour) == 7)):
            problems.append(f"attachment color {colour!r} is not a hex colour")
        blocks.extend(attachment.get("blocks", []))
    if len(blocks) > 50:
        problems.append("more than 50 blocks")
    for i, block in enumerate(blocks):
        kind = block.get("type")
        if kind == "header":
            text = block.get("text", {})
            if text.get("type") != "plain_text":
                problems.append(f"block {i}: header text must be plain_text")
            _text_field(problems, f"block {i} header", text.get("text"), 150)
        elif kind == "section":
            if "text" in block:
                _text_field(problems, f"block {i} section text", block["text"].get("text"), 3000)
            fields = block.get("fields", [])
            if len(fields) > 10:
                problems.append(f"block {i}: more than 10 fields")
            for j, field in enumerate(fields):
                _text_field(problems, f"block {i} field {j}", field.get("text"), 2000)
            if "text" not in block and not fields:
                problems.append(f"block {i}: section needs text or fields")
        elif kind == "context":
            elements = block.get("elements", [])
            if not 1 <= len(elements) <= 10:
                problems.append(f"block {i}: context needs 1-10 elements")
            for element in elements:
                _text_field(problems, f"block {i} context", element.get("text"), 3000)
        else:
            problems.append(f"block {i}: unexpected type {kind!r}")
    return problems


def discord(payload: dict[str, Any], raw: bytes) -> list[str]:
    problems: list[str] = []
    embeds = payload.get("embeds", [])
    if not payload.get("content") and not embeds:
        problems.append("needs content or embeds")
    _text_field(problems, "content", payload.get("content"), 2000, required=False)
    if len(embeds) > 10:
        problems.append("more than 10 embeds")
    if payload.get("allowed_mentions", {}).get("parse") != []:
        problems.append("allowed_mentions.parse must be empty (no pings)")
    total = 0
    for i, embed in enumerate(embeds):
        _text_field(problems, f"embed {i} title", embed.get("title"), 256, required=False)
        _text_field(problems, f"embed {i} description", embed.get("description"), 4096, required=False)
        if not isinstance(embed.get("color", 0), int):
            problems.append(f"embed {i} color must be an integer")
        fields = embed.get("fields", [])
        if len(fields) > 25:
            problems.append(f"embed {i}: more than 25 fields")
        for j, field in enumerate(fields):
            _text_field(problems, f"embed {i} field {j} name", field.get("name"), 256)
            _text_field(problems, f"embed {i} field {j} value", field.get("value"), 1024)
        footer = embed.get("footer", {}).get("text")
        _text_field(problems, f"embed {i} footer", footer, 2048, required=False)
        total += sum(_u16(s) for s in (embed.get("title") or "", embed.get("description") or "", footer or ""))
        total += sum(_u16(f.get("name", "")) + _u16(f.get("value", "")) for f in fields)
    if total > 6000:
        problems.append(f"embeds hold {total} characters in all; limit 6000")
    return problems


def teams(payload: dict[str, Any], raw: bytes) -> list[str]:
    problems: list[str] = []
    if payload.get("type") != "message":
        problems.append("type must be 'message'")
    attachments = payload.get("attachments", [])
    if len(attachments) != 1:
        problems.append("needs exactly one attachment")
    for attachment in attachments:
        if attachment.get("contentType") != "application/vnd.microsoft.card.adaptive":
            problems.append("attachment contentType must be application/vnd.microsoft.card.adaptive")
        card = attachment.get("content", {})
        if card.get("type") != "AdaptiveCard" or not card.get("version"):
            problems.append("content must be an AdaptiveCard with a version")
        if not card.get("body"):
            problems.append("card body is empty")
        for action in card.get("actions", []):
            if action.get("type") != "Action.OpenUrl":
                problems.append(f"action {action.get('type')} is not supported by Teams webhooks")
    if len(raw) > 28 * 1024:
        problems.append(f"payload is {len(raw)} bytes; Teams cards stop at about 28 KB")
    return problems


def text(payload: dict[str, Any], raw: bytes) -> list[str]:
    problems: list[str] = []
    value = payload.get("text")
    _text_field(problems, "text", value, 5000)  # Rocket.Chat's default maximum
    if isinstance(value, str) and len(value.encode("utf-8")) > 32000:
        problems.append("text is over Google Chat's 32,000 bytes")
    return problems


DIGEST_KEYS = ("event", "id", "workflow", "run_id", "window", "counts", "total", "events", "left_out")
WINDOW_KEYS = ("number", "opened", "closed", "seconds", "closed_by")


def _count(value: Any, least: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= least


def digest(payload: dict[str, Any]) -> list[str]:
    """A digest's payload (events/digest.schema.json), which the json and oxoflow formats send for
    a digest: what a receiver needs to read it."""
    problems = [f"missing {k}" for k in DIGEST_KEYS if k not in payload]
    window = payload.get("window")
    if not isinstance(window, dict):
        problems.append("window must be an object")
    else:
        problems += [f"missing window.{k}" for k in WINDOW_KEYS if k not in window]
    counts = payload.get("counts")
    if not isinstance(counts, dict) or not all(_count(n, 1) for n in counts.values()):
        problems.append("counts must map event names to positive integers")
    if not _count(payload.get("total"), 1):
        problems.append("total must be a positive integer")
    if not _count(payload.get("left_out"), 0):
        problems.append("left_out must be a non-negative integer")
    events = payload.get("events")
    if not isinstance(events, list) or not all(isinstance(e, dict) for e in events):
        problems.append("events must be a list of objects")
    return problems


def json_event(payload: dict[str, Any], raw: bytes) -> list[str]:
    if payload.get("event") == "Digest":
        return digest(payload)
    missing = [k for k in ("event", "workflow", "timestamp", "rule", "message", "details", "id") if k not in payload]
    return [f"missing {k}" for k in missing]


def oxoflow(payload: dict[str, Any], raw: bytes) -> list[str]:
    """oxo-flow's WebhookPayload: what a receiver written for oxo-flow deserialises. oxo-flow has
    no digest shape: for a digest the format sends the json digest payload."""
    if payload.get("event") == "Digest":
        return digest(payload)
    problems = [f"missing {k}" for k in ("event", "workflow_name", "timestamp", "data", "version") if k not in payload]
    if not isinstance(payload.get("event"), str) or not str(payload.get("event")).islower():
        problems.append("event must be a snake_case string")
    data = payload.get("data")
    if not isinstance(data, dict):
        return [*problems, "data must be an object"]
    counts = ("total_rules", "succeeded", "failed", "skipped", "duration_ms")
    for key, value in data.items():
        if key in counts and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            problems.append(f"data.{key} must be a non-negative integer (oxo-flow reads usize/u64)")
        elif key == "exit_code" and (isinstance(value, bool) or not isinstance(value, int)):
            problems.append("data.exit_code must be an integer")
        elif key in ("rule", "error") and not isinstance(value, str):
            problems.append(f"data.{key} must be a string")
        elif key not in (*counts, "exit_code", "rule", "error"):
            problems.append(f"data.{key} is not a field oxo-flow knows")
    return problems


PAGERDUTY_ACTIONS = ("trigger", "acknowledge", "resolve")
PAGERDUTY_SEVERITIES = ("critical", "error", "warning", "info")


def pagerduty(payload: dict[str, Any], raw: bytes, placeholder_ok: bool = True) -> list[str]:
    """PagerDuty's Events API v2 (developer.pagerduty.com, "Send an Alert Event"): routing_key (the
    32-character integration key) and event_action required; dedup_key at most 255 characters,
    required to acknowledge or resolve; a trigger's payload needs summary (at most 1,024), source
    and severity (critical, error, warning, info); timestamp ISO 8601; custom_details an object.
    ``placeholder_ok``: a body rendered without its routing key (a golden file) passes."""
    problems: list[str] = []
    key = payload.get("routing_key")
    if not isinstance(key, str) or not ((len(key) == 32 and key.isalnum()) or (placeholder_ok and key.startswith("(routing key"))):
        problems.append("routing_key must be the 32-character integration key")
    action = payload.get("event_action")
    if action not in PAGERDUTY_ACTIONS:
        problems.append(f"event_action must be one of {', '.join(PAGERDUTY_ACTIONS)}")
    dedup = payload.get("dedup_key")
    if dedup is not None and (not isinstance(dedup, str) or not 0 < len(dedup) <= 255):
        problems.append("dedup_key must be a string of 1 to 255 characters")
    if action in ("acknowledge", "resolve") and dedup is None:
        problems.append(f"{action} needs a dedup_key")
    if action == "trigger":
        body = payload.get("payload")
        if not isinstance(body, dict):
            return [*problems, "a trigger needs a payload object"]
        _text_field(problems, "payload.summary", body.get("summary"), 1024)
        _text_field(problems, "payload.source", body.get("source"), 255)
        if body.get("severity") not in PAGERDUTY_SEVERITIES:
            problems.append(f"payload.severity must be one of {', '.join(PAGERDUTY_SEVERITIES)}")
        if "custom_details" in body and not isinstance(body["custom_details"], dict):
            problems.append("payload.custom_details must be an object")
    extra = set(payload) - {"routing_key", "event_action", "dedup_key", "payload", "client", "client_url", "links", "images"}
    problems += [f"{k} is not a field of the Events API v2" for k in sorted(extra)]
    return problems


CHECKERS: dict[str, Callable[[dict[str, Any], bytes], list[str]]] = {
    "json": json_event,
    "slack": slack,
    "teams": teams,
    "discord": discord,
    "text": text,
    "oxoflow": oxoflow,
    "pagerduty": pagerduty,
}


def problems_of(fmt: str, raw: bytes) -> list[str]:
    """Parse the exact bytes as the service would, then check the shape."""
    try:
        payload = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        return [f"not UTF-8 JSON: {exc}"]
    if not isinstance(payload, dict):
        return ["not a JSON object"]
    return CHECKERS[fmt](payload, raw)
