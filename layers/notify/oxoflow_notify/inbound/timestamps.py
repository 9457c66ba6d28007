"""Event timestamps: RFC 3339 with an offset in, UTC with milliseconds out (what every format and the
delivery id read).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from oxoflow_notify.errors import EventError


def epoch_millis(at: float) -> str:
    """Unix seconds as RFC 3339 in UTC, always with milliseconds (what oxoflow-notify's own notices carry)."""
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def format_timestamp(moment: datetime) -> str:
    """RFC 3339 in UTC with a Z; milliseconds only when the source had sub-second precision.

    Raises OverflowError when the moment in UTC falls outside the years 1 to 9999. The year is
    always four digits (strftime's %Y writes year 1 as "1" on Linux)."""
    m = moment.astimezone(UTC)
    text = f"{m.year:04d}-{m.month:02d}-{m.day:02d}T{m.hour:02d}:{m.minute:02d}:{m.second:02d}"
    return text + (f".{m.microsecond // 1000:03d}Z" if m.microsecond else "Z")


_RFC3339 = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})")


def parse_timestamp(value: str) -> datetime:
    """Parse RFC 3339; a timestamp without an offset is ambiguous and refused."""
    text = value.strip()
    if not _RFC3339.fullmatch(text):
        raise ValueError("not an RFC 3339 date-time with an offset, e.g. 2026-05-18T12:00:00Z")
    moment = datetime.fromisoformat(text.replace("z", "Z").replace("t", "T"))
    return moment


def normalise_timestamp(value: str, name: str = "timestamp") -> str:
    """RFC 3339 text -> the canonical UTC form, or an EventError naming the field."""
    try:
        return format_timestamp(parse_timestamp(value))
    except ValueError as exc:
        raise EventError(f"field '{name}': {exc}") from None
    except OverflowError:
        raise EventError(f"field '{name}' is out of range: in UTC it must fall within the years 0001 to 9999") from None


def epoch_seconds(value: str) -> float | None:
    """An event's (normalised) timestamp as unix seconds; None when it cannot be read."""
    try:
        return parse_timestamp(value).timestamp()
    except (ValueError, OverflowError):
        return None
