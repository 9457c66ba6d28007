"""Teams cannot reach each other's secrets (issue "Teams can't reach each other's secrets"): the
four attacks it describes, run through the dispatch and retry handlers against moto, each refused
as an invalid_webhook dead letter naming the rule, before any SSM or Secrets Manager call."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import boto3

from oxoflow_notify.lazy import Lazy
from oxolocal.receivers import Receiver, fail_first, ok
from oxolocal.stack import REGION, Stack
from tests.conftest import sns_event

TEAM_B_URL_CANARY = "svcaccount-TEAMB-CANARY-51ac"  # what team B's parameter holds: never in a dead letter
RULE = (
    "a reference in workflows/variant-calling.oxoflow may only name secrets under "
    "ssm:/oxoflow-notify/workflows/variant-calling/ (the workflow's scope)"
)


def plant_other_teams_secrets(receiver: Receiver) -> None:
    ssm = boto3.client("ssm", region_name=REGION)
    # the ingest secret where the template now keeps it, and where it used to be (inside SecretsPrefix)
    ssm.put_parameter(Name="/oxoflow-notify-ingest/secret", Value="the-ingest-secret", Type="SecureString")
    ssm.put_parameter(Name="/oxoflow-notify/ingest-secret", Value="the-ingest-secret", Type="SecureString")
    # team B's Slack URL and signing key, both inside team B's own scope and at the old flat names
    for name in ("/oxoflow-notify/teamB-slack-url", "/oxoflow-notify/workflows/teamB/slack-url"):
        ssm.put_parameter(Name=name, Value=receiver.url, Type="SecureString")
    for name in ("/oxoflow-notify/teamB-key", "/oxoflow-notify/workflows/teamB/key"):
        ssm.put_parameter(Name=name, Value="team-b-signing-key", Type="SecureString")
    ssm.put_parameter(Name="/oxoflow-notify/workflows/teamB/probe", Value=TEAM_B_URL_CANARY, Type="SecureString")


def letters_by_webhook(stack: Stack) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for letter in stack.drain(stack.dead_letter_queue_url):
        out.setdefault(letter["webhook"]["id"], []).append(letter)
    return out


def no_secret_was_read(stack: Stack, function: str = "DispatchFunction") -> bool:
    """No Powertools provider was built, so no SSM or Secrets Manager client ever made a call."""
    providers: dict[str, Lazy[object]] = stack.modules[function].notifier.references._providers
    return not any(provider.built for provider in providers.values())


def test_the_four_attacks_are_refused_before_any_aws_call(stack: Stack, receivers: Callable[..., Receiver]) -> None:
    # given team B's receiver and secrets, the ingest secret, and team A's config reaching for them
    mine, team_b = receivers(ok(), "mine"), receivers(ok(), "teamB")
    plant_other_teams_secrets(team_b)
    stack.put_config(
        "variant-calling",
        # (a) the ingest secret as the signing secret of oxo-flow's own payload: a signing oracle
        f'[webhook]\nid = "oracle"\nurl = "{mine.url}"\nsecret = "ssm:/oxoflow-notify-ingest/secret"\nevents = ["*"]\n\n'
        f'[[webhooks]]\nid = "oracle-old-name"\nurl = "{mine.url}"\nformat = "oxoflow"\nsignature_scheme = "hmac-sha256"\n'
        'secret = "ssm:/oxoflow-notify/ingest-secret"\n'
        # (b) team B's key signs our bodies
        f'[[webhooks]]\nid = "their-key"\nurl = "{mine.url}/b"\nsecret = ["ssm:/oxoflow-notify/teamB-key", '
        '"ssm:/oxoflow-notify/workflows/teamB/key"]\n'
        # (c) team B's channel
        '[[webhooks]]\nid = "their-channel"\nurl = "ssm:/oxoflow-notify/teamB-slack-url"\nformat = "slack"\n'
        '[[webhooks]]\nid = "their-channel-scoped"\nurl = "ssm:/oxoflow-notify/workflows/teamB/slack-url"\nformat = "slack"\n'
        '[[webhooks]]\nid = "traversal"\nurl = "ssm:/oxoflow-notify/workflows/variant-calling/../teamB/slack-url"\n'
        # (d) probing team B's parameter for a fragment of its value
        '[[webhooks]]\nid = "probe"\nurl = "ssm:/oxoflow-notify/workflows/teamB/probe"\n',
    )
    # when two events are dispatched
    for kind in ("rule-failed", "workflow-failed"):
        report = stack.invoke("DispatchFunction", sns_event(kind))
        assert report["delivered"] == 0
    # then nothing was posted anywhere, and nothing was read from SSM
    assert mine.requests == [] and team_b.requests == []
    assert no_secret_was_read(stack)
    # and each webhook is dead-lettered as invalid_webhook for each event it would have received,
    # with the rule, never the reference it wrote (nor what team B's parameter holds)
    letters = letters_by_webhook(stack)
    assert sorted(letters) == sorted(
        ["oracle", "oracle-old-name", "their-key", "their-channel", "their-channel-scoped", "traversal", "probe"]
    )
    for webhook_id, got in letters.items():
        assert sorted(letter["event"]["event"] for letter in got) == ["RuleFailed", "WorkflowFailed"], webhook_id
        for letter in got:
            assert letter["reason_code"] == "invalid_webhook"
            key = "secret" if webhook_id in ("oracle", "oracle-old-name", "their-key") else "url"
            assert letter["reason"].endswith(f"key '{key}': {RULE}") or letter["reason"].endswith(f"key '{key}' (entry 1): {RULE}"), letter[
                "reason"
            ]
    everything = json.dumps(letters)
    for leaked in ("teamB", "ingest-secret", "oxoflow-notify-ingest", TEAM_B_URL_CANARY, "team-b-signing-key", "the-ingest-secret"):
        assert leaked not in everything, leaked
    assert stack.drain(stack.retry_queue_url) == []


def test_the_default_file_reads_the_shared_scope_and_a_workflow_its_own(stack: Stack, receivers: Callable[..., Receiver]) -> None:
    org, team = receivers(ok(), "org"), receivers(ok(), "team")
    ssm = boto3.client("ssm", region_name=REGION)
    ssm.put_parameter(Name="/oxoflow-notify/shared/org-url", Value=org.url, Type="SecureString")
    ssm.put_parameter(Name="/oxoflow-notify/workflows/variant-calling/url", Value=team.url, Type="SecureString")
    boto3.client("secretsmanager", region_name=REGION).create_secret(
        Name="oxoflow-notify/workflows/variant-calling/signing", SecretString=json.dumps({"current": "k-team"})
    )
    stack.put_config("_default", '[[webhooks]]\nid = "org"\nurl = "ssm:/oxoflow-notify/shared/org-url"\n'
                     '[[webhooks]]\nid = "grab"\nurl = "ssm:/oxoflow-notify/workflows/variant-calling/url"\n')  # fmt: skip
    stack.put_config(
        "variant-calling",
        '[[webhooks]]\nid = "team"\nurl = "ssm:/oxoflow-notify/workflows/variant-calling/url"\n'
        'secret = "secretsmanager:oxoflow-notify/workflows/variant-calling/signing#current"\n',
    )
    report = stack.invoke("DispatchFunction", sns_event("rule-failed"))
    assert report["delivered"] == 2 and len(org.requests) == 1 and len(team.requests) == 1
    (letter,) = stack.drain(stack.dead_letter_queue_url)
    assert letter["webhook"]["id"] == "grab" and letter["reason_code"] == "invalid_webhook"
    assert letter["reason"] == (
        "workflows/_default.oxoflow: [[webhooks]] #2 (line 6): key 'url': a reference in workflows/_default.oxoflow may only "
        "name secrets under ssm:/oxoflow-notify/shared/ (the shared scope, as _default.oxoflow is read for every workflow)"
    )


def test_a_pending_retry_whose_webhook_now_reaches_outside_is_dead_lettered_with_the_rule(
    stack: Stack, receivers: Callable[..., Receiver]
) -> None:
    # given a delivery waiting in the retry queue
    flaky = receivers(fail_first(1, 503))
    stack.put_config("variant-calling", f'[[webhooks]]\nid = "lims"\nurl = "{flaky.url}"\n')
    stack.invoke("DispatchFunction", sns_event("rule-failed"))
    # when the webhook is edited to sign with team B's key before the retry runs
    boto3.client("ssm", region_name=REGION).put_parameter(Name="/oxoflow-notify/workflows/teamB/key", Value="k", Type="SecureString")
    stack.put_config(
        "variant-calling", f'[[webhooks]]\nid = "lims"\nurl = "{flaky.url}"\nsecret = "ssm:/oxoflow-notify/workflows/teamB/key"\n'
    )
    stack.drain_retries()
    # then the retry is not posted: it is dead-lettered with the rule, and nothing was read
    assert len(flaky.requests) == 1
    (letter,) = stack.drain(stack.dead_letter_queue_url)
    assert letter["reason_code"] == "invalid_webhook" and letter["reason"].endswith(f"key 'secret': {RULE}")
    assert no_secret_was_read(stack, "RetryFunction")
