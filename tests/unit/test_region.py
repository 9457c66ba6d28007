"""The region every command uses: --region, AWS_REGION, AWS_DEFAULT_REGION, the region in a given ARN
or queue URL, the profile's; and one sentence naming all three ways when there is none."""

from __future__ import annotations

from pathlib import Path

import pytest

from oxoflow_notify.tools.region import NO_REGION, NoRegion, region_in, require_region, resolve_region, use_region

TOPIC = "arn:aws:sns:eu-west-1:123456789012:oxoflow-notify-NotifyTopic-abc"
QUEUE = "https://sqs.ap-southeast-2.amazonaws.com/123456789012/oxoflow-notify-DeadLetterQueue-abc"


@pytest.fixture(autouse=True)
def no_profile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No ~/.aws/config region leaks in from the machine running the tests."""
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize(
    ("flag", "env", "expected"),
    [
        ("us-west-2", {"AWS_REGION": "eu-central-1", "AWS_DEFAULT_REGION": "eu-north-1"}, "us-west-2"),
        (None, {"AWS_REGION": "eu-central-1", "AWS_DEFAULT_REGION": "eu-north-1"}, "eu-central-1"),
        (None, {"AWS_DEFAULT_REGION": "eu-north-1"}, "eu-north-1"),
        (None, {"AWS_REGION": " ", "AWS_DEFAULT_REGION": ""}, "eu-west-1"),  # blank is unset: the ARN's
        (None, {}, "eu-west-1"),
    ],
)
def test_the_region_is_taken_in_the_order_every_aws_tool_uses(flag: str | None, env: dict[str, str], expected: str) -> None:
    assert resolve_region(flag, TOPIC, env=env) == expected


def test_the_region_in_an_arn_or_a_queue_url_and_none_in_a_local_url_or_a_bucket() -> None:
    assert region_in(TOPIC) == "eu-west-1"
    assert region_in("arn:aws-us-gov:sns:us-gov-west-1:123456789012:t") == "us-gov-west-1"
    assert region_in(QUEUE) == "ap-southeast-2"
    assert region_in("https://eu-west-3.queue.amazonaws.com/123456789012/q") == "eu-west-3"
    assert region_in("http://127.0.0.1:5000/123456789012/q") is None
    assert region_in("my-config-bucket") is None and region_in(None) is None
    assert resolve_region(None, None, QUEUE, env={}) == "ap-southeast-2"  # the first resource that names one


def test_the_profile_region_comes_last(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "config"
    config.write_text("[default]\nregion = sa-east-1\n", encoding="utf-8")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    assert resolve_region(None, TOPIC, env={}) == "eu-west-1"
    assert resolve_region(None, "bucket", env={}) == "sa-east-1"


def test_no_region_anywhere_is_one_sentence_naming_every_way_to_give_one() -> None:
    with pytest.raises(NoRegion) as raised:
        require_region("publish", None, "my-bucket", env={})
    message = str(raised.value)
    assert message == f"publish: {NO_REGION}"
    assert all(way in message for way in ("--region", "AWS_REGION", "AWS_DEFAULT_REGION", "ARN"))


def test_the_region_used_is_the_one_boto3_and_the_functions_wiring_read() -> None:
    env: dict[str, str] = {}
    use_region("eu-west-1", env)
    assert env == {"AWS_DEFAULT_REGION": "eu-west-1", "AWS_REGION": "eu-west-1"}
