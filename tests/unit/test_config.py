"""Config parsing: the sample file, and a table of bad inputs with the messages users see."""

from __future__ import annotations

import re
from typing import Any

import pytest

from oxoflow_notify.config import Config
from oxoflow_notify.config.parse import parse_config
from oxoflow_notify.config.urls import check_url
from oxoflow_notify.config.webhook_ids import webhook_id_for
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
    config = one(text + '[[webhooks]]\nurl = "https://ok.example.org/a"\nevents = "rule_started"\n')
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
        '[[webhooks]]\nurl = "https://ok.example.org/a"\nsecret = "plain"\n'
    )
    rotating, referenced, plain = one(text).webhooks
    assert rotating.secret == "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" and len(rotating.secrets) == 2 and rotating.standard_webhooks
    assert referenced.url == "ssm:/oxoflow-notify/slack-url" and referenced.host == "" and not referenced.standard_webhooks
    assert plain.signature == "hub-sha256" and not plain.standard_webhooks


SAME_URL_REASON = "have the same url and format; give each an explicit `id` so pending retries cannot reach the wrong one"


def test_the_same_url_and_format_twice_without_ids_refuses_both_naming_each() -> None:
    # given two webhooks with the same url and format and no ids, a third one elsewhere between them
    text = (
        f'[workflow]\nname = "wf"\n\n[[webhooks]]\nurl = "{URL}"\nevents = ["RuleFailed"]\n\n'
        '[[webhooks]]\nurl = "https://ok.example.org/a"\n\n'
        f'[[webhooks]]\nurl = "{URL}"\nheaders = {{ Authorization = "Bearer SECRETTOKEN" }}\n'
    )
    # when the file is parsed
    config = one(text)
    # then neither can be reached by its id (no position decides which one a retry gets), the other works
    assert [w.host for w in config.webhooks] == ["ok.example.org"]
    first, second = config.problems
    both = f"[[webhooks]] #1 (line 4) and #3 (line 11) {SAME_URL_REASON}"  # the entries, by their headers
    assert first.message == f"{SOURCE}: [[webhooks]] #1 (line 5): key 'url': {both}"  # at each one's url
    assert second.message == f"{SOURCE}: [[webhooks]] #3 (line 12): key 'url': {both}"
    # and each is dead-lettered, under the id it would have had, for the events it would have received
    assert first.webhook_id == second.webhook_id == webhook_id_for(URL, "json")
    assert first.events == frozenset({"RuleFailed"}) and second.events is None
    assert "SECRETTOKEN" not in first.message + second.message


def test_an_explicit_id_on_only_one_of_the_two_still_refuses_both() -> None:
    # given the same url and format twice, one with an explicit id
    config = one(f'[[webhooks]]\nid = "lims"\nurl = "{URL}"\n[[webhooks]]\nurl = "{URL}"\n')
    # then both are refused, each problem under its own id (the explicit one for the first)
    assert config.webhooks == ()
    assert [p.webhook_id for p in config.problems] == ["lims", webhook_id_for(URL, "json")]
    assert all(p.message.endswith(f"[[webhooks]] #1 (line 1) and #2 (line 4) {SAME_URL_REASON}") for p in config.problems)


def test_three_with_the_same_url_are_all_named_and_oxoflows_table_counts_too() -> None:
    # given the same url and format in two [[webhooks]] entries and oxo-flow's [webhook] (format set to match)
    text = f'[[webhooks]]\nurl = "{URL}"\n[[webhooks]]\nurl = "{URL}"\n[webhook]\nurl = "{URL}"\nformat = "json"\n'
    # when the file is parsed / then all three are refused, each reason naming all three
    config = one(text)
    assert config.webhooks == () and len(config.problems) == 3
    assert {p.message.split(": key 'url': ", 1)[1] for p in config.problems} == {
        f"[[webhooks]] #1 (line 1), #2 (line 3) and [webhook] (line 5) {SAME_URL_REASON}"
    }


def test_the_same_url_with_different_formats_or_explicit_ids_on_both_is_fine() -> None:
    # given the same url once as json and once as text, and twice more with an explicit id each
    config = one(
        f'[[webhooks]]\nurl = "{URL}"\n[[webhooks]]\nurl = "{URL}"\nformat = "text"\n'
        f'[[webhooks]]\nid = "a"\nurl = "{URL}"\nformat = "slack"\n[[webhooks]]\nid = "b"\nurl = "{URL}"\nformat = "slack"\n'
    )
    # then all four are webhooks, with ids derived from url and format, or their own
    assert config.problems == ()
    assert [w.id for w in config.webhooks] == [webhook_id_for(URL, "json"), webhook_id_for(URL, "text"), "a", "b"]


def test_removing_the_first_of_two_same_url_webhooks_leaves_the_second_its_id() -> None:
    # given two webhooks with the same url and format, each with an explicit id
    first = f'[[webhooks]]\nid = "lims-a"\nurl = "{URL}"\nheaders = {{ Authorization = "Bearer A" }}\n'
    second = f'[[webhooks]]\nid = "lims-b"\nurl = "{URL}"\nheaders = {{ Authorization = "Bearer B" }}\n'
    before = one(first + second)
    assert [w.id for w in before.webhooks] == ["lims-a", "lims-b"]
    # when the first is removed from the file
    after = one(second)
    # then the second keeps its id and its own header, and the first's id is gone (its retries become webhook_removed)
    (kept,) = after.webhooks
    assert kept.id == "lims-b" and kept.headers == (("Authorization", "Bearer B"),) and kept.position == 1
    assert after.find("lims-a") is None and after.problem_for("lims-a") is None


def test_derived_ids_do_not_depend_on_position() -> None:
    # given a webhook with a derived id, and an entry with no usable url
    hook, broken = f'[[webhooks]]\nurl = "{URL}"\n', "[[webhooks]]\nurl = 3\n"
    # when other webhooks are put before them
    moved = one('[[webhooks]]\nurl = "https://ok.example.org/a"\n' + broken + hook)
    # then each keeps its id (the broken entry's problem too)
    assert one(hook).webhooks[0].id == moved.webhooks[1].id == webhook_id_for(URL, "json")
    assert one(broken).problems[0].webhook_id == moved.problems[0].webhook_id
    assert moved.problems[0].webhook_id.startswith("wh_invalid_")


def test_an_explicit_id_used_twice_refuses_both() -> None:
    # given two webhooks at different urls that both say id = "lims"
    text = f'[[webhooks]]\nid = "lims"\nurl = "{URL}"\n\n[[webhooks]]\nid = "lims"\nurl = "https://other.example.org/a"\n'
    # when the file is parsed
    config = one(text)
    # then neither is used (whichever came first), and both say why
    assert config.webhooks == ()
    reason = (
        "key 'id': [[webhooks]] #1 (line 1) and #2 (line 5) have the same id 'lims'; "
        "ids must be unique in a file so pending retries cannot reach the wrong one"
    )
    assert [p.message for p in config.problems] == [  # each at its own id's line
        f"{SOURCE}: [[webhooks]] #1 (line 2): {reason}",
        f"{SOURCE}: [[webhooks]] #2 (line 6): {reason}",
    ]
    assert config.problem_for("lims") is config.problems[0]


def test_an_explicit_id_cannot_take_a_derived_id() -> None:
    # given one webhook named with the id another one derives from its url
    derived = webhook_id_for(URL, "json")
    config = one(f'[[webhooks]]\nurl = "{URL}"\n[[webhooks]]\nid = "{derived}"\nurl = "https://other.example.org/a"\n')
    # then the explicit one is refused (wh_ is kept for derived ids), so a retry for that id can only reach the first
    assert [w.id for w in config.webhooks] == [derived]
    (problem,) = config.problems
    assert "key 'id'" in problem.message and "not with 'wh_'" in problem.message


BROKEN_BY_AN_EDIT = [
    'events = ["RuleFaild"]',
    'evnts = ["RuleFailed"]',
    'secret = ""',
    "timeout = 99",
    'headers = { "Host" = "x" }',
    'method = "get"',
]


@pytest.mark.parametrize("damage", BROKEN_BY_AN_EDIT)
def test_problem_for_finds_a_broken_webhook_by_the_id_it_had_while_valid(damage: str) -> None:
    # given a valid webhook with an explicit id, and one with a derived id
    good = f'[[webhooks]]\nid = "lims"\nurl = "{URL}"\n[[webhooks]]\nurl = "https://org.example.org/a"\n'
    valid = one(good)
    derived = valid.webhooks[1].id
    # when an edit breaks one key of each
    broken = one(good.replace(f'url = "{URL}"\n', f'url = "{URL}"\n{damage}\n').replace('a"\n', f'a"\n{damage}\n'))
    # then neither is found, and each one's problem is found by the id its pending retries carry
    assert broken.webhooks == () and broken.find("lims") is None and broken.find(derived) is None
    lims, org = broken.problem_for("lims"), broken.problem_for(derived)
    assert lims is not None and lims.webhook_id == "lims" and "#1 (line " in lims.message
    assert org is not None and org.webhook_id == derived and "#2 (line " in org.message
    # and a valid webhook, or an id the file does not hold, has no problem
    assert valid.problem_for("lims") is None and valid.problem_for(derived) is None and broken.problem_for("gone") is None


def test_a_format_typo_keeps_an_explicit_id_but_changes_a_derived_one() -> None:
    # given a webhook with an explicit id and one with a derived id, both with a format typo
    other = "https://org.example.org/a"
    config = one(f'[[webhooks]]\nid = "lims"\nurl = "{URL}"\nformat = "slak"\n[[webhooks]]\nurl = "{other}"\nformat = "slak"\n')
    # then the explicit id still finds its problem; a derived id is of url and format, so it is another id
    lims = config.problem_for("lims")
    assert lims is not None and "unknown format 'slak'" in lims.message
    assert config.problem_for(webhook_id_for(other, "json")) is None
    assert [p.webhook_id for p in config.problems] == ["lims", webhook_id_for(other, "slak")]


def test_problem_for_finds_oxoflows_table_by_its_explicit_id() -> None:
    # given oxo-flow's [webhook] with an id and a broken oxo-flow key
    config = one(f'[webhook]\nid = "oxo"\nurl = "{URL}"\ntimeout_secs = 0\n')
    # then its problem is filed under that id
    problem = config.problem_for("oxo")
    assert problem is not None and "key 'timeout_secs'" in problem.message


def test_an_invalid_explicit_id_is_a_problem_under_the_derived_id() -> None:
    (problem,) = one(f'[[webhooks]]\nid = "has space"\nurl = "{URL}"\n').problems
    assert problem.webhook_id == webhook_id_for(URL, "json") and "key 'id' must be 1-64 letters" in problem.message


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
    ('headers = { "Bad Name" = "v" }', "key 'headers': header #1 has a name that is not a valid HTTP token"),
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
    named = re.search(r"key '([^']+)'", problem.message)
    bad_line = 2 + next(i for i, text in enumerate(line.split("\n")) if named and text.startswith(named.group(1)))
    assert problem.message.startswith(SOURCE + f": [[webhooks]] #1 (line {bad_line}): ")  # the bad key's own line
    assert expected.split(": ", 1)[-1] in problem.message
    assert "SECRETTOKEN" not in problem.message


BAD_URLS = [
    ('url = "ftp://files.example.org/x"', "key 'url' must use http or https (scheme is ftp)"),
    ('url = "hooks.slack.com/services/T/B/SECRETTOKEN"', "key 'url' must use http or https (scheme is missing)"),
    ('url = "https://"', "key 'url' has no host"),
    ('url = "https://user:SECRETTOKEN@example.org/"', "key 'url' must not carry credentials"),
    ('url = "https://example.org/a b"', "key 'url' contains whitespace or control characters"),
    ('url = "https://example.org:99999/"', "key 'url' is not usable: the URL's port is not a number between 1 and 65535"),
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


def test_line_numbers_point_at_the_bad_key_of_each_webhook() -> None:
    text = f'[workflow]\nname = "x"\n\n[[webhooks]]\nurl = "{URL}"\n\n[[webhooks]]\nurl = "ftp://x"\n'
    (problem,) = one(text).problems
    assert "[[webhooks]] #2 (line 8): key 'url'" in problem.message


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


# Hostile input, per webhook: each was accepted (and failed at send time with UnicodeEncodeError or
# UnicodeError from IDNA, or was sent as given) or took seconds. Now each is a problem naming the
# file, the webhook, its line and the key; the webhook after it still works.
HOSTILE_WEBHOOKS = [
    ('headers = { "X-A\\n" = "v" }', "key 'headers': header #1 has a name that is not a valid HTTP token"),
    ('headers = { "X-Team" = "a", "Authorization: Bearer SECRETTOKEN" = "v" }', "header #2 has a name that is not a valid HTTP token"),
    ('headers = { "" = "v" }', "header #1 has a name that is not a valid HTTP token"),
    ('headers = { "X-Token" = "SECRETTOKEN€" }', "the value of 'X-Token' contains a non-ASCII character"),
    ('headers = { "X-Token" = "SECRETTOKEN\\n" }', "the value of 'X-Token' contains a line break"),
    ('headers = { "X-Token" = "SECRETTOKEN\\u0000" }', "the value of 'X-Token' contains a NUL character"),
    ('headers = { "X-Token" = "SECRETTOKEN\\u001b[31m" }', "the value of 'X-Token' contains a control character"),
    ('headers = { "X-Token" = "SECRETTOKEN\\u007f" }', "the value of 'X-Token' contains a control character"),
    (f'headers = {{ "X-Token" = "{"SECRETTOKEN" * 400}" }}', "the value of 'X-Token' is over 4096 characters"),
    ('url = "https://hooks..SECRETTOKEN.com/x"', "key 'url' is not usable: the URL's host has an empty label"),
    ('url = "https://.SECRETTOKEN.com/x"', "the URL's host has an empty label"),
    (f'url = "https://{"SECRETTOKEN" * 6}.com/x"', "the URL's host has a label longer than 63 characters"),
    (f'url = "https://{"SECRETTOKEN." * 24}com/x"', "the URL's host is longer than 253 characters"),
    (
        'url = "https://SECRETTOKEN\\ufffd.com/x"',
        "the URL's host has characters outside ASCII; write an international name in its xn-- (punycode) form",
    ),
    ('url = "https://\\u2603.example.com/x"', "the URL's host has characters outside ASCII"),
    (f'url = "https://{"ü" * 60}.com/x"', "the URL's host has characters outside ASCII"),
    ('url = "https://bücher.example/x"', "write an international name in its xn-- (punycode) form"),
    ('url = "https://SECRETTOKEN%41.com/x"', "the URL's host has a character no host name can hold"),
    ('url = "https://[v1.SECRETTOKEN]/x"', "the URL's host is in [brackets] but is not an IPv6 address"),
    ('url = "https://[SECRETTOKEN]/x"', "key 'url' is not a valid URL (its host cannot be parsed"),
    ('url = "https://a.example.org:SECRETTOKEN/x"', "key 'url' is not usable: the URL's port is not a number between 1 and 65535"),
    ('url = "https://a.example.org:0/x"', "the URL's port is not a number between 1 and 65535"),
    ('url = "https://a.example.org:65536/x"', "the URL's port is not a number between 1 and 65535"),
    ('url = "https://a.example.org:+443/x"', "the URL's port is not a number between 1 and 65535"),
    ('events = ["RuleFaild", "*"]', "key 'events': unknown event 'RuleFaild' (did you mean 'RuleFailed'?)"),
    ("events = [1, [2]]", "key 'events': entry 1 is not a string (got int); entry 2 is not a string (got list)"),
    ("events = [" + ", ".join(['"RuleFailed"'] * 65) + "]", "key 'events': has 65 entries; at most 64 are allowed"),
    ('id = "ok\\n"', "key 'id' must be 1-64 letters"),
    ('secret = "ssm:/x/y\\n"', "key 'secret' entry 1 is not a valid reference"),
]


@pytest.mark.parametrize(("line", "expected"), HOSTILE_WEBHOOKS, ids=[h[1][:60] for h in HOSTILE_WEBHOOKS])
def test_a_hostile_webhook_is_a_problem_naming_the_key_and_the_others_keep_working(line: str, expected: str) -> None:
    # given a hostile webhook before a good one
    url = "" if line.startswith("url") else f'url = "{URL}"\n'
    text = f'[[webhooks]]\n{url}{line}\n\n[[webhooks]]\nurl = "https://ok.example.org/a"\n'
    # when the file is parsed
    config = one(text)
    # then the good one works and the hostile one is a problem with file, position, line and key,
    # quoting no URL, host, port or header value (the SECRETTOKEN stands for any of those)
    assert [w.host for w in config.webhooks] == ["ok.example.org"]
    (problem,) = config.problems
    bad_line = 2 if line.startswith("url") else 3
    assert problem.message.startswith(SOURCE + f": [[webhooks]] #1 (line {bad_line}): ")  # the hostile key's line
    assert expected in problem.message
    assert "SECRETTOKEN" not in problem.message and "Bearer" not in problem.message


def test_usable_hosts_and_ports_are_still_accepted() -> None:
    for url in (
        "https://xn--bcher-kva.example/x",  # an international name, in its punycode form
        "https://hooks.example.org./x",  # fully qualified, trailing dot
        "https://under_score.example.org/x",
        "http://127.0.0.1:1/x",
        "https://[2001:db8::1]:65535/x",
        "https://[fe80::1%25eth0]/x",
        f"https://{'a' * 63}.example.org/x",
        "http://2130706433/x",  # an IP literal in another spelling: the send-time guard decides
    ):
        assert check_url(url) is None, url


def test_a_star_with_unknown_names_still_reports_them_and_dead_letters_every_event() -> None:
    (problem,) = one(f'[[webhooks]]\nurl = "{URL}"\nevents = ["WorkflowFailed", "RuleFaild", "*"]\n').problems
    assert "unknown event 'RuleFaild'" in problem.message and problem.events is None


def test_a_huge_events_list_is_reported_in_bounded_time_and_length(monkeypatch: pytest.MonkeyPatch) -> None:
    # given 55,000 distinct misspelled event names in a file just under 1 MiB (tens of seconds of
    # did-you-mean before), the first of them 10,000 characters long
    import difflib

    names = ", ".join([f'"{"x" * 10_000}"'] + [f'"RuleFaild{i}"' for i in range(55_000)])
    text = f'[[webhooks]]\nurl = "{URL}"\nevents = [{names}, "WorkflowFailed"]\n'
    assert len(text) < 1_048_576
    compared: list[str] = []
    real_close_matches = difflib.get_close_matches

    def counted(word: str, *args: Any, **kwargs: Any) -> list[str]:
        compared.append(word)
        return real_close_matches(word, *args, **kwargs)

    monkeypatch.setattr(difflib, "get_close_matches", counted)
    # when the file is parsed
    (problem,) = one(text).problems
    # then did-you-mean (the cost) ran only for the names the message reports, never for the
    # 10,000-character one, and the message names the cap, three distinct names (cut short) and
    # counts the rest
    assert compared == ["rulefaild0", "rulefaild1"]
    assert problem.message.endswith(
        "key 'events': has 55,002 entries; at most 64 are allowed (8 events exist; '*' means all); "
        "unknown event '" + "x" * 64 + "…'; unknown event 'RuleFaild0' (did you mean 'RuleFailed'?); "
        "unknown event 'RuleFaild1' (did you mean 'RuleFailed'?); ... and 54,998 more unknown or non-string entries; "
        "expected one of WorkflowStarted, WorkflowCompleted, WorkflowFailed, WorkflowCancelled, RuleStarted, RuleCompleted, "
        "RuleFailed, RuleSkipped"
    )
    assert problem.matches("WorkflowFailed") and not problem.matches("RuleStarted")


def test_oxoflows_singular_table_gets_the_same_checks() -> None:
    config = one(
        '[webhook]\nurl = "https://hooks..example.org/x"\n[[webhooks]]\nurl = "https://a.example.org/x"\nheaders = { "X-A" = "€" }\n'
    )
    messages = sorted(p.message for p in config.problems)
    assert any("[webhook] (line 2): key 'url' is not usable: the URL's host has an empty label" in m for m in messages)
    assert any("[[webhooks]] #1 (line 5): key 'headers': the value of 'X-A' contains a non-ASCII character" in m for m in messages)
    unknown = one(f'[webhook]\nurl = "{URL}"\n"{"k" * 5000}\\n" = 1\n').problems[0].message
    assert "unknown key '" + "k" * 64 + "…'" in unknown and len(unknown) < 400


# Hostile input, whole file: each escaped (RecursionError, ValueError) or was read whole; a
# RecursionError in _default.oxoflow took down every workflow. Now each is a ConfigError: the file
# is unusable, like a syntax error, and the message says why and where.
def deep(levels: int, opener: str = "[", closer: str = "]") -> str:
    return opener * levels + "1" * (opener == "[") + closer * levels


HOSTILE_FILES: list[tuple[str | bytes, str]] = [
    (
        "[config]\nx = " + deep(500) + "\n",
        "key 'config' is nested more than 32 levels deep (tables and arrays), at line 2; the limit is 32",
    ),
    ("[config]\nx = " + deep(40) + "\n", "key 'config' is nested more than 32 levels deep (tables and arrays), at line 2"),
    ("a = 1\n\nx = " + deep(500, "{y=", "}") + "\n", "key 'x' is nested more than 32 levels deep (tables and arrays), at line 3"),
    ("[" + ".".join(["t"] * 1100) + "]\n", "key 't' is nested more than 32 levels deep (tables and arrays), at line 1"),
    (".".join(["k"] * 40) + " = 1\n", "key 'k' is nested more than 32 levels deep"),
    ('[[webhooks]]\nurl = "https://a.example.org/x"\nheaders = { X = ' + deep(31) + " }\n", "key 'webhooks' is nested more than 32"),
    ("a = 1\nx = " + "9" * 5000 + "\n", "key 'x' holds an integer too long to read, at line 2 (integers have at most 4,300 digits)"),
    ("x = [\n" + "9" * 5000 + "]\n", "the file holds an integer too long to read, at line 2"),
    ("# " + "x" * 1_048_576 + "\n", "the file is over 1,048,576 bytes; the limit is 1,048,576 bytes (1 MiB)"),
    ("# " + "é" * 600_000 + "\n", "the file is 1,200,003 bytes; the limit is 1,048,576 bytes (1 MiB)"),
    (b"# " + b"x" * 1_048_576, "the file is 1,048,578 bytes; the limit is 1,048,576 bytes (1 MiB)"),
    (
        '[[webhooks]]\nurl = "https://a.example.org/x"\n' * 101,
        "has 101 webhooks; at most 100 are allowed in one file (webhook #101 is at line 201)",
    ),
    ('[[webhooks]]\nurl = "https://a.example.org/x"\n' * 100 + '[webhook]\nurl = "https://b.example.org/x"\n', "has 101 webhooks"),
    ('[[webhooks]]\nurl = "https://a.example.org/x"\n"' + "k" * 2000 + '" = 1\n"' + "k" * 2000 + '" = 2\n', "TOML syntax error at line 4"),
]


@pytest.mark.parametrize(("text", "expected"), HOSTILE_FILES, ids=[h[1][:60] for h in HOSTILE_FILES])
def test_a_hostile_file_is_a_config_error_saying_why(text: str | bytes, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, SOURCE)
    message = str(caught.value)
    assert message.startswith(SOURCE + ": ") and expected in message
    assert len(message) < 500


def test_nesting_up_to_the_limit_and_a_hundred_webhooks_are_fine() -> None:
    assert one("[config]\nx = " + deep(31) + "\n").webhooks == ()
    assert len(one("".join(f'[[webhooks]]\nurl = "https://a.example.org/{i}"\n' for i in range(100))).webhooks) == 100
    assert one("# " + "x" * (1_048_576 - 3) + "\n").webhooks == ()


KEY_LINES_TEXT = """[workflow]
name = "wf"  # [[webhooks]] in a comment is not a table
notes = '''
[[webhooks]]
url = "not a key: inside a multi-line string"
'''

[[webhooks]]
"url" = "ftp://x"
events = [
  "RuleFaild",  # ] a bracket in a comment
  "x = 1",
]
headers = { "X-A" = "v",  "Host" = "x" }
'digest' = "2 minutes"

[[webhooks]]
url = "https://a.example.org/h"
[webhooks.headers]
Host = "x"
"""


def test_each_problem_is_reported_at_its_keys_own_line_whatever_the_spelling() -> None:
    # given quoted keys, a multi-line array, an inline table, a sub-table and look-alikes in strings and comments
    first, second = one(KEY_LINES_TEXT).problems
    # then validate's parts put each problem at its key's line, and the dead letter says each line once
    assert [line for line, _ in first.parts] == [10, 9, 14, 15]  # events, url, headers, digest (the checks' order)
    assert first.parts[1][1] == f"{SOURCE}: [[webhooks]] #1 (line 9): key 'url' must use http or https (scheme is ftp)"
    assert first.message.startswith(f"{SOURCE}: [[webhooks]] #1 (line 10): key 'events': unknown event 'RuleFaild'")
    assert "; line 9: key 'url' must use" in first.message and "; line 15: key 'digest': '2 minutes' is not a duration" in first.message
    assert second.parts == (
        (19, f"{SOURCE}: [[webhooks]] #2 (line 19): key 'headers': 'Host' is set by oxoflow-notify and cannot be overridden"),
    )


def test_a_key_not_written_in_the_file_is_reported_at_its_webhooks_header() -> None:
    (problem,) = one('[workflow]\nname = "wf"\n\n[[webhooks]]\nformat = "json"\n').problems
    assert problem.message == f"{SOURCE}: [[webhooks]] #1 (line 4): key 'url' is required"
    inline = one('webhooks = [{ url = "ftp://x" }]\n').problems[0]  # no [[webhooks]] header: no line to give
    assert inline.message == f"{SOURCE}: [[webhooks]] #1: key 'url' must use http or https (scheme is ftp)"


def test_a_url_with_credentials_and_a_bad_port_reports_both() -> None:
    (problem,) = one('[[webhooks]]\nurl = "https://user:SECRETTOKEN@hooks.example.org:70000/x"\n').problems
    assert problem.message == (
        f"{SOURCE}: [[webhooks]] #1 (line 2): key 'url' must not carry credentials (user:password@); use the secret key for signing; "
        "key 'url' is not usable: the URL's port is not a number between 1 and 65535"
    )
    assert check_url("https://u:p@h.example.org:0/") == (
        "must not carry credentials (user:password@); use the secret key for signing; "
        "it is not usable: the URL's port is not a number between 1 and 65535"
    )


def test_a_duration_that_cannot_be_read_says_how_to_write_one() -> None:
    (problem,) = one('[[webhooks]]\nurl = "https://a.example.org/h"\ndigest = "2 minutes"\n').problems
    assert problem.message == f"{SOURCE}: [[webhooks]] #1 (line 3): key 'digest': '2 minutes' is not a duration: write 90s, 2m or 1m30s"
