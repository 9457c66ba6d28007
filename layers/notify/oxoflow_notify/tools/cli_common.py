"""What every `oxoflow-notify` command shares: the exit-2 ``Usage`` error, AWS clients in the one region, AWS errors
in words, reading files and flags, and the help texts several commands repeat.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from oxoflow_notify.errors import EventError

TOPIC_ENV = "OXOFLOW_NOTIFY_TOPIC_ARN"
BUCKET_ENV = "OXOFLOW_NOTIFY_BUCKET"
PUBLISH_KEY_ENV = "OXOFLOW_NOTIFY_PUBLISH_KEY"  # the workflow's [publish] key: events are signed with it


class Usage(Exception):
    """Could not run: exit 2 with this message. ``final``: waiting and trying again cannot help."""

    final = True


def aws_client(service: str, region: str | None = None) -> Any:
    """A boto3 client in ``region`` (see ``aws_region``); AWS_ENDPOINT_URL is honoured by boto3 itself."""
    import boto3

    try:
        return boto3.client(service, region_name=region) if region else boto3.client(service)
    except ValueError as exc:  # botocore: "Invalid endpoint: ..." (AWS_ENDPOINT_URL is not a URL)
        raise Usage(f"{service}: {exc}: set AWS_ENDPOINT_URL to a URL such as http://127.0.0.1:4566, or unset it for AWS") from None


def aws_region(command: str, flag: str | None, *resources: str | None) -> str:
    """The region for a command that talks to AWS (--region, AWS_REGION, AWS_DEFAULT_REGION, the
    region in a given ARN or queue URL, the profile's), made the process's own so that every client
    it builds, the functions' wiring included, uses it. Usage (exit 2) when there is none."""
    from .region import NoRegion, require_region, use_region

    try:
        region = require_region(command, flag, *resources)
    except NoRegion as exc:
        raise Usage(str(exc)) from None
    use_region(region)
    return region


def explain_aws_error(exc: Exception, what: str) -> str:
    """The words a user needs for the usual failures, without a traceback."""
    name = type(exc).__name__
    if name in ("NoCredentialsError", "PartialCredentialsError"):
        return f"{what}: no AWS credentials found (set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)"
    if name == "NoRegionError":
        from .region import NO_REGION

        return f"{what}: {NO_REGION}"
    if name in ("EndpointConnectionError", "ConnectTimeoutError", "ReadTimeoutError"):
        return f"{what}: cannot reach AWS ({exc})"
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        error = response.get("Error", {})
        return f"{what}: {error.get('Code', name)}: {error.get('Message', '')}".rstrip(": ")
    return f"{what}: {name}: {exc}"


def _final_aws_errors() -> tuple[type[Exception], ...]:
    from botocore.exceptions import NoCredentialsError, NoRegionError, PartialCredentialsError, ProfileNotFound

    return (NoCredentialsError, PartialCredentialsError, ProfileNotFound, NoRegionError)


def _aws_errors() -> tuple[type[Exception], ...]:
    from botocore.exceptions import BotoCoreError, ClientError

    return (BotoCoreError, ClientError)


def _json(text: str, what: str) -> Any:
    """JSON from the command line; what it holds is checked with the event (``checked_event``)."""
    from oxoflow_notify.inbound.events import MAX_EVENT_NESTING

    try:
        return json.loads(text)
    except RecursionError:
        raise EventError(f"{what}: nested more than {MAX_EVENT_NESTING} levels deep (objects and arrays)") from None
    except ValueError as exc:
        raise EventError(f"{what}: not valid JSON: {exc}") from None


WORKFLOW_HELP = ("the workflow the file belongs to: its key and the secret scope its references keep to (default: the "
                 "file's [workflow] name, else its file name, <workflow>.oxoflow; _default: the shared scope)")  # fmt: skip


# -- plumbing -----------------------------------------------------------------------------------


def _positive(flag: str) -> Callable[[str], float]:
    """A positive, finite number of seconds (argparse names the flag; this says what is wrong)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and value > 0):
            raise argparse.ArgumentTypeError(f"{text!r} is not a positive number of seconds, e.g. 0.5 or 300 ({flag})")
        return value

    return parse


def _count(flag: str) -> Callable[[str], int]:
    def parse(text: str) -> int:
        if not text.strip().isdigit() or int(text) < 1:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of 1 or more ({flag})")
        return int(text)

    return parse


# The most a file given to a command is read of: an event is at most 256 KiB, a secret far less.
MAX_INPUT_BYTES = 1 << 20


def _read(path: str) -> str:
    raw = _read_bytes(path)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Usage(f"cannot read {path}: not UTF-8 text (byte {exc.start})") from None


def _read_bytes(path: str) -> bytes:
    try:
        with Path(path).open("rb") as handle:
            raw = handle.read(MAX_INPUT_BYTES + 1)
    except OSError as exc:
        raise Usage(f"cannot read {path}: {exc.strerror}") from None
    if len(raw) > MAX_INPUT_BYTES:
        raise Usage(f"cannot read {path}: larger than {MAX_INPUT_BYTES:,} bytes (an event is at most 256 KiB)")
    return raw


def _age(text: str) -> float:
    """--older-than/--newer-than: argparse names the option; this says what is wrong with an example."""
    from .replay import parse_age

    try:
        return parse_age(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text[:40]!r} is not a duration; write a number and a unit: 30m, 12h, 7d") from None


def _seconds(text: str) -> float:
    """--idle-exit: seconds (90) or a duration (30s, 10m, 1h)."""
    try:
        return float(text) if text.strip().replace(".", "", 1).isdigit() else _age(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"{text[:40]!r} is not a duration; write seconds or a number and a unit: 90, 30s, 10m") from None


PUBLISH_KEY_HELP = (f"sign with the workflow's [publish] key held in FILE (default: ${PUBLISH_KEY_ENV}); a signed event "
                    "gets an id and a timestamp when it has none, so a replay of it is posted once")  # fmt: skip
REGION_HELP = "AWS region (default: $AWS_REGION, $AWS_DEFAULT_REGION, the region in the topic ARN or queue URL, your profile's)"
