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
import math
import os
import re
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from oxoflow_notify import __version__
from oxoflow_notify.errors import ConfigError, EventError, NotifyError
from oxoflow_notify.inbound.topic import publish_message, signable

TOPIC_ENV = "OXOFLOW_NOTIFY_TOPIC_ARN"
BUCKET_ENV = "OXOFLOW_NOTIFY_BUCKET"
PUBLISH_KEY_ENV = "OXOFLOW_NOTIFY_PUBLISH_KEY"  # the workflow's [publish] key: events are signed with it
SCHEMA_PATH = Path(__file__).parent.parent / "event.schema.json"


class Usage(Exception):
    """Could not run: exit 2 with this message. ``final``: waiting and trying again cannot help."""

    final = True


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


# -- configs ------------------------------------------------------------------------------------

_LINE = re.compile(r"\(line (\d+)\)|at line (\d+)")


def check_config(
    path: str, workflow: str | None = None, secrets_prefix: str = "oxoflow-notify/", targets: Any = None, config_prefix: str = "workflows/"
) -> dict[str, Any]:
    """The Lambda's own validation of one .oxoflow file, as a report. The file belongs to the workflow
    ``file_workflow`` says (the one rule validate and upload share); its references are checked
    against that workflow's scope under ``secrets_prefix``, as the Lambda checks the file at
    <config_prefix><workflow>.oxoflow. With ``targets`` (outbound.preflight.Preflight) each URL is
    also checked as the deployed functions' outbound guard will check it at send time."""
    from oxoflow_notify.config import MAX_CONFIG_BYTES, is_reference
    from oxoflow_notify.config.limits import too_big
    from oxoflow_notify.config.parse import parse_config
    from oxoflow_notify.config.scopes import secret_scope

    report: dict[str, Any] = {"file": path, "ok": False, "workflow": None, "workflow_from": None, "key": None, "scope": None,
                              "webhooks": 0, "problems": [], "notes": []}  # fmt: skip
    try:
        with Path(path).open("rb") as handle:
            raw = handle.read(MAX_CONFIG_BYTES + 1)  # no further: the Lambda refuses a bigger file unread
            size = os.fstat(handle.fileno()).st_size
    except OSError as exc:
        report["problems"].append({"line": None, "message": f"{path}: cannot read: {exc.strerror}"})
        return report
    chosen, origin, report["notes"] = file_workflow(path, raw, workflow)
    scope = secret_scope(path, secrets_prefix, workflow=chosen or "")
    report.update(workflow=chosen, workflow_from=origin, key=f"{config_prefix}{chosen}.oxoflow" if chosen else None,
                  scope="/".join(scope.segments) + "/" if scope.segments else None)  # fmt: skip
    try:
        if len(raw) > MAX_CONFIG_BYTES:
            raise too_big(path, size if size > MAX_CONFIG_BYTES else None)
        config = parse_config(raw, path, scope, targets)
    except ConfigError as exc:
        report["problems"].append({"line": _line_of(str(exc)), "message": str(exc)})
        return report
    report["webhooks"] = len(config.webhooks)
    report["problems"] = [
        {"line": line, "message": text}
        for p in (*config.problems, *filter(None, [config.publish_problem]))  # [publish]'s, checked as the Lambda checks it
        for line, text in p.parts or [(_line_of(p.message), p.message)]
    ]
    if targets is not None:
        report["notes"] += [_reference_note(path, w.id, w.url) for w in config.webhooks if is_reference(w.url)]
    if not config.webhooks and not config.problems:
        report["warnings"] = [f"{path}: no [[webhooks]] or [webhook]: events of this workflow go nowhere"]
    if chosen is None:  # upload could not place it: say so here, where `validate && upload` would find out too late
        report["problems"].append({"line": None, "message": f"{path}: which workflow is this file for? Name it <workflow>.oxoflow "
                                   "(letters, digits, '.', '_', '-'), give it a [workflow] name, or pass --workflow"})  # fmt: skip
    report["ok"] = not report["problems"]
    return report


def _reference_note(path: str, webhook_id: str, url: str) -> str:
    kind = "an ssm:" if url.startswith("ssm:") else "a secretsmanager:"
    return (f"{path}: webhook {webhook_id}: its url is {kind} reference, read by the functions when they send: "
            "whether its target is https and a public address cannot be checked offline")  # fmt: skip


def file_workflow(path: str, raw: bytes, given: str | None = None) -> tuple[str | None, str | None, list[str]]:
    """Which workflow a config file belongs to, by the one rule validate and upload share: ``--workflow``
    if given; else the file's ``[workflow] name``; else its file name, <workflow>.oxoflow
    (_default.oxoflow: the org-wide file, the shared scope). Upload puts it at <prefix><workflow>.oxoflow,
    and the Lambda reads it there as that workflow's file. Returns (workflow, where it came from, notes)."""
    from oxoflow_notify.config.scopes import workflow_of
    from oxoflow_notify.inbound.events import WORKFLOW_NAME

    named, by_name = workflow_name(raw), workflow_of(path)
    notes: list[str] = []
    if named is not None and not WORKFLOW_NAME.match(named):
        notes.append(f"{path}: [workflow] name is not a workflow name events can carry (letters, digits, '.', '_' or '-', "
                     "at most 128): it is not used")  # fmt: skip
        named = None
    chosen: str | None
    origin: str | None
    if given is not None:
        chosen, origin = given, "--workflow"
    elif named is not None:
        chosen, origin = named, "[workflow] name"
    else:
        chosen, origin = by_name, "the file name" if by_name else None
    others = [(what, name) for what, name in (("[workflow] name", named), ("the file name", by_name)) if what != origin and name]
    notes += [f"{path}: {what} says '{name}'; {origin} '{chosen}' wins" for what, name in others if name != chosen]
    return chosen, origin, notes


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


def _targets(args: argparse.Namespace, command: str) -> Any:
    """The outbound guard's checks as the deployed functions apply them: REQUIRE_HTTPS and
    TARGET_ALLOWLIST from the environment (``eval "$(oxoflow-notify env)"`` of a stack sets them),
    overridden by --allow-http and --allowlist, which mirror the template's parameters."""
    from oxoflow_notify.aws.settings import guard_from
    from oxoflow_notify.errors import SettingsError
    from oxoflow_notify.outbound.preflight import Preflight

    try:
        return Preflight(guard_from(os.environ, args.allow_http, args.allowlist), resolve=args.resolve)
    except (SettingsError, ValueError) as exc:
        hint = (
            "true or false, as the template's RequireHttps" if "REQUIRE_HTTPS" in str(exc) else "CIDR ranges such as 10.0.0.0/8,127.0.0.0/8"
        )
        flag = "$REQUIRE_HTTPS takes" if "REQUIRE_HTTPS" in str(exc) else "--allowlist and $TARGET_ALLOWLIST take"
        raise Usage(f"{command}: {exc} ({flag} {hint})") from None


WORKFLOW_HELP = ("the workflow the file belongs to: its key and the secret scope its references keep to (default: the "
                 "file's [workflow] name, else its file name, <workflow>.oxoflow; _default: the shared scope)")  # fmt: skip


def _target_options(command: argparse.ArgumentParser) -> None:
    """The flags that mirror the template's RequireHttps and TargetAllowlist parameters."""
    command.add_argument("--allow-http", action="store_true",
                         help="accept plain http URLs, as a stack deployed with RequireHttps=false does "
                              "(default: $REQUIRE_HTTPS, else https only)")  # fmt: skip
    command.add_argument("--allowlist", metavar="CIDR,...",
                         help="address ranges webhooks may reach although not public, as the stack's TargetAllowlist "
                              "(default: $TARGET_ALLOWLIST)")  # fmt: skip
    command.add_argument("--resolve", action="store_true",
                         help="look host names up in DNS and check their addresses too "
                              "(default: only IP literals and localhost names)")  # fmt: skip


def _print_report(report: dict[str, Any]) -> None:
    """Problems and warnings on stderr; notes, and the verdict with the workflow it was checked as, on stdout."""
    for problem in report["problems"]:
        print(problem["message"], file=sys.stderr)
    for note in report.get("notes", []):
        print(f"note: {note}")
    for warning in report.get("warnings", []):
        print(f"warning: {warning}", file=sys.stderr)
    if report["workflow"] is None:
        checked_as = "checked with no workflow known (no --workflow, no [workflow] name, no <workflow>.oxoflow file name)"
    else:
        where = "the shared scope" if report["workflow"] == "_default" else f"workflow '{report['workflow']}'"
        checked_as = f"checked as {where} ({report['workflow_from']}): upload puts it at {report['key']}"
    if report["ok"]:
        count = report["webhooks"]
        print(f"{report['file']}: ok ({count} webhook{'s' if count != 1 else ''}), {checked_as}")
    elif report["problems"] and report["key"] is not None:
        count = len(report["problems"])
        print(f"{report['file']}: {count} problem{'s' if count != 1 else ''}, {checked_as}")


def cmd_validate(args: argparse.Namespace) -> int:
    workflow, prefix = _scope_options(args, "validate")
    targets = _targets(args, "validate")
    config_prefix = os.environ.get("CONFIG_PREFIX", "workflows/")
    reports = [check_config(path, workflow, prefix, targets, config_prefix) for path in args.files]
    if args.json:
        print(json.dumps(reports, indent=2))
    else:
        for report in reports:
            _print_report(report)
    if any(_unreadable(path) for path in args.files):
        return 2  # a missing or unreadable file: could not run (its problem is printed above)
    return 0 if all(r["ok"] for r in reports) else 1


def _unreadable(path: str) -> str | None:
    """Why ``path`` cannot be read as a file ("cannot read my.oxoflow: No such file or directory"), else None."""
    try:
        with Path(path).open("rb"):
            return None
    except OSError as exc:
        return f"cannot read {path}: {exc.strerror}"


def cmd_upload(args: argparse.Namespace) -> int:
    workflow, prefix = _scope_options(args, "upload")
    if _unreadable(args.file):  # could not run (2), not an invalid file (1)
        raise Usage(f"upload: {_unreadable(args.file)}")
    # validate's checks, for the workflow (so the key and the secret scope) file_workflow says
    report = check_config(args.file, workflow, prefix, _targets(args, "upload"), args.prefix)
    if not report["ok"]:
        _print_report(report)
        print(f"upload: {args.file} is not valid; nothing uploaded", file=sys.stderr)
        return 1
    workflow = report["workflow"]
    if not workflow:
        raise Usage(f"upload: {args.file}: no workflow: the file has no [workflow] name and is not named <workflow>.oxoflow; "
                    "pass --workflow NAME")  # fmt: skip
    for note in report["notes"]:
        print(f"note: {note}", file=sys.stderr)
    print(f"upload: {args.file} is workflow '{workflow}' ({report['workflow_from']})", file=sys.stderr)
    bucket = args.bucket or os.environ.get(BUCKET_ENV) or os.environ.get("CONFIG_BUCKET")
    if not bucket:
        raise Usage(f"upload: no bucket: pass --bucket or set {BUCKET_ENV} (the stack's ConfigBucketName output)")
    key = f"{args.prefix}{workflow}.oxoflow"
    region = aws_region("upload", args.region)
    try:
        aws_client("s3", region).put_object(Bucket=bucket, Key=key, Body=Path(args.file).read_bytes(), ContentType="application/toml")
    except _aws_errors() as exc:
        raise Usage(explain_aws_error(exc, "upload")) from None
    print(f"s3://{bucket}/{key}")
    return 0


# -- signatures ---------------------------------------------------------------------------------


def cmd_verify(args: argparse.Namespace) -> int:
    from oxoflow_notify.outbound.verify import standard_problem, verify_hub, verify_oxoflow

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
        try:
            problem = standard_problem(secret, headers, body, tolerance=args.tolerance)
        except ValueError:  # binascii.Error: the key is the base64 after whsec_
            raise Usage("verify: the secret is not a Standard Webhooks secret: write whsec_ followed by its base64") from None
        if problem:
            print(f"invalid Standard Webhooks request: {problem}", file=sys.stderr)
            return 1
        ok, scheme = True, "Standard Webhooks"
    elif "x-oxoflow-signature" in lowered:
        ok, scheme = verify_oxoflow([secret], body, lowered["x-oxoflow-signature"]), "X-OxoFlow-Signature"
    elif "x-hub-signature-256" in lowered:
        ok, scheme = verify_hub(secret, body, lowered["x-hub-signature-256"]), "X-Hub-Signature-256"
    else:
        raise Usage("verify: no signature: pass --signature 'sha256=...' or --header 'Name: value' (repeatable)")
    if ok:
        print(f"valid {scheme} signature ({len(body)} bytes)")
        return 0
    given = lowered.get("x-oxoflow-signature" if scheme == "X-OxoFlow-Signature" else "x-hub-signature-256", "")
    prefix = "hmac-sha256=" if scheme == "X-OxoFlow-Signature" else "sha256="
    if not re.fullmatch(re.escape(prefix) + "[0-9a-fA-F]{64}", given.strip()):
        print(f"malformed {scheme} signature: expected {prefix} and 64 hex digits, got {given.strip()[:80]!r}", file=sys.stderr)
        return 1
    print(f"invalid {scheme} signature: this secret did not sign these {len(body)} bytes", file=sys.stderr)
    return 1


def _header(text: str) -> tuple[str, str]:
    name, sep, value = text.partition(":")
    if not sep or not name.strip():
        raise Usage(f"verify: --header wants 'Name: value', got {text[:60]!r}")
    return name.strip(), value.strip()


# -- local tools from the checkout --------------------------------------------------------------


def local_toolkit() -> Path:
    """scripts/ of the project checkout (the working directory's, or this package's own): where
    the local toolkit (``oxolocal``: the moto stack, template.yaml's functions) lives."""
    for root in (Path.cwd(), Path(__file__).resolve().parents[4]):  # .../layers/notify/oxoflow_notify/tools/cli.py
        if (root / "scripts" / "oxolocal" / "invoke.py").is_file() and (root / "template.yaml").is_file():
            return root / "scripts"
    raise Usage("invoke: needs the project checkout (template.yaml and scripts/oxolocal); run it from the repository root")


def run_invoke(argv: Sequence[str]) -> int:
    """``invoke``: the local toolkit's own command, imported (its options are its own, --help too)."""
    scripts = str(local_toolkit())
    if scripts not in sys.path:
        sys.path.insert(0, scripts)
    from oxolocal.invoke import main as invoke_main

    try:
        return invoke_main(list(argv))
    except SystemExit as exc:  # argparse's --help (0) and usage errors (2)
        return exc.code if isinstance(exc.code, int) else 1


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


def cmd_follow(args: argparse.Namespace) -> int:
    from .follow import Follower

    log = Path(args.log)
    if log.is_dir():
        raise Usage(f"follow: {log} is a directory; give the run's execution log (JSON lines)")
    if not log.exists() and not args.wait_for_log:
        raise Usage(f"follow: no such file: {log}; give the run's execution log (JSON lines), or pass --wait-for-log "
                    "to wait for the run to create it")  # fmt: skip
    topic = args.topic_arn or os.environ.get(TOPIC_ENV)
    if not topic and not args.dry_run:
        raise Usage(f"follow: no topic: pass --topic-arn or set {TOPIC_ENV} (the stack's TopicArn output)")
    sns = None if args.dry_run else aws_client("sns", aws_region("follow", args.region, topic))
    key = publish_key(args, "follow")

    def publish(message: dict[str, Any]) -> str:
        checked = checked_event(message)
        if sns is None:
            print(json.dumps(checked, ensure_ascii=False))
            return "dry-run"
        try:
            return publish_message(sns, str(topic), checked, key)
        except _final_aws_errors() as exc:  # no credentials, no profile: trying again cannot help
            raise Usage(explain_aws_error(exc, "follow")) from None

    if not log.exists():
        print(f"follow: waiting for {log} to be created", file=sys.stderr)
    follower = Follower(log, publish, workflow=args.workflow, state=_follow_state(args.state),
                        from_start=args.from_start, log=lambda text: print(text, file=sys.stderr))  # fmt: skip
    return follower.run(poll=args.poll, until_done=args.until_done, idle_exit=args.idle_exit)


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


def _follow_state(state: str | None) -> Path | None:
    """--state, checked before the first line is published: a position that cannot be saved would
    publish the log again after every restart."""
    if state is None:
        return None
    path = Path(state)
    if path.is_dir():
        raise Usage(f"follow: --state {state} is a directory; give a file to keep the position in, e.g. {state.rstrip('/')}/run.json")
    if not path.parent.is_dir():
        raise Usage(f"follow: --state {state}: no such folder {path.parent}; create it or give another file")
    return path


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
