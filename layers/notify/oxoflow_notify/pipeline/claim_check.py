"""The claim check's pointer: the small message sent in place of a retry message or dead letter too
big for its queue, naming where its body is kept (``aws.letters`` keeps and reads the bodies in S3).

A message format of the pipeline's, like ``retry.RetryTask``: here, so a reader can tell a pointer
from a body without importing the S3 side.
"""

from __future__ import annotations

import json
from typing import Any

from oxoflow_notify.errors import ClaimCheckError

CLAIM_SCHEMA = "oxoflow-notify/claim-check/v1"
_POINTER_MAX = 4096  # a body longer than this is never a pointer (a pointer is about 300 bytes)


def pointer_of(body: str) -> dict[str, Any] | None:
    """The claim-check pointer a message body is, or None for an ordinary body (cheap: only a short
    body naming the schema is parsed). ClaimCheckError for a pointer missing its fields."""
    if len(body) > _POINTER_MAX or CLAIM_SCHEMA not in body:
        return None
    try:
        data = json.loads(body)
    except ValueError:
        return None
    if not isinstance(data, dict) or data.get("schema") != CLAIM_SCHEMA:
        return None
    s3 = data.get("s3")
    if (
        not isinstance(s3, dict)
        or not all(isinstance(s3.get(k), str) and s3.get(k) for k in ("bucket", "key"))
        or not isinstance(data.get("sha256"), str)
        or isinstance(data.get("bytes"), bool)
        or not isinstance(data.get("bytes"), int)
    ):
        raise ClaimCheckError("claim-check pointer lacks s3.bucket, s3.key, bytes or sha256")
    return data


def without_store(body: str) -> str:
    """A message body where no store of letters is configured: itself, unless it is a pointer
    (then ClaimCheckError says what is missing)."""
    pointer = pointer_of(body)
    if pointer is None:
        return body
    where = f"s3://{pointer['s3']['bucket']}/{pointer['s3']['key']}"
    raise ClaimCheckError(f"its body is kept at {where}, and no config bucket is configured to read it from (set CONFIG_BUCKET)")
