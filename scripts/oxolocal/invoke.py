#!/usr/bin/env python3
"""Docker-free `sam local invoke`: run a function of template.yaml in-process against moto.

    oxoflow-notify invoke DispatchFunction -e events/sns-rule-failed.json
    python scripts/invoke.py RetryFunction -e events/sqs-retry.json --env-vars events/env-vars.json

The command's own module (``oxoflow-notify invoke`` imports it; ``scripts/invoke.py`` is a shim):
it belongs to the local toolkit, beside the moto stack it drives, not to the Lambda layer.

Reads Handler, CodeUri, Layers and Environment from template.yaml (Globals applied), creates the
template's topic, bucket and queues on a moto server (started here, or the one AWS_ENDPOINT_URL
names), uploads the sample configs from events/*.oxoflow, runs the handler with the event and
prints its result. What the invocation left in the retry and dead-letter queues goes to stderr.
Running it again on the same endpoint reuses what is there.

The IngestFunction's secret (the template's IngestSecret) is created with SAMPLE_INGEST_SECRET
when the endpoint has none, so events/url-oxoflow-workflow-completed.json, signed with it,
answers 202. A throwaway local value: never use it for a deployed stack.

Exit codes: 0 ran (the handler's result printed), 1 the event is wrong (not the function's kind)
or the handler raised, 2 could not run (no such function, file or endpoint).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import traceback
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from oxolocal import template as tpl
from oxolocal.stack import Stack, moto_server, repo_path, use_local_aws


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="invoke",
        description="Run a function of template.yaml locally, in-process, against moto (no Docker, no AWS account).",
    )
    parser.add_argument("function", help="logical id of the function in template.yaml, e.g. DispatchFunction")
    parser.add_argument("-e", "--event", help="event JSON file (as for `sam local invoke -e`); '-' or omitted reads stdin")
    parser.add_argument("-t", "--template", default=str(tpl.TEMPLATE), help="SAM template (default: template.yaml)")
    parser.add_argument("-n", "--env-vars", help="JSON file of environment overrides, in `sam local invoke` format")
    parser.add_argument(
        "--config",
        action="append",
        default=[],
        metavar="WORKFLOW=FILE",
        help="upload FILE as the .oxoflow of WORKFLOW before invoking (repeatable)",
    )
    parser.add_argument("--no-seed", action="store_true", help="do not upload events/*.oxoflow")
    return parser.parse_args(argv)


SAMPLE_INGEST_SECRET = "sample-ingest-secret"  # signs events/url-oxoflow-workflow-completed.json; local only
# The event each kind of trigger hands a function, and a sample of it.
SHAPES = {
    "SNS": ("an SNS event", "events/sns-rule-failed.json"),
    "SQS": ("an SQS event", "events/sqs-retry.json"),
    "URL": ("a Function URL request", "events/url-oxoflow-workflow-completed.json"),
}


class Refused(Exception):
    """One sentence for the user, and the exit code: 2 could not run, 1 the event is wrong."""

    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


def env_overrides(path: str | None, function: str) -> dict[str, str]:
    """sam's --env-vars format: {"Parameters": {...all functions}, "<LogicalId>": {...}}."""
    if not path:
        return {}
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise Refused(f"invoke: --env-vars: no such file: {path}; give a JSON file of environment overrides in "
                      "`sam local invoke` format, such as events/env-vars.json") from None  # fmt: skip
    except (OSError, UnicodeDecodeError) as exc:
        raise Refused(f"invoke: --env-vars: cannot read {path}: {exc.__class__.__name__}") from None
    except ValueError as exc:
        raise Refused(f"invoke: --env-vars: {path} is not valid JSON ({exc})") from None
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise Refused(f"invoke: --env-vars: {path} must be a JSON object of objects, such as events/env-vars.json")
    merged = {**data.get("Parameters", {}), **data.get(function, {})}
    return {k: str(v) for k, v in merged.items()}


def read_event(path: str | None) -> tuple[Any, str]:
    """The event and where it came from, for messages ("the event in x.json", "the event on stdin")."""
    if path in (None, "-"):
        raw, where = sys.stdin.read(), "the event on stdin"
    else:
        where = f"the event in {path}"
        try:
            raw = Path(path).read_text(encoding="utf-8")
        except FileNotFoundError:
            raise Refused(f"invoke: no such event file: {path}; give a Lambda event such as events/sns-rule-failed.json") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise Refused(f"invoke: cannot read the event file {path}: {exc.__class__.__name__}") from None
    try:
        return json.loads(raw), where
    except ValueError as exc:
        raise Refused(f"invoke: {where} is not valid JSON ({exc})", 1) from None


def trigger(template: dict[str, Any], function: str) -> str | None:
    """What invokes the function in the template: SNS, SQS or its URL (None if nothing we know)."""
    properties = template["Resources"][function].get("Properties", {})
    for spec in (properties.get("Events") or {}).values():
        if spec.get("Type") in ("SNS", "SQS"):
            return str(spec["Type"])
    urls = (r.get("Properties", {}) for r in template["Resources"].values() if r.get("Type") == "AWS::Lambda::Url")
    if "FunctionUrlConfig" in properties or any(_names(u.get("TargetFunctionArn"), function) for u in urls):
        return "URL"
    return None


def _names(value: Any, logical_id: str) -> bool:
    """``!Ref X`` or ``!GetAtt X.Arn`` (in either of the loader's forms) names X."""
    if isinstance(value, dict):
        target = value.get("Ref") or value.get("Fn::GetAtt")
        target = target.split(".")[0] if isinstance(target, str) else (target or [None])[0]
        return bool(target == logical_id)
    return False


def check_shape(kind: str | None, event: Any, where: str) -> None:
    """Refuse (exit 1) an event the function's trigger would never send, naming a sample that fits."""
    if kind is None:
        return
    what, sample = SHAPES[kind]
    if kind == "URL":
        if not isinstance(event, dict) or not isinstance(event.get("headers"), dict) or "body" not in event:
            raise Refused(f"invoke: {where} is not {what} (no 'headers' and 'body'): give one such as {sample}", 1)
        return
    inner = "Sns" if kind == "SNS" else "body"
    records = event.get("Records") if isinstance(event, dict) else None
    if not isinstance(records, list) or not records:
        plain = isinstance(event, dict) and "event" in event and "workflow" in event
        hint = ", or publish a plain event with `oxoflow-notify publish`" if plain or kind == "SNS" else ""
        raise Refused(f"invoke: {where} is not {what} (no 'Records'): give a Lambda event such as {sample}{hint}", 1)
    if not all(isinstance(r, dict) and inner in r for r in records):
        raise Refused(f"invoke: {where} is not {what} (a record has no '{inner}'): give a Lambda event such as {sample}", 1)


def seed_ingest_secret(env: dict[str, str]) -> None:
    """Store SAMPLE_INGEST_SECRET where the function reads its ingest secret, unless one is there."""
    import boto3

    where = env.get("INGEST_SECRET", "")
    kind, _, name = where.partition(":")
    if kind == "ssm" and name:
        ssm = boto3.client("ssm")
        try:
            ssm.get_parameter(Name=name)
        except ssm.exceptions.ParameterNotFound:
            ssm.put_parameter(Name=name, Value=SAMPLE_INGEST_SECRET, Type="SecureString")
    elif kind == "secretsmanager" and name:
        secrets = boto3.client("secretsmanager")
        secret_id = name.split("#", 1)[0]
        try:
            secrets.describe_secret(SecretId=secret_id)
        except secrets.exceptions.ResourceNotFoundException:
            secrets.create_secret(Name=secret_id, SecretString=SAMPLE_INGEST_SECRET)


def peek(stack: Stack, url: str) -> list[dict[str, Any]]:
    return [
        json.loads(stack.resolve(m["Body"]))  # a letter kept in S3 behind a pointer: the letter
        for m in stack.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0).get("Messages", [])
    ]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return invoke(args)
    except Refused as exc:
        print(str(exc), file=sys.stderr)
        return exc.code


def invoke(args: argparse.Namespace) -> int:
    template = tpl.load(Path(args.template))
    functions = tpl.functions(template, Path(args.template).resolve().parent)
    if args.function not in functions:
        raise Refused(f"invoke: no function '{args.function}' in {args.template}; choose one of {', '.join(functions)}")
    overrides = env_overrides(args.env_vars, args.function)
    configs = [config_arg(item) for item in args.config]
    event, where = read_event(args.event)
    check_shape(trigger(template, args.function), event, where)

    with ExitStack() as stack_ctx:
        endpoint = os.environ.get("AWS_ENDPOINT_URL") or stack_ctx.enter_context(moto_server())
        use_local_aws(endpoint)
        stack = Stack(template, name_prefix="oxoflow-invoke").provision()  # never the local stack's own resources
        if not args.no_seed:
            for path in sorted(repo_path("events").glob("*.oxoflow")):
                stack.put_config(path.stem, path.read_text(encoding="utf-8"))
        for workflow, text in configs:
            stack.put_config(workflow, text)
        seed_ingest_secret(stack.function_env(args.function, overrides))
        try:
            # Like `sam local invoke`: the function's logs on stderr, only its result on stdout.
            with contextlib.redirect_stdout(sys.stderr):
                result = stack.invoke(args.function, event, overrides)
        except Exception:  # noqa: BLE001 - report like Lambda does, then fail
            traceback.print_exc()
            return 1
        print(json.dumps(result, indent=2, default=str))
        report_queues(stack)
    return 0


def config_arg(item: str) -> tuple[str, str]:
    """--config WORKFLOW=FILE -> (workflow, the file's text)."""
    workflow, _, file = item.partition("=")
    if not workflow or not file:
        raise Refused(f"invoke: --config wants WORKFLOW=FILE, got {item!r}")
    try:
        return workflow, Path(file).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise Refused(f"invoke: --config {workflow}: no such file: {file}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise Refused(f"invoke: --config {workflow}: cannot read {file}: {exc.__class__.__name__}") from None


def report_queues(stack: Stack) -> None:
    for label, url in (("retry queue", stack.retry_queue_url), ("dead-letter queue", stack.dead_letter_queue_url)):
        messages = peek(stack, url)
        depth = stack.depth(url)
        print(f"-- {label}: {depth['visible']} visible, {depth['delayed']} delayed", file=sys.stderr)
        for message in messages:
            reason = message.get("reason") or f"attempt {message.get('attempt')} of webhook {message.get('webhook_id')}"
            print(f"   {reason}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
