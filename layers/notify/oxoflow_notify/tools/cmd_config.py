"""`oxoflow-notify validate` and `upload`: .oxoflow files checked as the Lambda will check them (the dispatcher's
own parser, its outbound guard, the stack's settings), then put where the Lambda reads them.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

from oxoflow_notify.errors import ConfigError

from .cli_common import BUCKET_ENV, Usage, _aws_errors, aws_client, aws_region, explain_aws_error

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
