#!/usr/bin/env python3
"""Docker-free `sam local invoke`: run a function of template.yaml in-process against moto.

    python scripts/invoke.py DispatchFunction -e events/sns-rule-failed.json
    python scripts/invoke.py RetryFunction -e events/sqs-retry.json --env-vars env.json

Reads Handler, CodeUri, Layers and Environment from template.yaml (Globals applied), creates the
template's topic, bucket and queues on a moto server (started here, or the one AWS_ENDPOINT_URL
names), uploads the sample configs from events/*.oxoflow, runs the handler with the event and
prints its result. What the invocation left in the retry and dead-letter queues goes to stderr.
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

sys.path.insert(0, str(Path(__file__).resolve().parent))

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


def env_overrides(path: str | None, function: str) -> dict[str, str]:
    """sam's --env-vars format: {"Parameters": {...all functions}, "<LogicalId>": {...}}."""
    if not path:
        return {}
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    merged = {**data.get("Parameters", {}), **data.get(function, {})}
    return {k: str(v) for k, v in merged.items()}


def peek(stack: Stack, url: str) -> list[dict[str, Any]]:
    return [
        json.loads(m["Body"])
        for m in stack.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0).get("Messages", [])
    ]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    template = tpl.load(Path(args.template))
    functions = tpl.functions(template, Path(args.template).resolve().parent)
    if args.function not in functions:
        print(f"invoke: no function '{args.function}' in {args.template}; choose one of {', '.join(functions)}", file=sys.stderr)
        return 2
    raw = sys.stdin.read() if args.event in (None, "-") else Path(args.event).read_text(encoding="utf-8")
    try:
        event = json.loads(raw)
    except ValueError as exc:
        print(f"invoke: the event is not valid JSON: {exc}", file=sys.stderr)
        return 2

    with ExitStack() as stack_ctx:
        endpoint = os.environ.get("AWS_ENDPOINT_URL") or stack_ctx.enter_context(moto_server())
        use_local_aws(endpoint)
        stack = Stack(template).provision()
        if not args.no_seed:
            for path in sorted(repo_path("events").glob("*.oxoflow")):
                stack.put_config(path.stem, path.read_text(encoding="utf-8"))
        for item in args.config:
            workflow, _, file = item.partition("=")
            if not file:
                print(f"invoke: --config wants WORKFLOW=FILE, got {item!r}", file=sys.stderr)
                return 2
            stack.put_config(workflow, Path(file).read_text(encoding="utf-8"))
        try:
            # Like `sam local invoke`: the function's logs on stderr, only its result on stdout.
            with contextlib.redirect_stdout(sys.stderr):
                result = stack.invoke(args.function, event, env_overrides(args.env_vars, args.function))
        except Exception:  # noqa: BLE001 - report like Lambda does, then fail
            traceback.print_exc()
            return 1
        print(json.dumps(result, indent=2, default=str))
        for label, url in (("retry queue", stack.retry_queue_url), ("dead-letter queue", stack.dead_letter_queue_url)):
            messages = peek(stack, url)
            depth = stack.depth(url)
            print(f"-- {label}: {depth['visible']} visible, {depth['delayed']} delayed", file=sys.stderr)
            for message in messages:
                reason = message.get("reason") or f"attempt {message.get('attempt')} of webhook {message.get('webhook_id')}"
                print(f"   {reason}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
