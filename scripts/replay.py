#!/usr/bin/env python3
"""Replay dead letters: re-deliver each, once, and delete only what succeeded.

    export AWS_REGION=... CONFIG_BUCKET=... DEAD_LETTER_QUEUE_URL=... RETRY_QUEUE_URL=... LEDGER_TABLE=...   # stack outputs
    python scripts/replay.py --dry-run                       # what would happen
    python scripts/replay.py --workflow variant-calling --reason retries_exhausted --older-than 1h

Each dead letter is delivered with the current config (URL and secret as they are now), the same
X-OxoFlow-Delivery id (receivers dedupe on it) and the next attempt number. One that fails again
stays in the queue, once. Reads the same environment variables as the functions.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "layers" / "notify"))

from oxoflow_notify.errors import NotifyError
from oxoflow_notify.replay import Filters, Summary, parse_age, replay


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="replay", description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--queue-url", default=os.environ.get("DEAD_LETTER_QUEUE_URL"), help="dead-letter queue (default: $DEAD_LETTER_QUEUE_URL)"
    )
    parser.add_argument("--workflow", help="only this workflow's events")
    parser.add_argument("--webhook", help="only this webhook id")
    parser.add_argument("--event", help="only this event type, e.g. RuleFailed")
    parser.add_argument("--reason", help="only this reason code, e.g. retries_exhausted, permanent_failure")
    parser.add_argument("--older-than", type=parse_age, help="only letters older than this (30m, 12h, 7d)")
    parser.add_argument("--newer-than", type=parse_age, help="only letters newer than this")
    parser.add_argument("--limit", type=int, help="look at no more than this many messages")
    parser.add_argument("--dry-run", action="store_true", help="show what would be replayed; send and delete nothing")
    return parser.parse_args(argv)


def bar(done: int, total: int, last: str) -> None:
    width = 30
    filled = width * done // max(total, 1)
    print(f"\r  [{'#' * filled}{'.' * (width - filled)}] {done}/{total} {last:<14}", end="", file=sys.stderr, flush=True)


def table(summary: Summary) -> str:
    lines = [f"  {'message':38} {'webhook':20} {'result':14} detail"]
    lines += [f"  {mid:38} {hook[:20]:20} {result:14} {detail[:100]}" for mid, hook, result, detail in summary.rows]
    totals = ", ".join(f"{count} {result}" for result, count in sorted(summary.results.items())) or "nothing matched"
    return "\n".join([*lines, f"\n  {totals}"])


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not args.queue_url:
        print("replay: no dead-letter queue: pass --queue-url or set DEAD_LETTER_QUEUE_URL (a stack output)", file=sys.stderr)
        return 2
    import boto3

    from oxoflow_notify.wiring import build_notifier

    try:
        notifier = build_notifier({**os.environ, "DEAD_LETTER_QUEUE_URL": args.queue_url})
    except NotifyError as exc:
        print(f"replay: {exc} (replay reads the same settings as the functions)", file=sys.stderr)
        return 2
    filters = Filters(args.workflow, args.webhook, args.event, args.reason, args.older_than, args.newer_than)
    summary = replay(notifier, boto3.client("sqs"), args.queue_url, filters, dry_run=args.dry_run, limit=args.limit, progress=bar)
    print(file=sys.stderr)
    print(table(summary))
    return 1 if summary.results.get("failed again") else 0


if __name__ == "__main__":
    sys.exit(main())
