"""ssm: and secretsmanager: references resolved by the handlers, and refused outside the prefix."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable

import boto3

from oxolocal.receivers import Receiver, ok
from oxolocal.stack import REGION, Stack
from tests.conftest import sns_event


def test_url_and_secret_come_from_ssm_and_secrets_manager(stack: Stack, receivers: Callable[..., Receiver]) -> None:
    # given the URL in an SSM SecureString and the signing secret in a JSON Secrets Manager secret
    receiver = receivers(ok())
    boto3.client("ssm", region_name=REGION).put_parameter(Name="/oxoflow-notify/lims-url", Value=receiver.url, Type="SecureString")
    boto3.client("secretsmanager", region_name=REGION).create_secret(
        Name="oxoflow-notify/lims", SecretString=json.dumps({"signing": "from-secrets-manager"})
    )
    stack.put_config(
        "variant-calling",
        '[[webhooks]]\nid = "lims"\nurl = "ssm:/oxoflow-notify/lims-url"\nsecret = "secretsmanager:oxoflow-notify/lims#signing"\n',
    )
    # when an event is dispatched
    assert stack.invoke("DispatchFunction", sns_event("rule-failed"))["delivered"] == 1
    # then it reached the URL from SSM, signed with the secret from Secrets Manager
    (got,) = receiver.requests
    assert got.header("X-Hub-Signature-256") == "sha256=" + hmac.new(b"from-secrets-manager", got.body, hashlib.sha256).hexdigest()


def test_a_missing_or_forbidden_reference_is_dead_lettered_with_its_name(stack: Stack) -> None:
    boto3.client("ssm", region_name=REGION).put_parameter(Name="/other-team/url", Value="https://x.example.org", Type="SecureString")
    stack.put_config(
        "variant-calling",
        '[[webhooks]]\nid = "missing"\nurl = "ssm:/oxoflow-notify/nope"\n'
        '[[webhooks]]\nid = "outside"\nurl = "ssm:/other-team/url"\n'
        '[[webhooks]]\nid = "traversal"\nurl = "ssm:/oxoflow-notify/../other-team/url"\n',
    )
    stack.invoke("DispatchFunction", sns_event("rule-failed"))
    letters = {letter["webhook"]["id"]: letter for letter in stack.drain(stack.dead_letter_queue_url)}
    assert letters["missing"]["reason"].startswith("ssm:/oxoflow-notify/nope does not exist")
    assert "ssm:/other-team/url is outside the allowed prefix 'oxoflow-notify/'" in letters["outside"]["reason"]
    assert "outside the allowed prefix" in letters["traversal"]["reason"]
    assert all(letter["reason_code"] == "permanent_failure" for letter in letters.values())
    assert stack.drain(stack.retry_queue_url) == []


def test_a_referenced_url_is_checked_like_a_literal(stack: Stack) -> None:
    boto3.client("ssm", region_name=REGION).put_parameter(
        Name="/oxoflow-notify/bad", Value="ftp://x.example.org/TOKEN", Type="SecureString"
    )
    stack.put_config("variant-calling", '[[webhooks]]\nid = "bad"\nurl = "ssm:/oxoflow-notify/bad"\n')
    stack.invoke("DispatchFunction", sns_event("rule-failed"))
    (letter,) = stack.drain(stack.dead_letter_queue_url)
    assert "the URL in ssm:/oxoflow-notify/bad must use http or https" in letter["reason"]
    assert "TOKEN" not in json.dumps(letter)
