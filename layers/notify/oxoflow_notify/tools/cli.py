"""`oxoflow-notify`: publish events, check and upload configs, verify signatures, follow a run's log.

Installed as a console script by `pip install .`; from a checkout, `python -m oxoflow_notify.tools.cli`.
This module is the parser and the dispatch; each command lives in its own module (``cmd_*``, and
``delivery_commands``), what they share in ``cli_common``.
Every subcommand exits 0 on success, 1 when what it checked is wrong (an invalid event or config,
a bad signature, a failed replay) and 2 when it could not run (no topic, no credentials, a
missing file). Errors go to stderr and name the file, line or field.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from oxoflow_notify import __version__
from oxoflow_notify.errors import EventError

from .cli_common import BUCKET_ENV as BUCKET_ENV
from .cli_common import (
    PUBLISH_KEY_HELP,
    REGION_HELP,
    WORKFLOW_HELP,
    _age,
    _count,
    _positive,
    _seconds,
    explain_aws_error,
)
from .cli_common import TOPIC_ENV as TOPIC_ENV
from .cli_common import Usage as Usage
from .cmd_config import (
    _target_options,
    cmd_upload,
    cmd_validate,
)
from .cmd_config import check_config as check_config
from .cmd_config import file_workflow as file_workflow
from .cmd_follow import cmd_follow
from .cmd_invoke import local_toolkit as local_toolkit
from .cmd_invoke import run_invoke
from .cmd_publish import checked_event as checked_event  # where callers have always found them
from .cmd_publish import cmd_publish
from .cmd_publish import schema_problems as schema_problems
from .cmd_replay import cmd_replay
from .cmd_verify import cmd_verify


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="oxoflow-notify",
        description="Publish oxo-flow workflow events to oxoflow-notify and manage its webhooks.",
        epilog="Run 'oxoflow-notify <command> --help' for a command's options. Docs: docs/publishing.md",
    )
    top.add_argument("--version", action="version", version=f"oxoflow-notify {__version__}")
    sub = top.add_subparsers(dest="command", metavar="<command>", required=True)

    p = sub.add_parser("publish", help="validate an event and publish it to the topic",
                       description="Build an event from flags, a JSON file or stdin; validate it against the event schema; "
                                   "publish it with SNS message attributes 'event' and 'workflow'; print the message id.")  # fmt: skip
    p.add_argument("file", nargs="?", help="a JSON event file, or '-' for stdin (flags override its fields)")
    p.add_argument("--event", help="WorkflowStarted, RuleFailed, ... (or snake_case: rule_failed)")
    p.add_argument("--workflow", help="workflow name: selects <prefix><workflow>.oxoflow")
    p.add_argument("--rule", help="rule name (Rule* events)")
    p.add_argument("--message", help="one readable line; a default is written when omitted")
    p.add_argument("--details", help="a JSON object of facts: '{\"exit_code\": 1}'")
    p.add_argument("--run-id", dest="run_id", help="the run this event belongs to")
    p.add_argument("--timestamp", help="RFC 3339 with an offset (default: when SNS receives it)")
    p.add_argument("--id", help="event id (default: the SNS message id); the same --id and --timestamp make re-publishing safe")
    p.add_argument("--topic-arn", help=f"the topic (default: ${TOPIC_ENV})")
    p.add_argument("--publish-key-file", metavar="FILE", help=PUBLISH_KEY_HELP)
    p.add_argument("--region", help=REGION_HELP)
    p.add_argument("--dry-run", action="store_true", help="validate and print the message; publish nothing")
    p.set_defaults(run=cmd_publish)

    v = sub.add_parser("validate", help="check .oxoflow files as the Lambda will",
                       description="Apply the dispatcher's own validation and its outbound guard's checks of each URL "
                                   "(https, no private or loopback address), with the stack's settings; report each problem "
                                   "with file, line and a did-you-mean. Exit 0 when every file is valid, 1 otherwise.")  # fmt: skip
    v.add_argument("files", nargs="+", metavar="FILE.oxoflow")
    v.add_argument("--json", action="store_true", help="machine-readable report on stdout")
    v.add_argument("--workflow", help=WORKFLOW_HELP)
    v.add_argument("--secrets-prefix", help="the stack's SecretsPrefix (default: $SECRETS_PREFIX, else oxoflow-notify/)")
    _target_options(v)
    v.set_defaults(run=cmd_validate)

    u = sub.add_parser("upload", help="validate a .oxoflow file, then put it where the Lambda reads it",
                       description="Refuses a file validate refuses. The key is <prefix><workflow>.oxoflow, the workflow "
                                   "chosen as validate chooses it: --workflow, else [workflow] name, else the file name.")  # fmt: skip
    u.add_argument("file", metavar="FILE.oxoflow")
    u.add_argument("--workflow", help=WORKFLOW_HELP)
    _target_options(u)
    u.add_argument("--bucket", help=f"config bucket (default: ${BUCKET_ENV})")
    u.add_argument("--region", help=REGION_HELP)
    u.add_argument("--prefix", default=os.environ.get("CONFIG_PREFIX", "workflows/"), help="key prefix (default: workflows/)")
    u.add_argument("--secrets-prefix", help="the stack's SecretsPrefix (default: $SECRETS_PREFIX, else oxoflow-notify/)")
    u.set_defaults(run=cmd_upload)

    s = sub.add_parser("verify", help="check a webhook signature (for debugging a receiver)",
                       description="Verify X-Hub-Signature-256, X-OxoFlow-Signature or Standard Webhooks headers over a "
                                   "body. Exit 0 if valid, 1 if not.")  # fmt: skip
    s.add_argument("--body", help="file holding the exact body bytes ('-' or omitted: stdin)")
    s.add_argument("--secret-file", help="file holding the secret (keeps it out of shell history)")
    s.add_argument("--secret", help="the secret (prefer --secret-file or $OXOFLOW_NOTIFY_SECRET)")
    s.add_argument("--signature", help="'sha256=<hex>' or 'hmac-sha256=<hex>'")
    s.add_argument("--header", action="append", default=[], help="'Name: value', repeatable (webhook-id, webhook-timestamp, ...)")
    s.add_argument(
        "--tolerance", type=_positive("--tolerance"), default=300, help="Standard Webhooks timestamp tolerance, seconds (default 300)"
    )
    s.set_defaults(run=cmd_verify)

    i = sub.add_parser("invoke", help="run a function locally without Docker (like sam local invoke)", add_help=False,
                       description="Runs a function of the checkout's template.yaml; see 'oxoflow-notify invoke --help'.")  # fmt: skip
    i.add_argument("rest", nargs=argparse.REMAINDER)
    i.set_defaults(run=lambda a: run_invoke(a.rest))

    r = sub.add_parser("replay", help="re-deliver dead letters, deleting only what succeeded",
                       description="Reads the dead-letter queue, filters, re-delivers each once with the current config and "
                                   "deletes only what succeeded. Reads the functions' settings from the environment. "
                                   "With --on-failure, publishes the event of each Lambda on-failure record to the topic "
                                   "again, keeping its event id (so its delivery ids), and deletes only what was published.")  # fmt: skip
    r.add_argument(
        "--queue-url", default=os.environ.get("DEAD_LETTER_QUEUE_URL"), help="dead-letter queue (default: $DEAD_LETTER_QUEUE_URL)"
    )
    r.add_argument("--workflow", help="only this workflow's events")
    r.add_argument("--webhook", help="only this webhook id")
    r.add_argument("--event", help="only this event type, e.g. RuleFailed")
    r.add_argument("--reason", help="only this reason code, e.g. retries_exhausted, permanent_failure")
    r.add_argument("--older-than", type=_age, help="only letters older than this (30m, 12h, 7d)")
    r.add_argument("--newer-than", type=_age, help="only letters newer than this")
    r.add_argument("--limit", type=_count("--limit"), help="look at no more than this many messages")
    r.add_argument("--dry-run", action="store_true", help="show what would be replayed; send and delete nothing")
    r.add_argument("--on-failure", action="store_true",
                   help="recover Lambda on-failure records (whole events the dispatcher failed on): publish each event "
                        "again with its original event id; needs the topic, not the functions' settings")  # fmt: skip
    r.add_argument("--topic-arn", help=f"with --on-failure: the topic (default: ${TOPIC_ENV})")
    r.add_argument("--region", help=REGION_HELP)
    r.set_defaults(run=cmd_replay)

    f = sub.add_parser("follow", help="tail a run's JSON-lines execution log and publish each event",
                       description="Publishes workflow_started, rule_started, rule_completed (a failing status becomes "
                                   "RuleFailed), rule_skipped, workflow_completed and workflow_cancelled records as they "
                                   "are written. Survives log rotation; remembers where it stopped (--state) and resumes. "
                                   "Exits 1 if it skipped a line (each reported with its line number).")  # fmt: skip
    f.add_argument("log", help="the execution-event log (JSON lines)")
    f.add_argument("--workflow", help="workflow name for records that do not carry one")
    f.add_argument("--state", help="where to remember the position (default: <log>.oxoflow-notify.json)")
    f.add_argument("--from-start", action="store_true", help="with no saved position, read the log from its start (default: the end)")
    f.add_argument("--until-done", action="store_true", help="exit after the run's workflow_completed/failed/cancelled")
    f.add_argument("--idle-exit", type=_seconds, help="exit after this long without new lines: seconds (90) or 30s, 10m, 1h")
    f.add_argument("--wait-for-log", action="store_true", help="wait for the log to be created (default: a missing log is an error)")
    f.add_argument("--poll", type=_positive("--poll"), default=0.5, help="seconds between checks for new lines (default 0.5)")
    f.add_argument("--topic-arn", help=f"the topic (default: ${TOPIC_ENV})")
    f.add_argument("--publish-key-file", metavar="FILE", help=PUBLISH_KEY_HELP)
    f.add_argument("--region", help=REGION_HELP)
    f.add_argument("--dry-run", action="store_true", help="print the events instead of publishing them")
    f.set_defaults(run=cmd_follow)

    from .envcmd import add_env_parser

    add_env_parser(sub)  # `env`: a deployed stack's outputs as export lines (tools/envcmd.py)
    from .delivery_commands import add_parsers

    add_parsers(sub, REGION_HELP)  # `deliveries`, `redeliver`, `endpoints`: the delivery log (tools/delivery_commands.py)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["invoke"]:  # every option after it is invoke.py's own, --help included
        try:
            return run_invoke(argv[1:])
        except Usage as exc:
            print(str(exc), file=sys.stderr)
            return 2
    args = parser().parse_args(argv)
    run: Callable[[argparse.Namespace], int] = args.run
    try:
        return run(args)
    except Usage as exc:
        print(str(exc), file=sys.stderr)
        return 2
    except EventError as exc:
        print(f"{args.command}: invalid event: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `| head` closed the pipe: what was asked for was read
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error when Python flushes at exit
        return 0
    except Exception as exc:  # noqa: BLE001 - a command ends in a sentence, never a traceback
        return _unexpected(args.command, exc)


def _unexpected(command: str, exc: Exception) -> int:
    """What no branch above expected: AWS's answers it could not parse, and our own bugs. One
    sentence and exit 2; OXOFLOW_NOTIFY_DEBUG=1 shows the traceback."""
    if os.environ.get("OXOFLOW_NOTIFY_DEBUG") == "1":
        raise exc
    if _is_aws_error(exc):
        print(explain_aws_error(exc, command), file=sys.stderr)
    else:
        print(f"{command}: failed ({type(exc).__name__}: {str(exc)[:300]}); this is a bug of ours: run it again with "
              "OXOFLOW_NOTIFY_DEBUG=1 and report the traceback", file=sys.stderr)  # fmt: skip
    return 2


def _is_aws_error(exc: Exception) -> bool:
    from botocore.exceptions import BotoCoreError, ClientError
    from botocore.parsers import ResponseParserError

    return isinstance(exc, (BotoCoreError, ClientError, ResponseParserError))


if __name__ == "__main__":
    sys.exit(main())
