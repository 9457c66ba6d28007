"""`oxoflow-notify env`: a deployed stack's outputs and parameters as the `export` lines every command reads.

    eval "$(oxoflow-notify env --stack-name oxoflow-notify --region eu-west-1)"

CloudFormation's ``describe_stacks`` gives the outputs and parameters; ``stackenv`` names the
variables, so the deployed and the local stack print the same ones. Only stdout carries exports:
every problem is one sentence on stderr and exit 2 (could not run), never a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from typing import Any

from .stackenv import export_lines, stack_environment

DEFAULT_STACK = "oxoflow-notify"  # samconfig.toml's stack_name, what `sam deploy --guided` offers
REQUIRED_OUTPUT = "TopicArn"  # every oxoflow-notify stack has it once its deploy has finished


class StackEnvError(Exception):
    """Could not read the stack: exit 2 with this message."""


def region_for(flag: str | None, env: Mapping[str, str] | None = None) -> str:
    """--region, else AWS_REGION, else AWS_DEFAULT_REGION: the stack's region, which the exports then carry."""
    env = os.environ if env is None else env
    for candidate in (flag, env.get("AWS_REGION"), env.get("AWS_DEFAULT_REGION")):
        if candidate and candidate.strip():
            return candidate.strip()
    raise StackEnvError("env: no AWS region: pass --region, or set AWS_REGION or AWS_DEFAULT_REGION, to the stack's region")


def _explain(exc: Exception, stack_name: str, region: str) -> str:
    """One sentence for the failures a user meets: no such stack, no credentials, no network."""
    response = getattr(exc, "response", None)
    error = response.get("Error", {}) if isinstance(response, dict) else {}
    if error.get("Code") == "ValidationError" and "does not exist" in str(error.get("Message", "")):
        return (f"env: no stack named {stack_name!r} in {region}: pass the name you deployed with (--stack-name) "
                "and its region (--region)")  # fmt: skip
    from .cli_common import explain_aws_error

    return explain_aws_error(exc, "env")


def describe(cloudformation: Any, stack_name: str, region: str) -> tuple[dict[str, str], dict[str, str]]:
    """The stack's outputs and parameters, each as name -> value."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        (stack,) = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
    except (BotoCoreError, ClientError) as exc:
        raise StackEnvError(_explain(exc, stack_name, region)) from None
    outputs = {o["OutputKey"]: o.get("OutputValue", "") for o in stack.get("Outputs", [])}
    parameters = {p["ParameterKey"]: p.get("ParameterValue", "") for p in stack.get("Parameters", [])}
    if REQUIRED_OUTPUT not in outputs:
        raise StackEnvError(f"env: stack {stack_name!r} in {region} has no {REQUIRED_OUTPUT} output (status "
                            f"{stack.get('StackStatus', 'unknown')}): it is not an oxoflow-notify stack, or its deploy "
                            "has not finished")  # fmt: skip
    return outputs, parameters


def environment(stack_name: str, region: str, cloudformation: Any = None) -> dict[str, str]:
    """The variables for a deployed stack (``stackenv.stack_environment``), read with describe_stacks."""
    if cloudformation is None:
        import boto3

        cloudformation = boto3.client("cloudformation", region_name=region)
    outputs, parameters = describe(cloudformation, stack_name, region)
    return stack_environment(outputs, parameters, region)


def cmd_env(args: argparse.Namespace) -> int:
    try:
        region = region_for(args.region)
        sys.stdout.write(export_lines(environment(args.stack_name, region)))
    except StackEnvError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    return 0


def add_env_parser(sub: Any) -> None:
    """Registers `env` on the CLI's subparsers."""
    e = sub.add_parser("env", help="print a deployed stack's outputs as export lines for every command",
                       description="Reads the stack's outputs and parameters (CloudFormation describe_stacks) and prints "
                                   "'export NAME=value' lines: the topic, the bucket, the queues, the ledger, the region "
                                   "and the functions' settings that replay and validate read. Use: "
                                   "eval \"$(oxoflow-notify env)\".")  # fmt: skip
    e.add_argument("--stack-name", default=DEFAULT_STACK, help=f"the stack (default: {DEFAULT_STACK}, samconfig.toml's)")
    e.add_argument("--region", help="the stack's region (default: $AWS_REGION, else $AWS_DEFAULT_REGION)")
    e.set_defaults(run=cmd_env)
