"""The AWS region every `oxoflow-notify` command uses, found as every AWS tool finds it.

The pinned botocore reads only ``AWS_DEFAULT_REGION`` (and the profile's ``region``), not
``AWS_REGION``, which the AWS SDKs for other languages and Lambda itself set. So the commands
resolve the region once, in this order: ``--region``, ``AWS_REGION``, ``AWS_DEFAULT_REGION``, the
region inside a resource the command was given (a topic ARN, an SQS queue URL), then the AWS
profile's ``region``; and hand it to every client they build (``use_region``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, MutableMapping

REGION_ENV = ("AWS_REGION", "AWS_DEFAULT_REGION")
NO_REGION = "no AWS region: pass --region, set AWS_REGION or AWS_DEFAULT_REGION, or give an ARN in your region"

_REGION = r"([a-z]{2}(?:-[a-z]+)+-\d+)"
_IN_RESOURCE = (
    re.compile(rf"^arn:aws[a-z-]*:[a-z0-9-]+:{_REGION}:"),  # arn:aws:sns:eu-west-1:123456789012:topic
    re.compile(rf"^https://sqs\.{_REGION}\.amazonaws\.com(?:\.cn)?/"),  # a queue URL
    re.compile(rf"^https://{_REGION}\.queue\.amazonaws\.com(?:\.cn)?/"),  # a legacy queue URL
)


class NoRegion(Exception):
    """No region anywhere: the message is ``NO_REGION``, prefixed with the command."""


def region_in(resource: str | None) -> str | None:
    """The region an ARN or an SQS queue URL names, else None (a bucket name names none)."""
    for pattern in _IN_RESOURCE:
        match = pattern.match((resource or "").strip())
        if match:
            return match.group(1)
    return None


def _profile_region() -> str | None:
    """The profile's ``region`` (~/.aws/config, AWS_PROFILE), as boto3 would read it."""
    try:
        import botocore.session

        region = botocore.session.get_session().get_config_variable("region")
    except Exception:  # noqa: BLE001 - a broken profile is reported when a client is built
        return None
    return str(region) if region else None


def resolve_region(flag: str | None, *resources: str | None, env: Mapping[str, str] | None = None) -> str | None:
    """``--region``, then AWS_REGION, then AWS_DEFAULT_REGION, then the region in the first given
    resource that names one, then the profile's; None when there is none."""
    env = os.environ if env is None else env
    for candidate in (flag, *(env.get(name) for name in REGION_ENV), *(region_in(r) for r in resources)):
        if candidate and candidate.strip():
            return candidate.strip()
    return _profile_region()


def require_region(command: str, flag: str | None, *resources: str | None, env: Mapping[str, str] | None = None) -> str:
    """``resolve_region`` or NoRegion, whose message is one sentence naming every way to give one."""
    region = resolve_region(flag, *resources, env=env)
    if not region:
        raise NoRegion(f"{command}: {NO_REGION}")
    return region


def use_region(region: str, env: MutableMapping[str, str] | None = None) -> None:
    """Make ``region`` the one every boto3 client of this process is built in, including those the
    functions' own wiring builds (``build_notifier``): they read AWS_DEFAULT_REGION."""
    env = os.environ if env is None else env
    env["AWS_DEFAULT_REGION"] = region
    env["AWS_REGION"] = region
