"""A workflow's [publish] key: read from its own file only, checked like every other key, never quoted."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime
from pathlib import Path

import pytest

from oxoflow_notify.aws.references import References
from oxoflow_notify.config.parse import parse_config
from oxoflow_notify.config.scopes import secret_scope
from oxoflow_notify.errors import InfrastructureError, ReferenceProblem, is_infrastructure
from oxoflow_notify.inbound.events import parse_event
from oxoflow_notify.inbound.topic import publish_signature, signable
from oxoflow_notify.pipeline.publishers import refusal, verifies
from oxoflow_notify.tools.cli import main

SOURCE = "workflows/variant-calling.oxoflow"
SCOPE = secret_scope(SOURCE, "oxoflow-notify/", "workflows/")
KEY = "k3y-0123456789abcdef"
WEBHOOK = '[[webhooks]]\nid = "lims"\nurl = "https://lims.example.org/hook"\n\n'


def test_a_literal_key_is_read_and_never_shown_in_the_configs_repr() -> None:
    # given a workflow's file with a webhook and a literal publish key
    text = f'{WEBHOOK}[publish]\nkey = "{KEY}"\n'
    # when it is parsed in the workflow's scope
    config = parse_config(text, SOURCE, SCOPE)
    # then the key is the workflow's, the webhook still counts, and the repr does not quote the key
    assert config.publish_keys == (KEY,)
    assert config.publish_problem is None and [w.id for w in config.webhooks] == ["lims"]
    assert KEY not in repr(config)


def test_a_list_while_rotating_keeps_its_order_newest_first() -> None:
    # given two keys, the new one first, the second a reference in the workflow's own scope
    reference = "ssm:/oxoflow-notify/workflows/variant-calling/publish-key"
    text = f'[publish]\nkey = ["{KEY}", "{reference}"]\n'
    # when it is parsed
    config = parse_config(text, SOURCE, SCOPE)
    # then both are kept, in order
    assert config.publish_keys == (KEY, reference)
    assert config.publish_problem is None


def test_a_reference_outside_the_workflows_scope_is_a_problem_at_its_line_that_does_not_quote_it() -> None:
    # given a key entry naming another team's parameter
    probe = "ssm:/oxoflow-notify/workflows/other-team/publish-key"
    text = f'{WEBHOOK}[publish]\n# rotating\nkey = ["{KEY}", "{probe}"]\n'
    # when it is parsed
    config = parse_config(text, SOURCE, SCOPE)
    # then the table is unusable, the problem names the entry, the line and the allowed scope, not the probe
    assert config.publish_keys == ()
    assert config.publish_problem is not None
    [(line, message)] = config.publish_problem.parts
    assert line == 7
    assert message.startswith(f"{SOURCE}: [publish] (line 7): key 'key' (entry 2) is refused")
    assert "ssm:/oxoflow-notify/workflows/variant-calling/" in message and "other-team" not in message


def test_default_oxoflow_may_not_set_a_publish_key() -> None:
    # given the org-wide file with a [publish] table
    source = "workflows/_default.oxoflow"
    text = f'{WEBHOOK}[publish]\nkey = "{KEY}"\n'
    # when it is parsed in its (shared) scope, or by its name alone
    for scope in (secret_scope(source, "oxoflow-notify/", "workflows/"), None):
        config = parse_config(text, source, scope)
        # then the key is refused at the table's line, saying why and what to do instead
        assert config.publish_keys == ()
        assert config.publish_problem is not None
        assert config.publish_problem.parts[0][0] == 5
        assert "not allowed in _default.oxoflow" in config.publish_problem.message
        assert "each workflow's own file" in config.publish_problem.message


def test_an_unknown_key_in_publish_gets_a_did_you_mean_and_a_missing_key_is_named() -> None:
    # given a misspelt key
    text = f'[publish]\nkye = "{KEY}"\n'
    # when it is parsed
    config = parse_config(text, SOURCE, SCOPE)
    # then both problems are reported, the typo at its own line with a suggestion
    assert config.publish_problem is not None
    lines = dict(config.publish_problem.parts)
    assert "unknown key 'kye' (did you mean 'key'?)" in lines[2]
    assert "key 'key' is required" in lines[1]


def test_short_empty_and_wrongly_typed_keys_are_refused_without_quoting_them() -> None:
    # given keys that cannot be used
    cases = {
        'key = "short-key"': "shorter than 16 characters",
        "key = []": "is an empty list",
        "key = 42": "must be a string, or a list of strings",
        'key = ["", "x"]': "(entry 1) must be a non-empty string",
        'key = "ssm:/bad path"': "is not a valid reference",
    }
    for line, expected in cases.items():
        # when each is parsed
        config = parse_config(f"[publish]\n{line}\n", SOURCE, SCOPE)
        # then it is a problem saying what is wrong, and no key is taken
        assert config.publish_problem is not None and expected in config.publish_problem.message, line
        assert config.publish_keys == ()
        assert "short-key" not in config.publish_problem.message


def test_a_file_without_publish_binds_nothing() -> None:
    # given a file with webhooks only
    config = parse_config(WEBHOOK, SOURCE, SCOPE)
    # then it has no key and no problem
    assert config.publish_keys == () and config.publish_problem is None


def test_the_signature_is_an_independent_hmac_of_the_exact_bytes_and_any_listed_key_verifies() -> None:
    # given a message and the signature publish_message would attach
    body = '{"event":"RuleFailed","workflow":"variant-calling","rule":"align"}'
    signature = publish_signature(KEY, body)
    # then it is sha256= and the lowercase hex HMAC-SHA256 computed independently
    assert signature == "sha256=" + hmac.new(KEY.encode(), body.encode(), hashlib.sha256).hexdigest()
    # and it verifies under any listed key, not under others, nor over other bytes, nor when absent
    assert verifies(signature, body, ["new-key-0123456789", KEY])
    assert not verifies(signature, body, ["new-key-0123456789"])
    assert not verifies(signature, body + " ", [KEY])
    assert not verifies(None, body, [KEY])
    assert not verifies("sha256=\udcff", body, [KEY])  # any text, even unencodable, is an answer, not a crash


def test_signing_adds_an_id_and_a_timestamp_only_when_missing() -> None:
    # given events with and without their own id and timestamp
    mine = {"event": "RuleFailed", "workflow": "w", "rule": "r", "id": "run-1", "timestamp": "2026-05-18T12:00:00Z"}
    bare = {"event": "RuleFailed", "workflow": "w", "rule": "r"}
    # when each is made signable
    # then an event's own are kept, and a bare one gains a uuid4 id and a UTC timestamp
    assert signable(mine) == mine
    signed = signable(bare)
    assert len(signed["id"]) == 36 and signed["id"][14] == "4"
    assert signed["timestamp"].endswith("Z")
    assert "id" not in bare  # the caller's dict is left alone


def test_a_key_that_cannot_be_read_for_now_fails_the_event_so_lambda_retries_it() -> None:
    # given a workflow whose key is a parameter, and SSM throttling the read
    class Throttled(References):
        def resolve(self, reference: str) -> str:
            raise ReferenceProblem(f"{reference} could not be read (GetParameterError)", permanent=False)

    config = parse_config('[publish]\nkey = "ssm:/oxoflow-notify/workflows/variant-calling/k"\n', SOURCE, SCOPE)
    body = '{"event":"RuleFailed","workflow":"variant-calling","rule":"align"}'
    event = parse_event(body, message_id="m-1", received_at=datetime(2026, 5, 18, tzinfo=UTC))
    # when the dispatcher checks an event for it
    with pytest.raises(InfrastructureError) as raised:
        refusal(event, body, "m-1", None, [config], SOURCE, Throttled(lambda: None, lambda: None))
    # then the fault is one Lambda retries, not a letter
    assert is_infrastructure(raised.value)


def test_validate_reports_a_publish_problem_with_file_and_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # given a workflow's file with a misspelt key in [publish]
    path = tmp_path / "variant-calling.oxoflow"
    path.write_text(f'{WEBHOOK}[publish]\nkye = "{KEY}"\n', encoding="utf-8")
    # when validate checks it
    code = main(["validate", str(path)])
    # then it fails with the problem at its line and a did-you-mean, never quoting the value
    err = capsys.readouterr().err
    assert code == 1
    assert f"{path}: [publish] (line 6): unknown key 'kye' (did you mean 'key'?)" in err
    assert KEY not in err
