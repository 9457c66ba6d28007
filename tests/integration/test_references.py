"""ssm: and secretsmanager: references resolved by the handlers within their file's scope, and
refused outside it (the scope rules themselves: tests/unit/test_scopes.py, tests/integration/test_scopes.py)."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable

import boto3
import pytest

from oxolocal.receivers import Receiver, ok
from oxolocal.stack import REGION, Stack
from tests.conftest import sns_event

SCOPE = "oxoflow-notify/workflows/variant-calling"  # what workflows/variant-calling.oxoflow may reference


def test_url_and_secret_come_from_ssm_and_secrets_manager(stack: Stack, receivers: Callable[..., Receiver]) -> None:
    # given the URL in an SSM SecureString and the signing secret in a JSON Secrets Manager secret, both in the workflow's scope
    receiver = receivers(ok())
    boto3.client("ssm", region_name=REGION).put_parameter(Name=f"/{SCOPE}/lims-url", Value=receiver.url, Type="SecureString")
    boto3.client("secretsmanager", region_name=REGION).create_secret(
        Name=f"{SCOPE}/lims", SecretString=json.dumps({"signing": "from-secrets-manager"})
    )
    stack.put_config(
        "variant-calling",
        f'[[webhooks]]\nid = "lims"\nurl = "ssm:/{SCOPE}/lims-url"\nsecret = "secretsmanager:{SCOPE}/lims#signing"\n',
    )
    # when an event is dispatched
    assert stack.invoke("DispatchFunction", sns_event("rule-failed"))["delivered"] == 1
    # then it reached the URL from SSM, signed with the secret from Secrets Manager
    (got,) = receiver.requests
    assert got.header("X-Hub-Signature-256") == "sha256=" + hmac.new(b"from-secrets-manager", got.body, hashlib.sha256).hexdigest()


def test_a_missing_reference_is_dead_lettered_with_its_name_and_a_forbidden_one_with_the_rule_only(stack: Stack) -> None:
    boto3.client("ssm", region_name=REGION).put_parameter(Name="/other-team/url", Value="https://x.example.org", Type="SecureString")
    stack.put_config(
        "variant-calling",
        f'[[webhooks]]\nid = "missing"\nurl = "ssm:/{SCOPE}/nope"\n'
        '[[webhooks]]\nid = "outside"\nurl = "ssm:/other-team/url"\n'
        f'[[webhooks]]\nid = "traversal"\nurl = "ssm:/{SCOPE}/../../other-team/url"\n',
    )
    stack.invoke("DispatchFunction", sns_event("rule-failed"))
    letters = {letter["webhook"]["id"]: letter for letter in stack.drain(stack.dead_letter_queue_url)}
    # a name in the scope that does not exist: the author's own name, a permanent failure
    assert letters["missing"]["reason"].startswith(f"ssm:/{SCOPE}/nope does not exist")
    assert letters["missing"]["reason_code"] == "permanent_failure"
    # outside the scope: refused with the config (invalid_webhook), naming the rule and never the reference
    rule = f"a reference in workflows/variant-calling.oxoflow may only name secrets under ssm:/{SCOPE}/ (the workflow's scope)"
    for name in ("outside", "traversal"):
        assert letters[name]["reason_code"] == "invalid_webhook"
        assert letters[name]["reason"].endswith(f"key 'url': {rule}"), letters[name]["reason"]
        assert "other-team" not in json.dumps(letters[name])
    assert stack.drain(stack.retry_queue_url) == []


def test_a_referenced_url_is_checked_like_a_literal_without_quoting_any_of_it(stack: Stack) -> None:
    ssm = boto3.client("ssm", region_name=REGION)
    ssm.put_parameter(Name=f"/{SCOPE}/ftp", Value="ftp://x.example.org/TOKEN", Type="SecureString")
    ssm.put_parameter(Name=f"/{SCOPE}/odd", Value="svcaccount://CANARYHOST/CANARYPATH?CANARYQUERY", Type="SecureString")
    stack.put_config(
        "variant-calling", f'[[webhooks]]\nid = "ftp"\nurl = "ssm:/{SCOPE}/ftp"\n[[webhooks]]\nid = "odd"\nurl = "ssm:/{SCOPE}/odd"\n'
    )
    stack.invoke("DispatchFunction", sns_event("rule-failed"))
    letters = {letter["webhook"]["id"]: letter for letter in stack.drain(stack.dead_letter_queue_url)}
    assert letters["ftp"]["reason"].startswith(f"the URL in ssm:/{SCOPE}/ftp must use http or https (scheme is ftp)")
    # a scheme outside the short list of common ones may be part of a secret: not named
    assert letters["odd"]["reason"].startswith(f"the URL in ssm:/{SCOPE}/odd must use http or https (another scheme)")
    everything = json.dumps(letters)
    for fragment in ("TOKEN", "svcaccount", "CANARY"):
        assert fragment not in everything


def test_a_secret_store_hiccup_holds_the_delivery_without_spending_an_attempt(
    stack: Stack, receivers: Callable[..., Receiver], monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a webhook whose URL is in SSM, and SSM throttling the first two reads (a transient fault, ours)
    from oxoflow_notify.aws.references import References
    from oxoflow_notify.errors import ReferenceProblem

    receiver = receivers(ok())
    boto3.client("ssm", region_name=REGION).put_parameter(Name=f"/{SCOPE}/lims-url", Value=receiver.url, Type="SecureString")
    stack.put_config("variant-calling", f'[[webhooks]]\nid = "lims"\nurl = "ssm:/{SCOPE}/lims-url"\n')
    real, failures = References.resolve, [2]

    def throttled(self: References, reference: str) -> str:
        if failures[0]:
            failures[0] -= 1
            raise ReferenceProblem(f"{reference.split(':', 1)[0]} is unavailable (ThrottlingException); will retry", permanent=False)
        return real(self, reference)

    monkeypatch.setattr(References, "resolve", throttled)
    monkeypatch.setattr("oxoflow_notify.pipeline.answers.SECRET_HOLD_SECONDS", 0.0)  # back at once (30 s on AWS)
    # when the event is dispatched, and its held delivery comes back twice through the retry queue
    result = stack.invoke("DispatchFunction", sns_event("rule-failed"))
    assert result["held"] == 1 and receiver.requests == []
    stack.drain_retries(until_empty=30)
    # then the receiver's first sight of it is attempt 1: the store's hiccups spent no attempt, and nothing was dead-lettered
    (got,) = receiver.requests
    assert got.header("X-OxoFlow-Attempt") == "1"
    assert stack.drain(stack.dead_letter_queue_url) == []
