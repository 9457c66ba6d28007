"""`oxoflow-notify`: publish events, check and upload configs, verify signatures, follow a run's log.

Installed as a console script by `pip install .`; from a checkout, `python -m oxoflow_notify.tools.cli`.
Every subcommand exits 0 on success, 1 when what it checked is wrong (an invalid event or config,
a bad signature, a failed replay) and 2 when it could not run (no topic, no credentials, a
missing file). Errors go to stderr and name the file, line or field.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import re
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from oxoflow_notify import __version__
from oxoflow_notify.errors import ConfigError, EventError, NotifyError
from oxoflow_notify.inbound.topic import publish_message

TOPIC_ENV = "OXOFLOW_NOTIFY_TOPIC_ARN"
BUCKET_ENV = "OXOFLOW_NOTIFY_BUCKET"
SCHEMA_PATH = Path(__file__).parent.parent / "event.schema.json"


class Usage(Exception):
    """Could not run: exit 2 with this message."""


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
    from oxoflow_notify.inbound.events import check_json, parse_event

    if not isinstance(message, dict):
        raise EventError(f"an event is a JSON object, got {type(message).__name__}")
    check_json(message)  # before json.dumps, which would write NaN and recurse without limit
    parse_event(json.dumps(message), message_id="cli-check", received_at=datetime.now(UTC))
    problems = schema_problems(message)
    if problems:
        raise EventError("; ".join(problems))
    return dict(message)


def aws_client(service: str) -> Any:
    import boto3

    return boto3.client(service)


def explain_aws_error(exc: Exception, what: str) -> str:
    """The words a user needs for the usual failures, without a traceback."""
    name = type(exc).__name__
    if name in ("NoCredentialsError", "PartialCredentialsError"):
        return f"{what}: no AWS credentials found (set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)"
    if name == "NoRegionError":
        return f"{what}: no AWS region (set AWS_REGION or pass an ARN in your region)"
    if name in ("EndpointConnectionError", "ConnectTimeoutError", "ReadTimeoutError"):
        return f"{what}: cannot reach AWS ({exc})"
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        error = response.get("Error", {})
        return f"{what}: {error.get('Code', name)}: {error.get('Message', '')}".rstrip(": ")
    return f"{what}: {name}: {exc}"


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
    if args.dry_run:
        print(json.dumps(checked, ensure_ascii=False))
        return 0
    topic = args.topic_arn or os.environ.get(TOPIC_ENV)
    if not topic:
        raise Usage(f"publish: no topic: pass --topic-arn or set {TOPIC_ENV} (the stack's TopicArn output)")
    try:
        print(publish_message(aws_client("sns"), topic, checked))
    except _aws_errors() as exc:
        raise Usage(explain_aws_error(exc, "publish")) from None
    return 0


# -- configs ------------------------------------------------------------------------------------

_LINE = re.compile(r"\(line (\d+)\)|at line (\d+)")


def check_config(path: str, workflow: str | None = None, secrets_prefix: str = "oxoflow-notify/") -> dict[str, Any]:
    """The Lambda's own validation of one .oxoflow file, as a report. References are checked
    against the scope of ``workflow`` (default: the one the file name says, <workflow>.oxoflow;
    _default.oxoflow: the shared scope) under ``secrets_prefix``, as the Lambda checks them."""
    from oxoflow_notify.config import MAX_CONFIG_BYTES
    from oxoflow_notify.config.limits import too_big
    from oxoflow_notify.config.parse import parse_config
    from oxoflow_notify.config.scopes import secret_scope

    scope = secret_scope(path, secrets_prefix, workflow=workflow)
    report: dict[str, Any] = {"file": path, "ok": False, "workflow": None, "webhooks": 0, "problems": [],
                              "scope": "/".join(scope.segments) + "/" if scope.segments else None}  # fmt: skip
    try:
        with Path(path).open("rb") as handle:
            raw = handle.read(MAX_CONFIG_BYTES + 1)  # no further: the Lambda refuses a bigger file unread
            size = os.fstat(handle.fileno()).st_size
    except OSError as exc:
        report["problems"].append({"line": None, "message": f"{path}: cannot read: {exc.strerror}"})
        return report
    try:
        if len(raw) > MAX_CONFIG_BYTES:
            raise too_big(path, size if size > MAX_CONFIG_BYTES else None)
        config = parse_config(raw, path, scope)
    except ConfigError as exc:
        report["problems"].append({"line": _line_of(str(exc)), "message": str(exc)})
        return report
    report["workflow"] = workflow_name(raw)
    report["webhooks"] = len(config.webhooks)
    report["problems"] = [{"line": _line_of(p.message), "message": p.message} for p in config.problems]
    if not config.webhooks and not config.problems:
        report["warnings"] = [f"{path}: no [[webhooks]] or [webhook]: events of this workflow go nowhere"]
    report["ok"] = not report["problems"]
    return report


def _line_of(message: str) -> int | None:
    match = _LINE.search(message)
    return int(match.group(1) or match.group(2)) if match else None


def workflow_name(raw: bytes) -> str | None:
    import tomli

    try:
        document = tomli.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError):  # TOMLDecodeError and UnicodeDecodeError are ValueErrors
        return None
    workflow = document.get("workflow")
    name = workflow.get("name") if isinstance(workflow, dict) else None
    return name if isinstance(name, str) else None


def _scope_options(args: argparse.Namespace, command: str) -> tuple[str | None, str]:
    """--workflow and --secrets-prefix, checked: the scope the Lambda would apply."""
    from oxoflow_notify.config.scopes import DEFAULT_CONFIG_NAME, DEFAULT_SECRETS_PREFIX, prefix_segments
    from oxoflow_notify.inbound.events import WORKFLOW_NAME

    workflow = args.workflow
    if workflow is not None and workflow != DEFAULT_CONFIG_NAME and not WORKFLOW_NAME.match(workflow):
        raise Usage(f"{command}: workflow name {workflow!r} must be letters, digits, '.', '_' or '-' (at most 128), "
                    f"as events name it, or {DEFAULT_CONFIG_NAME}")  # fmt: skip
    try:
        given = args.secrets_prefix or os.environ.get("SECRETS_PREFIX", "").strip() or DEFAULT_SECRETS_PREFIX
        prefix = "/".join(prefix_segments(given)) + "/"
    except ValueError as exc:
        raise Usage(f"{command}: --secrets-prefix: {exc}") from None
    return workflow, prefix


def cmd_validate(args: argparse.Namespace) -> int:
    workflow, prefix = _scope_options(args, "validate")
    reports = [check_config(path, workflow, prefix) for path in args.files]
    if args.json:
        print(json.dumps(reports, indent=2))
    else:
        for report in reports:
            for problem in report["problems"]:
                print(problem["message"], file=sys.stderr)
            for warning in report.get("warnings", []):
                print(f"warning: {warning}", file=sys.stderr)
            if report["ok"]:
                print(f"{report['file']}: ok ({report['webhooks']} webhook{'s' if report['webhooks'] != 1 else ''})")
    return 0 if all(r["ok"] for r in reports) else 1


def cmd_upload(args: argparse.Namespace) -> int:
    from oxoflow_notify.inbound.events import WORKFLOW_NAME

    workflow, prefix = _scope_options(args, "upload")
    if workflow is None:  # the key it goes to decides the scope its references are checked against
        try:
            workflow = workflow_name(Path(args.file).read_bytes()[: 1 << 20])
        except OSError:
            workflow = None
    report = check_config(args.file, workflow, prefix)
    if not report["ok"]:
        for problem in report["problems"]:
            print(problem["message"], file=sys.stderr)
        print(f"upload: {args.file} is not valid; nothing uploaded", file=sys.stderr)
        return 1
    workflow = args.workflow or report["workflow"]
    if not workflow:
        raise Usage(f"upload: {args.file} has no [workflow] name; pass --workflow NAME")
    if not WORKFLOW_NAME.match(workflow):
        raise Usage(f"upload: workflow name {workflow!r} must be letters, digits, '.', '_' or '-' (at most 128), as events name it")
    bucket = args.bucket or os.environ.get(BUCKET_ENV) or os.environ.get("CONFIG_BUCKET")
    if not bucket:
        raise Usage(f"upload: no bucket: pass --bucket or set {BUCKET_ENV} (the stack's ConfigBucketName output)")
    key = f"{args.prefix}{workflow}.oxoflow"
    try:
        aws_client("s3").put_object(Bucket=bucket, Key=key, Body=Path(args.file).read_bytes(), ContentType="application/toml")
    except _aws_errors() as exc:
        raise Usage(explain_aws_error(exc, "upload")) from None
    print(f"s3://{bucket}/{key}")
    return 0


# -- signatures ---------------------------------------------------------------------------------


def cmd_verify(args: argparse.Namespace) -> int:
    from oxoflow_notify.outbound.verify import verify_hub, verify_oxoflow, verify_standard

    secret = args.secret or os.environ.get("OXOFLOW_NOTIFY_SECRET")
    if args.secret_file:
        secret = _read(args.secret_file).strip()
    if not secret:
        raise Usage("verify: no secret: pass --secret-file FILE, --secret, or set OXOFLOW_NOTIFY_SECRET")
    body = sys.stdin.buffer.read() if args.body in (None, "-") else _read_bytes(args.body)
    headers = dict(_header(h) for h in args.header)
    if args.signature:
        value = args.signature.strip()
        name = "X-OxoFlow-Signature" if value.startswith("hmac-sha256=") else "X-Hub-Signature-256"
        headers[name] = value
    lowered = {k.lower(): v for k, v in headers.items()}
    if "webhook-signature" in lowered:
        ok, scheme = verify_standard(secret, headers, body, tolerance=args.tolerance), "Standard Webhooks"
    elif "x-oxoflow-signature" in lowered:
        ok, scheme = verify_oxoflow([secret], body, lowered["x-oxoflow-signature"]), "X-OxoFlow-Signature"
    elif "x-hub-signature-256" in lowered:
        ok, scheme = verify_hub(secret, body, lowered["x-hub-signature-256"]), "X-Hub-Signature-256"
    else:
        raise Usage("verify: no signature: pass --signature 'sha256=...' or --header 'Name: value' (repeatable)")
    if ok:
        print(f"valid {scheme} signature ({len(body)} bytes)")
        return 0
    hint = " (or the timestamp is older than --tolerance)" if scheme == "Standard Webhooks" else ""
    print(f"invalid {scheme} signature: this secret did not sign these {len(body)} bytes{hint}", file=sys.stderr)
    return 1


def _header(text: str) -> tuple[str, str]:
    name, sep, value = text.partition(":")
    if not sep or not name.strip():
        raise Usage(f"verify: --header wants 'Name: value', got {text[:60]!r}")
    return name.strip(), value.strip()


# -- local tools from the checkout --------------------------------------------------------------


def checkout_script(name: str) -> Path:
    """scripts/<name> of the project checkout (the working directory or this package's own)."""
    for root in (Path.cwd(), Path(__file__).resolve().parents[3]):
        candidate = root / "scripts" / name
        if candidate.is_file() and (root / "template.yaml").is_file():
            return candidate
    raise Usage(f"{name.removesuffix('.py')}: needs the project checkout (template.yaml and scripts/); run it from the repository root")


def run_script(name: str, argv: Sequence[str]) -> int:
    import runpy

    path = checkout_script(name)
    sys.path[:0] = [str(path.parent)]
    saved = sys.argv
    sys.argv = [str(path), *argv]
    try:
        runpy.run_path(str(path), run_name="__main__")
    except SystemExit as exc:
        return int(exc.code or 0) if not isinstance(exc.code, str) else 1
    finally:
        sys.argv = saved
    return 0


def _progress_bar(done: int, total: int, last: str) -> None:
    filled = 30 * done // max(total, 1)
    print(f"\r  [{'#' * filled}{'.' * (30 - filled)}] {done}/{total} {last:<15}", end="", file=sys.stderr, flush=True)


def _print_summary(summary: Any, second: str, width: int = 20, detail_width: int = 100) -> None:
    """The replay table (message, ``second``, result, detail) and the totals."""
    print(file=sys.stderr)
    lines = [f"  {'message':38} {second:{width}} {'result':15} detail"]
    lines += [f"  {mid:38} {what[:width]:{width}} {result:15} {detail[:detail_width]}" for mid, what, result, detail in summary.rows]
    totals = ", ".join(f"{count} {result}" for result, count in sorted(summary.results.items())) or "nothing matched"
    print("\n".join([*lines, f"\n  {totals}"]))


def cmd_replay(args: argparse.Namespace) -> int:
    from oxoflow_notify.aws.wiring import build_notifier

    from .replay import Filters, Summary, replay

    if not args.queue_url:
        raise Usage("replay: no dead-letter queue: pass --queue-url or set DEAD_LETTER_QUEUE_URL (a stack output)")
    if args.on_failure:
        return replay_on_failure(args)
    try:
        notifier = build_notifier({**os.environ, "DEAD_LETTER_QUEUE_URL": args.queue_url})
    except NotifyError as exc:
        raise Usage(f"replay: {exc} (replay reads the same settings as the functions)") from None
    filters = Filters(args.workflow, args.webhook, args.event, args.reason, args.older_than, args.newer_than)
    summary: Summary = replay(
        notifier, aws_client("sqs"), args.queue_url, filters, dry_run=args.dry_run, limit=args.limit, progress=_progress_bar
    )
    _print_summary(summary, "webhook")
    return 1 if summary.results.get("failed again") else 0


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
    filters = Filters(workflow=args.workflow, event=args.event, older_than=args.older_than, newer_than=args.newer_than)
    try:
        summary = republish_on_failure(
            None if args.dry_run else aws_client("sns"),
            topic,
            aws_client("sqs"),
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


def cmd_follow(args: argparse.Namespace) -> int:
    from .follow import Follower

    topic = args.topic_arn or os.environ.get(TOPIC_ENV)
    if not topic and not args.dry_run:
        raise Usage(f"follow: no topic: pass --topic-arn or set {TOPIC_ENV} (the stack's TopicArn output)")
    sns = None if args.dry_run else aws_client("sns")

    def publish(message: dict[str, Any]) -> str:
        checked = checked_event(message)
        if sns is None:
            print(json.dumps(checked, ensure_ascii=False))
            return "dry-run"
        return publish_message(sns, str(topic), checked)

    follower = Follower(Path(args.log), publish, workflow=args.workflow, state=Path(args.state) if args.state else None,
                        from_start=args.from_start, log=lambda text: print(text, file=sys.stderr))  # fmt: skip
    return follower.run(poll=args.poll, until_done=args.until_done, idle_exit=args.idle_exit)


# -- plumbing -----------------------------------------------------------------------------------


def _read(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise Usage(f"cannot read {path}: {exc.strerror}") from None


def _read_bytes(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise Usage(f"cannot read {path}: {exc.strerror}") from None


def _age(text: str) -> float:
    from .replay import parse_age

    return parse_age(text)


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
    p.add_argument("--id", help="event id (default: the SNS message id); a stable id makes re-publishing safe")
    p.add_argument("--topic-arn", help=f"the topic (default: ${TOPIC_ENV})")
    p.add_argument("--dry-run", action="store_true", help="validate and print the message; publish nothing")
    p.set_defaults(run=cmd_publish)

    v = sub.add_parser("validate", help="check .oxoflow files as the Lambda will",
                       description="Apply the dispatcher's own validation; report each problem with file, line and a "
                                   "did-you-mean. Exit 0 when every file is valid, 1 otherwise.")  # fmt: skip
    v.add_argument("files", nargs="+", metavar="FILE.oxoflow")
    v.add_argument("--json", action="store_true", help="machine-readable report on stdout")
    v.add_argument("--workflow", help="the workflow the files belong to, whose secret scope their references must keep to "
                                      "(default: from each file name, <workflow>.oxoflow; _default: the shared scope)")  # fmt: skip
    v.add_argument("--secrets-prefix", help="the stack's SecretsPrefix (default: $SECRETS_PREFIX, else oxoflow-notify/)")
    v.set_defaults(run=cmd_validate)

    u = sub.add_parser("upload", help="validate a .oxoflow file, then put it where the Lambda reads it",
                       description="Refuses an invalid file. The key is <prefix><workflow>.oxoflow, the workflow taken from "
                                   "[workflow] name or --workflow.")  # fmt: skip
    u.add_argument("file", metavar="FILE.oxoflow")
    u.add_argument("--workflow", help="workflow name (default: [workflow] name in the file)")
    u.add_argument("--bucket", help=f"config bucket (default: ${BUCKET_ENV})")
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
    s.add_argument("--tolerance", type=float, default=300, help="Standard Webhooks timestamp tolerance, seconds (default 300)")
    s.set_defaults(run=cmd_verify)

    i = sub.add_parser("invoke", help="run a function locally without Docker (like sam local invoke)", add_help=False,
                       description="Runs scripts/invoke.py of the checkout; see 'oxoflow-notify invoke --help'.")  # fmt: skip
    i.add_argument("rest", nargs=argparse.REMAINDER)
    i.set_defaults(run=lambda a: run_script("invoke.py", a.rest))

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
    r.add_argument("--limit", type=int, help="look at no more than this many messages")
    r.add_argument("--dry-run", action="store_true", help="show what would be replayed; send and delete nothing")
    r.add_argument("--on-failure", action="store_true",
                   help="recover Lambda on-failure records (whole events the dispatcher failed on): publish each event "
                        "again with its original event id; needs the topic, not the functions' settings")  # fmt: skip
    r.add_argument("--topic-arn", help=f"with --on-failure: the topic (default: ${TOPIC_ENV})")
    r.set_defaults(run=cmd_replay)

    f = sub.add_parser("follow", help="tail a run's JSON-lines execution log and publish each event",
                       description="Publishes workflow_started, rule_started, rule_completed (a failing status becomes "
                                   "RuleFailed), rule_skipped, workflow_completed and workflow_cancelled records as they "
                                   "are written. Survives log rotation; remembers where it stopped (--state) and resumes.")  # fmt: skip
    f.add_argument("log", help="the execution-event log (JSON lines)")
    f.add_argument("--workflow", help="workflow name for records that do not carry one")
    f.add_argument("--state", help="where to remember the position (default: <log>.oxoflow-notify.json)")
    f.add_argument("--from-start", action="store_true", help="with no saved position, read the log from its start (default: the end)")
    f.add_argument("--until-done", action="store_true", help="exit after the run's workflow_completed/failed/cancelled")
    f.add_argument("--idle-exit", type=float, help="exit after this many seconds without new lines")
    f.add_argument("--poll", type=float, default=0.5, help="seconds between checks for new lines (default 0.5)")
    f.add_argument("--topic-arn", help=f"the topic (default: ${TOPIC_ENV})")
    f.add_argument("--dry-run", action="store_true", help="print the events instead of publishing them")
    f.set_defaults(run=cmd_follow)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["invoke"]:  # every option after it is invoke.py's own, --help included
        try:
            return run_script("invoke.py", argv[1:])
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


if __name__ == "__main__":
    sys.exit(main())
