"""`oxoflow-notify publish`: an event built from flags, a file or stdin, checked against the event schema (the
same rules the dispatcher applies), signed with the workflow's publish key when there is one, published.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from oxoflow_notify.errors import EventError
from oxoflow_notify.inbound.topic import publish_message, signable

from .cli_common import PUBLISH_KEY_ENV, TOPIC_ENV, Usage, _aws_errors, _json, _read, aws_client, aws_region, explain_aws_error

SCHEMA_PATH = Path(__file__).parent.parent / "event.schema.json"


# -- events -------------------------------------------------------------------------------------


@functools.cache
def _validator() -> Any:
    try:
        import jsonschema
    except ImportError:  # the Lambda layer has no jsonschema; parse_event applies the same rules
        return None
    return jsonschema.Draft202012Validator(json.loads(SCHEMA_PATH.read_text(encoding="utf-8")))


def schema_problems(message: Any) -> list[str]:
    """The event JSON Schema's verdict, each problem naming its field (the contract publishers see)."""
    validator = _validator()
    if validator is None:
        return []
    problems = []
    for error in sorted(validator.iter_errors(message), key=lambda e: list(e.absolute_path)):
        where = ".".join(str(p) for p in error.absolute_path) or "(the message)"
        problems.append(f"{where}: {error.message}")
    return problems


def checked_event(message: Any) -> dict[str, Any]:
    """Validate a message as the dispatcher will (its parser words problems best, with did-you-mean),
    then against the published JSON Schema, the contract every other publisher is held to."""
    from oxoflow_notify.inbound.events import parse_event
    from oxoflow_notify.inbound.json_input import check_json

    if not isinstance(message, dict):
        raise EventError(f"an event is a JSON object, got {type(message).__name__}")
    check_json(message)  # before json.dumps, which would write NaN and recurse without limit
    parse_event(json.dumps(message), message_id="cli-check", received_at=datetime.now(UTC))
    problems = schema_problems(message)
    if problems:
        raise EventError("; ".join(problems))
    return dict(message)


def cmd_publish(args: argparse.Namespace) -> int:
    message: dict[str, Any] = {}
    if args.file:
        raw = sys.stdin.read() if args.file == "-" else _read(args.file)
        loaded = _json(raw, args.file)
        if not isinstance(loaded, dict):
            raise EventError(f"{args.file}: an event is a JSON object, got {type(loaded).__name__}")
        message = loaded
    for key in ("event", "workflow", "rule", "message", "run_id", "timestamp", "id"):
        value = getattr(args, key)
        if value is not None:
            message[key] = value
    if args.details is not None:
        message["details"] = _json(args.details, "--details")
    if not message:
        raise Usage("publish: nothing to publish: give --event and --workflow, a JSON file, or '-' for stdin")
    checked = checked_event(message)
    signing_key = publish_key(args, "publish")
    if signing_key is not None:  # signed: with an id and a timestamp, so a replay of these bytes is posted once
        checked = signable(checked)
    if args.dry_run:
        print(json.dumps(checked, ensure_ascii=False))
        return 0
    topic = args.topic_arn or os.environ.get(TOPIC_ENV)
    if not topic:
        raise Usage(f"publish: no topic: pass --topic-arn or set {TOPIC_ENV} (the stack's TopicArn output)")
    region = aws_region("publish", args.region, topic)
    try:
        print(publish_message(aws_client("sns", region), topic, checked, signing_key))
    except _aws_errors() as exc:
        raise Usage(explain_aws_error(exc, "publish")) from None
    return 0


def publish_key(args: argparse.Namespace, command: str) -> str | None:
    """The workflow's publish key: --publish-key-file (its trailing newline is not part of it), else
    $OXOFLOW_NOTIFY_PUBLISH_KEY; None: publish unsigned."""
    if getattr(args, "publish_key_file", None):
        key = _read(args.publish_key_file).rstrip("\r\n")
        if not key:
            raise Usage(f"{command}: --publish-key-file {args.publish_key_file} is empty; it holds the workflow's [publish] key")
        return key
    return os.environ.get(PUBLISH_KEY_ENV) or None
