"""A stack's outputs and parameters as the environment every `oxoflow-notify` command reads.

One table, used by `oxoflow-notify env` (a deployed stack, from CloudFormation) and by the local
stack (`make up`), so the `export` lines a user pastes are the same names in both places and
`replay` reads the settings the deployed functions run with.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping

# Stack output -> the environment variables that carry it (the CLI's own name first).
OUTPUT_ENV: dict[str, tuple[str, ...]] = {
    "TopicArn": ("OXOFLOW_NOTIFY_TOPIC_ARN",),
    "ConfigBucketName": ("OXOFLOW_NOTIFY_BUCKET", "CONFIG_BUCKET"),
    "RetryQueueUrl": ("RETRY_QUEUE_URL",),
    "DeadLetterQueueUrl": ("DEAD_LETTER_QUEUE_URL",),
    "DeliveryLedgerName": ("LEDGER_TABLE",),
    "DeliveryLogName": ("DELIVERY_LOG_TABLE",),
    "IngestUrl": ("OXOFLOW_NOTIFY_INGEST_URL",),
}

# Stack parameter -> the function setting it becomes (so `replay` and `validate` match the Lambda).
PARAMETER_ENV: dict[str, str] = {
    "ConfigPrefix": "CONFIG_PREFIX",
    "SecretsPrefix": "SECRETS_PREFIX",
    "RequireHttps": "REQUIRE_HTTPS",
    "TargetAllowlist": "TARGET_ALLOWLIST",
    "RetrySchedule": "RETRY_SCHEDULE",
    "DeliveryLogDays": "DELIVERY_LOG_DAYS",
}


def stack_environment(outputs: Mapping[str, str], parameters: Mapping[str, str], region: str) -> dict[str, str]:
    """The variables for a stack: its region, each known output, each known parameter (in that order)."""
    env = {"AWS_REGION": region, "AWS_DEFAULT_REGION": region}
    for output, names in OUTPUT_ENV.items():
        if outputs.get(output):
            env.update(dict.fromkeys(names, outputs[output]))
    for parameter, name in PARAMETER_ENV.items():
        if parameter in parameters:
            env[name] = parameters[parameter]
    return env


def export_lines(env: Mapping[str, str]) -> str:
    """`export NAME=value` lines, each value quoted for a POSIX shell (eval "$(...)" safe)."""
    return "".join(f"export {name}={shlex.quote(value)}\n" for name, value in env.items())
