"""`oxoflow-notify follow`: a run's JSON-lines execution log tailed and published (``tools.follow``)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from oxoflow_notify.inbound.topic import publish_message

from .cli_common import TOPIC_ENV, Usage, _final_aws_errors, aws_client, aws_region, explain_aws_error
from .cmd_publish import checked_event, publish_key


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
