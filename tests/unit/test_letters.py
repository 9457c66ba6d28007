"""The claim check (aws.letters): a message over the queue's limit, counted as SQS counts it, is sent
as a pointer to its body in S3; every reader gets the body back, or one sentence saying why not.
And the template caps both queues, expires the kept bodies after the letters, and lets the
functions write and read that prefix only."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from botocore.exceptions import ClientError

from oxoflow_notify.aws.letters import (
    CLAIM_SCHEMA,
    LETTERS_PREFIX,
    SQS_MESSAGE_LIMIT,
    ClaimCheckError,
    LetterStore,
    message_size,
    resolve_body,
)
from oxoflow_notify.aws.queues import SqsQueue
from tests.unit.test_template import RESOURCES, allowed


class FakeS3:
    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], bytes] = {}

    def put_object(self, Bucket: str, Key: str, Body: bytes, **_: Any) -> None:
        self.objects[(Bucket, Key)] = Body

    def get_object(self, Bucket: str, Key: str) -> dict[str, Any]:
        if (Bucket, Key) not in self.objects:
            raise ClientError({"Error": {"Code": "NoSuchKey", "Message": "gone"}}, "GetObject")
        return {"Body": io.BytesIO(self.objects[(Bucket, Key)])}

    def delete_object(self, Bucket: str, Key: str) -> None:
        self.objects.pop((Bucket, Key), None)


class RefusingSqs:
    """Refuses what SQS refuses: more than the limit of body and attribute bytes."""

    def __init__(self) -> None:
        self.bodies: list[str] = []

    def send_message(self, QueueUrl: str, MessageBody: str, DelaySeconds: int = 0) -> None:
        if message_size(MessageBody) > SQS_MESSAGE_LIMIT:
            raise ClientError({"Error": {"Code": "InvalidParameterValue", "Message": "too long"}}, "SendMessage")
        self.bodies.append(MessageBody)


def letter_of(size: int, char: str = "x") -> dict[str, Any]:
    return {"schema": "oxoflow-notify/dead-letter/v1", "event": {"details": {"log": char * size}}}


def test_the_size_is_what_sqs_counts_utf8_bytes_and_attributes() -> None:
    assert message_size("é" * 10) == 20
    attributes: dict[str, dict[str, Any]] = {
        "oxoflow-signature": {"DataType": "String", "StringValue": "abc"},
        "b": {"DataType": "Binary", "BinaryValue": b"12"},
    }
    assert message_size("{}", attributes) == 2 + (17 + 6 + 3) + (1 + 6 + 2)


def test_a_message_within_the_limit_is_sent_as_it_is() -> None:
    s3, sqs = FakeS3(), RefusingSqs()
    SqsQueue(sqs, "q", LetterStore(s3, "bucket")).send(letter_of(1000))
    assert json.loads(sqs.bodies[0]) == letter_of(1000) and s3.objects == {}


@pytest.mark.parametrize("char", ["x", "é"])  # multi-byte text: over the limit in bytes, not in characters
def test_a_message_over_the_limit_is_kept_in_s3_and_read_back_whole(char: str) -> None:
    # given a letter over 262,144 bytes
    s3, sqs = FakeS3(), RefusingSqs()
    letters = LetterStore(s3, "bucket")
    big = letter_of(SQS_MESSAGE_LIMIT // len(char.encode()), char)
    # when it is sent
    SqsQueue(sqs, "q", letters).send(big)
    # then the queue holds a small pointer to its body under letters/, and reading it gives the letter
    pointer = json.loads(sqs.bodies[0])
    assert pointer["schema"] == CLAIM_SCHEMA and pointer["s3"]["key"].startswith(LETTERS_PREFIX) and pointer["bytes"] > SQS_MESSAGE_LIMIT
    assert len(sqs.bodies[0]) < 400
    assert json.loads(resolve_body(sqs.bodies[0], letters)) == big
    # and once discarded (its letter settled) the object is gone
    letters.discard(sqs.bodies[0])
    assert s3.objects == {}


def test_without_a_store_a_big_message_is_refused_as_sqs_refuses_it() -> None:
    with pytest.raises(ClientError):
        SqsQueue(RefusingSqs(), "q").send(letter_of(SQS_MESSAGE_LIMIT))


def test_an_ordinary_body_is_read_as_it_is_even_one_that_mentions_the_schema() -> None:
    body = json.dumps({"reason": f"talks about {CLAIM_SCHEMA}"})
    assert resolve_body(body, None) == body and resolve_body("{not json", LetterStore(FakeS3(), "b")) == "{not json"


def pointer_to(s3: FakeS3, body: str = "{}") -> tuple[LetterStore, str]:
    letters = LetterStore(s3, "bucket")
    return letters, json.dumps(letters.keep(body))


def test_a_pointer_that_cannot_be_followed_says_why() -> None:
    s3 = FakeS3()
    letters, pointer = pointer_to(s3)
    letters.discard(pointer)
    with pytest.raises(ClaimCheckError, match=r"s3://bucket/letters/\w+\.json, which is gone \(expired after 15 days"):
        letters.resolve(pointer)
    letters, pointer = pointer_to(s3)
    s3.objects[next(iter(s3.objects))] = b'{"changed": 1}'
    with pytest.raises(ClaimCheckError, match="not the one its pointer names"):
        letters.resolve(pointer)
    elsewhere = json.dumps({**json.loads(pointer), "s3": {"bucket": "bucket", "key": "workflows/team.oxoflow"}})
    with pytest.raises(ClaimCheckError, match="outside this stack's letters"):
        letters.resolve(elsewhere)
    with pytest.raises(ClaimCheckError, match="set CONFIG_BUCKET"):
        resolve_body(pointer, None)
    with pytest.raises(ClaimCheckError, match="lacks"):
        letters.resolve(json.dumps({"schema": CLAIM_SCHEMA}))


def test_the_template_caps_both_queues_at_the_limit_the_code_counts_against() -> None:
    for queue in ("RetryQueue", "DeadLetterQueue"):
        assert RESOURCES[queue]["Properties"]["MaximumMessageSize"] == SQS_MESSAGE_LIMIT


def test_kept_bodies_expire_after_the_dead_letters_they_belong_to() -> None:
    (rule,) = RESOURCES["ConfigBucket"]["Properties"]["LifecycleConfiguration"]["Rules"]
    retention_days = RESOURCES["DeadLetterQueue"]["Properties"]["MessageRetentionPeriod"] / 86400
    assert rule["Status"] == "Enabled" and rule["Prefix"] == LETTERS_PREFIX
    assert rule["ExpirationInDays"] > retention_days and rule["NoncurrentVersionExpiration"]["NoncurrentDays"] >= 1


def test_the_functions_write_and_read_kept_letters_and_nothing_else_of_the_bucket_with_it() -> None:
    letter = f"arn:aws:s3:::config-bucket/{LETTERS_PREFIX}0f.json"
    for function in ("DispatchFunction", "RetryFunction"):
        assert allowed(function, "s3:PutObject", letter) and allowed(function, "s3:GetObject", letter)
        assert not allowed(function, "s3:DeleteObject", letter)  # only replay (the operator) removes them
        assert not allowed(function, "s3:PutObject", "arn:aws:s3:::config-bucket/workflows/variant-calling.oxoflow")
        assert not allowed(function, "s3:PutObject", "arn:aws:s3:::another-bucket/letters/0f.json")
