"""`oxoflow-notify deliveries`, `deliveries show`, `redeliver`, `endpoints`, `endpoints enable`:
the commands over the delivery log (``tools.deliveries`` folds and prints it).

They read DELIVERY_LOG_TABLE (a stack output; `oxoflow-notify env` prints it) with the caller's
credentials: a team whose policy limits ``dynamodb:LeadingKeys`` to its workflows passes
``--workflow`` and reads only those (docs/security.md). ``redeliver`` and ``endpoints enable`` also
need the functions' settings (the config bucket, the ledger table), as ``replay`` does.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

from .cli_common import _age
from .deliveries import STATUSES, fold, health, kept_event, print_health, print_json, print_table, show

LOG_ENV = "DELIVERY_LOG_TABLE"


def _positive_count(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give a whole number of 1 or more")
    return int(text)


def _log_options(command: argparse.ArgumentParser, region_help: str) -> None:
    """Where the delivery log is: the options every one of these commands takes."""
    command.add_argument("--table", default=os.environ.get(LOG_ENV), help=f"the delivery log table (default: ${LOG_ENV})")
    command.add_argument("--region", help=region_help)


def add_parsers(sub: Any, region_help: str) -> None:
    """The commands' parsers, on the top parser's subparsers."""
    d = sub.add_parser("deliveries", help="what became of each notification: the delivery log, newest first",
                       description="Lists deliveries from the delivery log (one row per delivery: its status, attempts, "
                                   "last HTTP status and reason), newest first. 'deliveries show DELIVERY_ID' shows each "
                                   "attempt and the request as sent. Reads $DELIVERY_LOG_TABLE.")  # fmt: skip
    d.add_argument("show", nargs="?", choices=["show"], help="show one delivery's attempts")
    d.add_argument("delivery_id", nargs="?", help="with show: the delivery id (X-OxoFlow-Delivery)")
    d.add_argument("--workflow", help="only this workflow (one query; without it the table is scanned)")
    d.add_argument("--webhook", help="only this webhook id")
    d.add_argument("--event-id", dest="event_id", help="only this event id")
    d.add_argument("--run-id", dest="run_id", help="only this run")
    d.add_argument("--status", choices=STATUSES, help="delivered, failed (not delivered, an attempt failed), pending, dead")
    d.add_argument("--since", type=_age, default=86400.0, help="how far back: 30m, 2h, 7d (default 1d)")
    d.add_argument("--limit", type=_positive_count, default=50, help="at most this many deliveries (default 50)")
    d.add_argument("--json", action="store_true", help="one JSON object per line")
    d.add_argument("--html", metavar="FILE", help="also write one self-contained page of the deliveries to FILE")
    _log_options(d, region_help)
    d.set_defaults(run=cmd_deliveries)

    r = sub.add_parser("redeliver", help="post one delivery again now, marked as a redelivery",
                       description="Posts the delivery again, with its delivery id and 'X-OxoFlow-Redelivery: true', to the "
                                   "webhook as its config says now, even if it once got a 2xx; the attempt appears in the "
                                   "log. Reads the functions' settings from the environment, as replay does.")  # fmt: skip
    r.add_argument("delivery_id")
    r.add_argument("--workflow", help="the delivery's workflow (one query; without it the table is scanned)")
    _log_options(r, region_help)
    r.set_defaults(run=cmd_redeliver)

    e = sub.add_parser("endpoints", help="each webhook's health: success rates, durations, failing since, state",
                       description="Per webhook, from the delivery log: deliveries and success over the last hour and day, "
                                   "p50/p95 duration, failing since, and state (healthy, failing, circuit open, disabled). "
                                   "'endpoints enable WEBHOOK --workflow W' enables a disabled webhook again.")  # fmt: skip
    e.add_argument("enable", nargs="?", choices=["enable"], help="enable a disabled webhook")
    e.add_argument("webhook", nargs="?", help="with enable: the webhook id")
    e.add_argument("--workflow", help="only this workflow (with enable: the webhook's workflow, required)")
    e.add_argument("--json", action="store_true", help="one JSON object per line")
    _log_options(e, region_help)
    e.set_defaults(run=cmd_endpoints)


def _reader(args: argparse.Namespace, command: str) -> Any:
    from oxoflow_notify.aws.delivery_log_table import DeliveryLogReader

    from .cli_common import Usage, aws_client, aws_region

    if not args.table:
        raise Usage(f"{command}: no delivery log table: pass --table or set {LOG_ENV} (a stack output: oxoflow-notify env prints it)")
    return DeliveryLogReader(aws_client("dynamodb", aws_region(command, args.region)), args.table)


def _aws(command: str, exc: Exception) -> Exception:
    from .cli_common import Usage, explain_aws_error

    return Usage(explain_aws_error(exc, command))


def cmd_deliveries(args: argparse.Namespace) -> int:
    from botocore.exceptions import BotoCoreError, ClientError

    from .cli_common import Usage

    if args.show and not args.delivery_id:
        raise Usage("deliveries show: name the delivery: oxoflow-notify deliveries show DELIVERY_ID [--workflow W]")
    if args.delivery_id and not args.show:
        raise Usage(f"deliveries: unexpected {args.delivery_id!r}: to see one delivery, run deliveries show {args.delivery_id}")
    reader = _reader(args, "deliveries")
    try:
        if args.show:
            entries = reader.attempts(args.delivery_id, args.workflow)
            if not entries:
                where = f" of workflow {args.workflow}" if args.workflow else ""
                print(f"deliveries show: no delivery {args.delivery_id}{where} in the log (kept {_days()} days)", file=sys.stderr)
                return 1
            show(entries, sys.stdout)
            return 0
        filters = {k: v for k, v in (("webhook_id", args.webhook), ("event_id", args.event_id), ("run_id", args.run_id)) if v}
        entries = list(reader.recent(args.workflow, time.time() - args.since, filters))
    except (BotoCoreError, ClientError) as exc:
        raise _aws("deliveries", exc) from None
    deliveries = [d for d in fold(entries) if d.matches(args.status)][: args.limit]
    rows = [d.row() for d in deliveries]
    if args.html:
        from .deliveries_html import write_page

        try:
            write_page(args.html, deliveries, time.time())
        except OSError as exc:
            raise Usage(f"deliveries: cannot write {args.html}: {exc.strerror or exc}") from None
        print(f"wrote {args.html}", file=sys.stderr)
    if args.json:
        print_json(rows, sys.stdout)
    elif rows:
        print_table(rows, sys.stdout)
    else:
        print("no deliveries match", file=sys.stderr)
    return 0


def cmd_redeliver(args: argparse.Namespace) -> int:
    from botocore.exceptions import BotoCoreError, ClientError

    from oxoflow_notify.errors import NotifyError
    from oxoflow_notify.wiring import build_notifier

    from .cli_common import Usage, aws_region

    reader = _reader(args, "redeliver")
    try:
        entries = reader.attempts(args.delivery_id, args.workflow)
    except (BotoCoreError, ClientError) as exc:
        raise _aws("redeliver", exc) from None
    if not entries:
        print(f"redeliver: no delivery {args.delivery_id} in the log (kept {_days()} days)", file=sys.stderr)
        return 1
    event = kept_event(entries)
    if event is None:
        print("redeliver: the log did not keep this delivery's event (it was larger than the log keeps, or never posted); "
              "replay its dead letter, or publish the event again", file=sys.stderr)  # fmt: skip
        return 1
    last = entries[-1]
    attempt = max(int(e["attempt"]) for e in entries) + 1
    aws_region("redeliver", args.region)
    try:
        notifier = build_notifier()
        kind, reason = notifier.redeliver(event, str(last["config_key"]), str(last["webhook_id"]), args.delivery_id, attempt)
    except NotifyError as exc:
        raise Usage(f"redeliver: {exc} (redeliver reads the same settings as the functions)") from None
    except (BotoCoreError, ClientError) as exc:
        raise _aws("redeliver", exc) from None
    print(json.dumps({"delivery_id": args.delivery_id, "webhook_id": last["webhook_id"], "attempt": attempt,
                      "result": kind.value, "reason": reason}))  # fmt: skip
    return 0 if kind.value == "delivered" else 1


def cmd_endpoints(args: argparse.Namespace) -> int:
    from botocore.exceptions import BotoCoreError, ClientError

    from .cli_common import Usage

    if args.enable:
        return _enable(args)
    if args.webhook:
        raise Usage(f"endpoints: unexpected {args.webhook!r}: to enable it, run endpoints enable {args.webhook} --workflow W")
    reader = _reader(args, "endpoints")
    now = time.time()
    try:
        entries = list(reader.recent(args.workflow, now - 86400, {}))
    except (BotoCoreError, ClientError) as exc:
        raise _aws("endpoints", exc) from None
    rows = with_disabled(health(entries, now), args.region)
    if args.json:
        print_json(rows, sys.stdout)
    elif rows:
        print_health(rows, sys.stdout)
    else:
        print("no deliveries in the last day", file=sys.stderr)
    return 0


def with_disabled(rows: list[dict[str, Any]], region: str | None) -> list[dict[str, Any]]:
    """The rows, a webhook disabled since its last logged delivery marked so: read from the ledger's
    table (LEDGER_TABLE) when it is set and readable; a reader without access keeps the log's view."""
    table = os.environ.get("LEDGER_TABLE", "").strip()
    keys = [f"{r['config_key']}#{r['webhook_id']}" for r in rows if r.get("config_key")]
    if not table or not keys:
        return rows
    from botocore.exceptions import BotoCoreError, ClientError

    from oxoflow_notify.aws.endpoints_table import DynamoEndpointStore

    from .cli_common import aws_client, aws_region

    client = aws_client("dynamodb", aws_region("endpoints", region))
    try:
        states = DynamoEndpointStore(table, lambda: client).states(keys)
    except (BotoCoreError, ClientError):
        return rows  # e.g. a team allowed to read its delivery log only
    for row in rows:
        state = states.get(f"{row.get('config_key')}#{row['webhook_id']}")
        if state is not None and state.disabled_at is not None:
            row["state"] = "disabled"
    return rows


def _enable(args: argparse.Namespace) -> int:
    from botocore.exceptions import BotoCoreError, ClientError

    from oxoflow_notify.aws.endpoints_table import DynamoEndpointStore

    from .cli_common import Usage, aws_client, aws_region

    if not args.webhook or not args.workflow:
        raise Usage("endpoints enable: name the webhook and its workflow: oxoflow-notify endpoints enable WEBHOOK --workflow W")
    table = os.environ.get("LEDGER_TABLE", "").strip()
    if not table:
        raise Usage("endpoints enable: no ledger table: set LEDGER_TABLE (a stack output: oxoflow-notify env prints it)")
    prefix = os.environ.get("CONFIG_PREFIX", "workflows/")
    source = f"{prefix}{args.workflow}.oxoflow"  # the shared file is --workflow _default
    client = aws_client("dynamodb", aws_region("endpoints", args.region))
    store = DynamoEndpointStore(table, lambda: client)
    key = f"{source}#{args.webhook}"
    try:
        state = store.states([key]).get(key)
        store.enable(key)
    except (BotoCoreError, ClientError) as exc:
        raise _aws("endpoints enable", exc) from None
    if state is None or state.disabled_at is None:
        print(f"endpoints enable: {args.webhook} of {args.workflow} was not disabled; nothing to do")
        return 0
    print(f"endpoints enable: {args.webhook} of {args.workflow} enabled again (instances notice within a minute); "
          f"replay its endpoint_disabled letters: oxoflow-notify replay --workflow {args.workflow} --webhook {args.webhook} "
          "--reason endpoint_disabled")  # fmt: skip
    return 0


def _days() -> str:
    return os.environ.get("DELIVERY_LOG_DAYS", "30")
