"""`oxoflow-notify replay`: dead letters delivered again (``tools.replay``), or with --on-failure Lambda's
on-failure records published again (``tools.recovery``); filters that could only match nothing refused.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from oxoflow_notify.errors import NotifyError

from .cli_common import TOPIC_ENV, Usage, _aws_errors, aws_client, aws_region, explain_aws_error
from .cmd_publish import checked_event


def _progress_bar(done: int, total: int, last: str) -> None:
    """Drawn in place on a terminal; a pipe or a log file gets the summary alone (no line of carriage returns)."""
    if not sys.stderr.isatty():
        return
    filled = 30 * done // max(total, 1)
    print(f"\r  [{'#' * filled}{'.' * (30 - filled)}] {done}/{total} {last:<15}", end="", file=sys.stderr, flush=True)


def _print_summary(summary: Any, second: str, width: int = 20, detail_width: int = 100) -> None:
    """The replay table (message, ``second``, result, detail) and the totals."""
    if sys.stderr.isatty():
        print(file=sys.stderr)  # ends the progress bar's line
    lines = [f"  {'message':38} {second:{width}} {'result':15} detail"]
    lines += [f"  {mid:38} {what[:width]:{width}} {result:15} {detail[:detail_width]}" for mid, what, result, detail in summary.rows]
    totals = ", ".join(f"{count} {result}" for result, count in sorted(summary.results.items())) or "nothing matched"
    print("\n".join([*lines, f"\n  {totals}"]))


def cmd_replay(args: argparse.Namespace) -> int:
    from oxoflow_notify.wiring import build_notifier

    from .replay import Filters, Summary, replay

    if not args.queue_url:
        raise Usage("replay: no dead-letter queue: pass --queue-url or set DEAD_LETTER_QUEUE_URL (a stack output)")
    args.event = _known_event(args.event, "replay", digest=not args.on_failure)
    if args.on_failure:
        return replay_on_failure(args)
    args.reason = _known_reason(args.reason)
    _check_filters(args)
    region = aws_region("replay", args.region, args.queue_url)
    filters = Filters(args.workflow, args.webhook, args.event, args.reason, args.older_than, args.newer_than)
    try:
        notifier = build_notifier({**os.environ, "DEAD_LETTER_QUEUE_URL": args.queue_url})
        summary: Summary = replay(
            notifier, aws_client("sqs", region), args.queue_url, filters, dry_run=args.dry_run, limit=args.limit, progress=_progress_bar
        )
    except NotifyError as exc:
        raise Usage(f"replay: {exc} (replay reads the same settings as the functions)") from None
    except _aws_errors() as exc:
        raise Usage(explain_aws_error(exc, "replay")) from None
    _print_summary(summary, "webhook")
    return 1 if summary.results.get("failed again") else 0


def _check_filters(args: argparse.Namespace) -> None:
    """Filters that could only ever match nothing say so, instead of printing "nothing matched"."""
    from oxoflow_notify.inbound.events import WORKFLOW_NAME

    if args.workflow is not None and not WORKFLOW_NAME.match(args.workflow):
        raise Usage(f"replay: --workflow {args.workflow!r} is no workflow name (letters, digits, '.', '_', '-'; at most 128)")
    if args.older_than is not None and args.newer_than is not None and args.newer_than <= args.older_than:
        raise Usage("replay: --newer-than must be longer ago than --older-than (e.g. --older-than 1h --newer-than 7d): "
                    "no letter is both")  # fmt: skip


def _known_event(name: str | None, command: str, digest: bool = False) -> str | None:
    """--event as the letters spell it (PascalCase; either spelling accepted); Usage with a
    did-you-mean for a name no event has, which would otherwise match nothing, silently."""
    from oxoflow_notify.inbound.events import canonical_event_name, unknown_event_message

    if name is None:
        return None
    known = "Digest" if digest and name.lower() == "digest" else canonical_event_name(name)
    if known is None:
        raise Usage(f"{command}: --event: {unknown_event_message(name)}{' (or Digest)' if digest else ''}")
    return known


def _known_reason(code: str | None) -> str | None:
    """--reason, checked against the reason codes dead letters carry (a typo would match nothing)."""
    from oxoflow_notify.errors import did_you_mean

    from .replay import REASON_CODES

    if code is None or code in REASON_CODES:
        return code
    raise Usage(f"replay: --reason: unknown reason code {code[:80]!r}{did_you_mean(code, REASON_CODES)}; "
                f"one of {', '.join(REASON_CODES)}")  # fmt: skip


def replay_on_failure(args: argparse.Namespace) -> int:
    """replay --on-failure: publish the event of each Lambda on-failure record again, with its
    original event id, so the delivery ids are the ones it had and the ledger stops repeats."""
    from .recovery import republish_on_failure
    from .replay import Filters

    for flag, value in (("--webhook", args.webhook), ("--reason", args.reason)):
        if value is not None:
            raise Usage(f"replay --on-failure: {flag} does not apply: an on-failure record holds a whole event, not one delivery")
    topic = args.topic_arn or os.environ.get(TOPIC_ENV)
    if not topic and not args.dry_run:
        raise Usage(f"replay --on-failure: no topic: pass --topic-arn or set {TOPIC_ENV} (the stack's TopicArn output)")
    region = aws_region("replay --on-failure", args.region, args.queue_url, topic)
    filters = Filters(workflow=args.workflow, event=args.event, older_than=args.older_than, newer_than=args.newer_than)
    try:
        summary = republish_on_failure(
            None if args.dry_run else aws_client("sns", region),
            topic,
            aws_client("sqs", region),
            args.queue_url,
            filters,
            dry_run=args.dry_run,
            limit=args.limit,
            progress=_progress_bar,
            check=checked_event,
        )
    except _aws_errors() as exc:
        raise Usage(explain_aws_error(exc, "replay --on-failure")) from None
    _print_summary(summary, "event id", 36, 300)  # an invalid event's reason is the fix
    return 1 if summary.results.get("invalid") or summary.results.get("failed") else 0
