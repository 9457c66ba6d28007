"""Config parsing: the sample file, and a table of bad inputs with the messages users see."""

from __future__ import annotations

import pytest

from oxoflow_notify.config import Config, check_url, parse_config, webhook_id_for
from oxoflow_notify.errors import ConfigError
from tests.conftest import EVENTS

SOURCE = "workflows/wf.oxoflow"
URL = "https://hooks.example.org/services/T0/B0/SECRETTOKEN"


def one(body: str) -> Config:
    return parse_config(body, SOURCE)


def test_the_sample_oxoflow_file_parses_and_other_tables_are_ignored() -> None:
    # given the seed's example workflow file with [workflow], [config], [[rules]] ...
    config = parse_config((EVENTS / "variant-calling.oxoflow").read_text(encoding="utf-8"), "workflows/variant-calling.oxoflow")
    # then its two webhooks are read and nothing else matters
    assert config.problems == ()
    slack, lims = config.webhooks
    assert slack.format == "slack" and slack.events == frozenset({"WorkflowFailed", "RuleFailed", "WorkflowCompleted"})
    assert slack.secret is None and slack.host == "hooks.slack.com"
    assert lims.id == "lims" and lims.format == "json" and lims.events is None and lims.secret
    assert lims.matches("RuleStarted") and not slack.matches("RuleStarted")


def test_a_file_without_webhooks_is_fine() -> None:
    assert one('[workflow]\nname = "x"\n').webhooks == ()


def test_defaults_and_derived_ids_are_stable() -> None:
    config = one(f'[[webhooks]]\nurl = "{URL}"\n')
    (hook,) = config.webhooks
    assert hook.format == "json" and hook.events is None and hook.secret is None
    assert hook.id == webhook_id_for(URL, "json") == one(f'[[webhooks]]\nurl = "{URL}"\n').webhooks[0].id
    assert URL not in hook.id and "SECRETTOKEN" not in repr(hook)


def test_snake_case_event_names_and_a_single_string_are_accepted() -> None:
    text = f'[[webhooks]]\nurl = "{URL}"\nevents = ["rule_failed", "WorkflowFailed"]\n'
    config = one(text + f'[[webhooks]]\nurl = "{URL}"\nevents = "rule_started"\n')
    assert config.webhooks[0].events == frozenset({"RuleFailed", "WorkflowFailed"})
    assert config.webhooks[1].events == frozenset({"RuleStarted"})


def test_custom_headers_and_timeout() -> None:
    (hook,) = one(
        f'[[webhooks]]\nurl = "{URL}"\ntimeout = 2.5\nheaders = {{ Authorization = "Bearer SECRETTOKEN", "X-Team" = "genomics" }}\n'
    ).webhooks
    assert hook.timeout == 2.5
    assert dict(hook.headers) == {"Authorization": "Bearer SECRETTOKEN", "X-Team": "genomics"}
    assert "SECRETTOKEN" not in repr(hook)


def test_a_header_value_is_never_quoted_in_an_error() -> None:
    (problem,) = one(f'[[webhooks]]\nurl = "{URL}"\nheaders = {{ "X-Token" = "SECRETTOKEN\\n" }}\n').problems
    assert "SECRETTOKEN" not in problem.message


def test_secret_lists_references_and_standard_webhooks() -> None:
    text = (
        f'[[webhooks]]\nurl = "{URL}"\nsecret = ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "secretsmanager:oxoflow-notify/old#key"]\n'
        '[[webhooks]]\nurl = "ssm:/oxoflow-notify/slack-url"\nformat = "slack"\n'
        f'[[webhooks]]\nurl = "{URL}"\nsecret = "plain"\n'
    )
    rotating, referenced, plain = one(text).webhooks
    assert rotating.secret == "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" and len(rotating.secrets) == 2 and rotating.standard_webhooks
    assert referenced.url == "ssm:/oxoflow-notify/slack-url" and referenced.host == "" and not referenced.standard_webhooks
    assert plain.signature == "hub-sha256" and not plain.standard_webhooks


def test_the_same_url_twice_gets_two_ids() -> None:
    config = one(f'[[webhooks]]\nurl = "{URL}"\n[[webhooks]]\nurl = "{URL}"\n')
    assert len({w.id for w in config.webhooks}) == 2


BAD_WEBHOOKS = [
    ('evnts = ["RuleFailed"]', "[[webhooks]] #1 (line 1): unknown key 'evnts' (did you mean 'events'?)"),
    ('events = ["RuleFaild"]', "key 'events': unknown event 'RuleFaild' (did you mean 'RuleFailed'?)"),
    ("events = []", "key 'events': is empty"),
    ("events = 3", "key 'events': must be a list of event names, got int"),
    ('format = "slak"', "key 'format': unknown format 'slak' (did you mean 'slack'?)"),
    ("format = 1", "key 'format' must be a string, got int"),
    ('secret = ""', "key 'secret' entry 1 must be a non-empty string"),
    ("secret = []", "key 'secret' is an empty list"),
    ('secret = ["ok-secret", 5]', "key 'secret' entry 2 must be a non-empty string"),
    ('secret = "ssm:relative/name"', "key 'secret' entry 1 is not a valid reference"),
    ('signature = "hmac"', "key 'signature': unknown scheme 'hmac'"),
    ('signature = "standard-webhook"', "did you mean 'standard-webhooks'?"),
    ('signature = "standard-webhooks"', "key 'signature' = 'standard-webhooks' needs a secret"),
    ('signature = "standard-webhooks"\nsecret = "plain-SECRETTOKEN"', "key 'secret' (entry 1) must be a whsec_ secret"),
    ('secret = ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_!!"]', "key 'secret' (entry 2) is not whsec_ followed by base64"),
    ('secret = "whsec_c2hvcnQ="', "key 'secret' (entry 1) holds 5 bytes"),
    ('id = "has space"', "key 'id' must be 1-64 letters"),
    ('headers = "x"', "key 'headers': must be a table of header names to values, got str"),
    ('headers = { "Content-Type" = "text/plain" }', "key 'headers': 'Content-Type' is set by oxoflow-notify and cannot be overridden"),
    ('headers = { "X-Hub-Signature-256" = "sha256=00" }', "'X-Hub-Signature-256' is set by oxoflow-notify"),
    ('headers = { "X-OxoFlow-Delivery" = "1" }', "'X-OxoFlow-Delivery' is set by oxoflow-notify"),
    ('headers = { "Bad Name" = "v" }', "'Bad Name' is not a valid header name"),
    ('headers = { "X-Token" = "a\\r\\nX-Evil: 1" }', "the value of 'X-Token' contains a line break"),
    ('headers = { "X-Count" = 3 }', "the value of 'X-Count' must be a string, got int"),
    ("timeout = 0", "key 'timeout' must be a number of seconds from 0.5 to 30"),
    ("max_attempts = 0", "key 'max_attempts' must be a whole number from 1 to 50"),
    ("max_attempts = 2.5", "key 'max_attempts' must be a whole number from 1 to 50"),
    ("timeout = 31", "key 'timeout' must be a number of seconds from 0.5 to 30"),
    ('timeout = "5"', "key 'timeout' must be a number of seconds"),
]


@pytest.mark.parametrize(("line", "expected"), BAD_WEBHOOKS, ids=[b[1][:50] for b in BAD_WEBHOOKS])
def test_a_bad_webhook_is_a_problem_naming_file_position_and_key(line: str, expected: str) -> None:
    # given one bad webhook between two good ones
    config = one(f'[[webhooks]]\n{line}\nurl = "{URL}"\n[[webhooks]]\nurl = "https://ok.example.org/a"\n'.replace("#1", "#1"))
    # then the good one still works and the bad one is a problem with a precise message
    assert [w.host for w in config.webhooks] == ["ok.example.org"]
    (problem,) = config.problems
    assert problem.message.startswith(SOURCE + ": [[webhooks]] #1 (line 1): ")
    assert expected.split(": ", 1)[-1] in problem.message
    assert "SECRETTOKEN" not in problem.message


BAD_URLS = [
    ('url = "ftp://files.example.org/x"', "key 'url' must use http or https (scheme is ftp)"),
    ('url = "hooks.slack.com/services/T/B/SECRETTOKEN"', "key 'url' must use http or https (scheme is missing)"),
    ('url = "https://"', "key 'url' has no host"),
    ('url = "https://user:SECRETTOKEN@example.org/"', "key 'url' must not carry credentials"),
    ('url = "https://example.org/a b"', "key 'url' contains whitespace or control characters"),
    ('url = "https://example.org:99999/"', "key 'url' is not a valid URL"),
    ('url = ""', "key 'url' is empty"),
    ("url = 42", "key 'url' must be a string, got int"),
    ('format = "json"', "key 'url' is required"),
]


@pytest.mark.parametrize(("line", "expected"), BAD_URLS, ids=[b[1][:50] for b in BAD_URLS])
def test_bad_urls_are_refused_without_quoting_the_url(line: str, expected: str) -> None:
    (problem,) = one(f"[[webhooks]]\n{line}\n").problems
    assert expected in problem.message
    assert "SECRETTOKEN" not in problem.message and "example.org" not in problem.message


def test_a_problem_remembers_which_events_it_would_have_matched() -> None:
    (problem,) = one(f'[[webhooks]]\nurl = "{URL}"\nevents = ["WorkflowFailed", "RuleFaild"]\n').problems
    assert problem.matches("WorkflowFailed") and not problem.matches("RuleStarted")
    (unfiltered,) = one('[[webhooks]]\nurl = "ftp://x"\n').problems
    assert unfiltered.matches("RuleStarted")


def test_line_numbers_point_at_each_webhook_header() -> None:
    text = f'[workflow]\nname = "x"\n\n[[webhooks]]\nurl = "{URL}"\n\n[[webhooks]]\nurl = "ftp://x"\n'
    (problem,) = one(text).problems
    assert "[[webhooks]] #2 (line 7)" in problem.message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[[webhooks]]\nurl = "https://x"\nevents = ["A"\n', "TOML syntax error at line 4, column 1"),
        ("[workflow\n", "TOML syntax error at line 1"),
        ('webhooks = "https://x"\n', "'webhooks' must be an array of tables ([[webhooks]]), got str"),
        (b"\xff\xfe", "not UTF-8 text"),
    ],
)
def test_a_broken_file_raises_with_the_position(text: str | bytes, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, SOURCE)
    assert str(caught.value).startswith(SOURCE + ": ")
    assert expected in str(caught.value)


def test_check_url_accepts_ordinary_webhook_urls() -> None:
    for url in ("https://hooks.slack.com/services/T/B/X", "http://127.0.0.1:8080/hook", "https://[::1]:8443/x?y=1"):
        assert check_url(url) is None
