"""Secret scopes: a workflow's file references only <SecretsPrefix>workflows/<workflow>/..., the
org-wide _default.oxoflow only <SecretsPrefix>shared/...; refused before any AWS call, with the rule
and never the reference; the ingest function reads its own secret and nothing else."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from oxoflow_notify.aws.references import References
from oxoflow_notify.aws.settings import Settings
from oxoflow_notify.config import Webhook
from oxoflow_notify.config.parse import parse_config
from oxoflow_notify.config.scopes import in_config_scopes, secret_scope, workflow_of
from oxoflow_notify.config.urls import check_url
from oxoflow_notify.errors import ReferenceProblem, SettingsError
from oxoflow_notify.tools import cli
from oxoflow_notify.wiring import build_ingest

KEY = "workflows/variant-calling.oxoflow"
SCOPE = secret_scope(KEY, "oxoflow-notify/", "workflows/")
RULE = (
    "a reference in workflows/variant-calling.oxoflow may only name secrets under "
    "ssm:/oxoflow-notify/workflows/variant-calling/ (the workflow's scope)"
)
SM_RULE = RULE.replace("ssm:/", "secretsmanager:")
SHARED_RULE = (
    "a reference in workflows/_default.oxoflow may only name secrets under ssm:/oxoflow-notify/shared/ "
    "(the shared scope, as _default.oxoflow is read for every workflow)"
)


@pytest.mark.parametrize(
    "reference",
    [
        "ssm:/oxoflow-notify/workflows/variant-calling/slack-url",
        "ssm:/oxoflow-notify/workflows/variant-calling/team/nested/name",
        "secretsmanager:oxoflow-notify/workflows/variant-calling/lims",
        "secretsmanager:oxoflow-notify/workflows/variant-calling/lims#key",
        "secretsmanager:oxoflow-notify/workflows/variant-calling/lims#a/../b",  # a JSON key, not a path
    ],
)
def test_names_inside_the_workflows_scope_are_allowed(reference: str) -> None:
    assert SCOPE.allows(reference)
    assert in_config_scopes(reference, "oxoflow-notify/")


@pytest.mark.parametrize(
    "reference",
    [
        "ssm:/oxoflow-notify/ingest-secret",  # the old default ingest secret: in no config's scope
        "ssm:/oxoflow-notify-ingest/secret",  # the new one
        "ssm:/oxoflow-notify/teamB-slack-url",
        "ssm:/oxoflow-notify/workflows/teamB/slack-url",  # another workflow's
        "ssm:/oxoflow-notify/shared/org-key",  # the shared scope is _default.oxoflow's
        "ssm:/oxoflow-notify/workflows/variant-calling",  # the scope itself, not a name in it
        "ssm:/oxoflow-notify/workflows/variant-calling/",  # trailing slash
        "ssm:/oxoflow-notify/workflows/variant-calling-b/x",  # a longer segment that starts the same
        "ssm:/oxoflow-notify/workflows/variant-callingx",
        "ssm:/oxoflow-notify/workflows/variant-calling/../teamB/x",  # traversal
        "ssm:/oxoflow-notify/workflows/variant-calling/../../ingest-secret",
        "ssm:/oxoflow-notify/workflows/variant-calling/./x",
        "ssm:/oxoflow-notify/workflows/variant-calling//x",  # empty segment
        "ssm:/oxoflow-notify//workflows/variant-calling/x",
        "ssm://oxoflow-notify/workflows/variant-calling/x",
        "ssm:/Oxoflow-notify/workflows/variant-calling/x",  # names are case-sensitive
        "ssm:/oxoflow-notify/workflows/Variant-Calling/x",
        "secretsmanager:/oxoflow-notify/workflows/variant-calling/x",  # another secret than without the slash
        "secretsmanager:oxoflow-notify/workflows/variant-calling",
        "secretsmanager:oxoflow-notify/workflows/variant-calling/../teamB#key",
        "ssm:/oxoflow-notify/workflows/variant-calling/x\n",  # not a valid reference at all
        "ssm:/oxoflow-notify/workflows/variant-calling/%2e%2e/x",
    ],
)
def test_names_outside_the_workflows_scope_are_refused_whatever_the_spelling(reference: str) -> None:
    assert not SCOPE.allows(reference)


def test_the_default_file_has_the_shared_scope_and_only_it() -> None:
    shared = secret_scope("workflows/_default.oxoflow", "oxoflow-notify/", "workflows/")
    assert shared.shared and shared.allows("ssm:/oxoflow-notify/shared/org-slack-url")
    assert not shared.allows("ssm:/oxoflow-notify/workflows/variant-calling/slack-url")
    assert not shared.allows("ssm:/oxoflow-notify/shared/../ingest-secret")
    assert shared.rule("ssm:/x") == SHARED_RULE


@pytest.mark.parametrize(
    ("source", "config_prefix", "workflow"),
    [
        ("workflows/variant-calling.oxoflow", "workflows/", "variant-calling"),
        ("workflows/_default.oxoflow", "workflows/", "_default"),
        ("cfg/team-a/wf.1.oxoflow", "cfg/team-a/", "wf.1"),
        ("other/variant-calling.oxoflow", "workflows/", None),  # not under the config prefix
        ("workflows/sub/variant-calling.oxoflow", "workflows/", None),
        ("workflows/variant-calling.toml", "workflows/", None),
        ("workflows/..oxoflow", "workflows/", None),
        ("/home/me/variant-calling.oxoflow", None, "variant-calling"),  # a local file: its name
        ("C:\\Users\\me\\variant-calling.oxoflow", None, "variant-calling"),
        ("my config.oxoflow", None, None),
    ],
)
def test_the_workflow_is_told_by_the_config_key_or_the_file_name(source: str, config_prefix: str | None, workflow: str | None) -> None:
    assert workflow_of(source, config_prefix) == workflow


def test_an_unknown_workflow_allows_nothing_and_says_how_to_name_it() -> None:
    unknown = secret_scope("my config.oxoflow", "oxoflow-notify/")
    assert not unknown.allows("ssm:/oxoflow-notify/workflows/my config/x")
    assert unknown.rule("ssm:/x") == (
        "a reference in my config.oxoflow is refused: the file's workflow, and so its scope, is not known "
        "(name the file <workflow>.oxoflow, or pass --workflow)"
    )


def test_another_secrets_prefix_moves_every_scope() -> None:
    scope = secret_scope(KEY, "acme-notify", "workflows/")
    assert scope.allows("ssm:/acme-notify/workflows/variant-calling/x")
    assert not scope.allows("ssm:/oxoflow-notify/workflows/variant-calling/x")
    assert "under ssm:/acme-notify/workflows/variant-calling/ " in scope.rule("ssm:/x")


# -- parse time: an invalid_webhook problem for each event it would match ------------------------


def parsed(text: str, source: str = KEY) -> Any:
    return parse_config(text, source, secret_scope(source, "oxoflow-notify/", "workflows/"))


@pytest.mark.parametrize(
    ("entry", "reason"),
    [
        ('url = "ssm:/oxoflow-notify/teamB-slack-url"', f"key 'url': {RULE}"),
        ('url = "ssm:/oxoflow-notify/workflows/teamB/slack-url"', f"key 'url': {RULE}"),
        ('url = "https://a.example.org/h"\nsecret = "ssm:/oxoflow-notify/ingest-secret"', f"key 'secret': {RULE}"),
        ('url = "https://a.example.org/h"\nsecret = "secretsmanager:oxoflow-notify/workflows/teamB/key#k"', f"key 'secret': {SM_RULE}"),
        (
            'url = "https://a.example.org/h"\nsecret = ["ssm:/oxoflow-notify/workflows/variant-calling/new",\n'
            '"ssm:/oxoflow-notify/x/../old"]',
            f"key 'secret' (entry 2): {RULE}",
        ),
    ],
)
def test_a_reference_outside_the_scope_is_a_problem_naming_the_rule_only(entry: str, reason: str) -> None:
    config = parsed(f'[[webhooks]]\nevents = ["RuleFailed", "WorkflowFailed"]\n{entry}\n')
    (problem,) = config.problems
    assert config.webhooks == ()
    key = "url" if reason.startswith("key 'url'") else "secret"
    line = 3 + entry.split("\n").index(next(text for text in entry.split("\n") if text.startswith(key)))
    assert problem.message == f"{KEY}: [[webhooks]] #1 (line {line}): {reason}"  # at the key's own line
    assert problem.events == frozenset({"RuleFailed", "WorkflowFailed"})  # dead-lettered for each event it would match
    for leaked in ("teamB", "ingest-secret", "/x/", "old"):
        assert leaked not in problem.message


def test_the_signing_oracle_through_oxoflows_own_webhook_table_is_refused() -> None:
    # oxo-flow's [webhook] defaults to its own payload signed hmac-sha256: what the ingest URL verifies
    config = parsed('[webhook]\nurl = "https://me.example.org/h"\nsecret = "ssm:/oxoflow-notify-ingest/secret"\nevents = ["*"]\n')
    (problem,) = config.problems
    assert problem.message == f"{KEY}: [webhook] (line 3): key 'secret': {RULE}"
    assert problem.events is None


def test_references_in_scope_parse_and_literals_are_untouched() -> None:
    config = parsed(
        '[[webhooks]]\nurl = "ssm:/oxoflow-notify/workflows/variant-calling/slack"\nformat = "slack"\n'
        '[[webhooks]]\nurl = "https://a.example.org/h"\n'
        'secret = ["literal", "secretsmanager:oxoflow-notify/workflows/variant-calling/k#v"]\n'
    )
    assert len(config.webhooks) == 2 and config.problems == ()


def test_the_default_file_may_use_shared_names_only() -> None:
    source = "workflows/_default.oxoflow"
    ok = parsed('[[webhooks]]\nurl = "ssm:/oxoflow-notify/shared/org-alerts"\n', source)
    assert len(ok.webhooks) == 1
    (problem,) = parsed('[[webhooks]]\nurl = "ssm:/oxoflow-notify/workflows/variant-calling/slack"\n', source).problems
    assert problem.message == f"{source}: [[webhooks]] #1 (line 2): key 'url': {SHARED_RULE}"


# -- resolve time: checked again before any AWS call -------------------------------------------


def no_aws() -> Any:
    raise AssertionError("no provider may be built (no AWS call) for a reference outside its scope")


class Provider:
    def __init__(self, values: dict[str, str]) -> None:
        self.values, self.asked = values, list[str]()

    def __call__(self) -> Provider:  # its own factory
        return self

    def get(self, name: str, **_: Any) -> str:
        self.asked.append(name)
        return self.values[name]


def hook(url: str, secrets: tuple[str, ...] = (), source: str = KEY) -> Webhook:
    return Webhook(id="h", url=url, format="json", events=None, secrets=secrets, source=source, position=1)


@pytest.mark.parametrize(
    "webhook",
    [
        hook("ssm:/oxoflow-notify/teamB-slack-url"),
        hook("https://a.example.org/h", ("ssm:/oxoflow-notify-ingest/secret",)),
        hook("ssm:/oxoflow-notify/workflows/teamB/url"),
        hook("ssm:/oxoflow-notify/workflows/variant-calling/url", source="workflows/teamB.oxoflow"),
    ],
)
def test_a_webhook_from_anywhere_is_held_to_its_files_scope_before_any_call(webhook: Webhook) -> None:
    references = References(no_aws, no_aws)
    with pytest.raises(ReferenceProblem) as refused:
        references.webhook(webhook)
    assert refused.value.permanent and "may only name secrets under" in str(refused.value)
    assert "teamB-slack-url" not in str(refused.value) and "oxoflow-notify-ingest" not in str(refused.value)


def test_resolve_refuses_names_outside_every_config_scope_without_echoing_them() -> None:
    references = References(no_aws, no_aws)
    for reference in ("ssm:/oxoflow-notify/teamB-slack-url", "ssm:/oxoflow-notify/shared/../x", "secretsmanager:elsewhere/x"):
        with pytest.raises(ReferenceProblem) as refused:
            references.resolve(reference)
        assert "teamB" not in str(refused.value) and "elsewhere" not in str(refused.value)
    assert str(refused.value) == (
        "a reference may only name secrets under secretsmanager:oxoflow-notify/workflows/<workflow>/ "
        "or secretsmanager:oxoflow-notify/shared/ (SECRETS_PREFIX)"
    )


def test_a_resolved_value_is_never_quoted_in_a_reason() -> None:
    name = "/oxoflow-notify/workflows/variant-calling/url"
    for value, said in (
        ("svcaccount://CANARY.example.org/CANARY", "must use http or https (another scheme)"),
        ("CANARY-no-scheme-at-all", "must use http or https (scheme is missing)"),
        ("https://CANARY:pw@a.example.org/", "must not carry credentials"),
        ("https://a.example.org:CANARY/x", "port is not a number"),
    ):
        references = References(Provider({name: value}), no_aws)
        with pytest.raises(ReferenceProblem) as refused:
            references.webhook(hook(f"ssm:{name}"))
        assert said in str(refused.value) and "CANARY" not in str(refused.value) and "svcaccount" not in str(refused.value)
    secret = "whsec_" + "Q0FOQVJZ"  # 6 bytes: too short, and its length is not told either
    references = References(no_aws, lambda: Provider({"oxoflow-notify/workflows/variant-calling/k": secret}))
    with pytest.raises(ReferenceProblem) as refused:
        references.webhook(hook("https://a.example.org/h", ("secretsmanager:oxoflow-notify/workflows/variant-calling/k",)))
    assert "Q0FOQVJZ" not in str(refused.value) and "6 bytes" not in str(refused.value)


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("ftp://a.example.org/x", "(scheme is ftp)"),
        ("wss://a.example.org/x", "(scheme is wss)"),
        ("FILE:///etc/passwd", "(scheme is file)"),
        ("svcaccount://x", "(another scheme)"),
        ("xoxb-123456://x", "(another scheme)"),
        ("a.example.org/x", "(scheme is missing)"),
    ],
)
def test_only_common_schemes_are_named(url: str, said: str) -> None:
    assert check_url(url) == f"must use http or https {said}"


# -- the ingest function: its own secret, outside every config's scope ----------------------------

INGEST_ENV = {"TOPIC_ARN": "arn:aws:sns:us-east-1:1:t"}


@pytest.mark.parametrize(
    "secret",
    [
        "ssm:/oxoflow-notify/workflows/variant-calling/ingest",
        "ssm:/oxoflow-notify/shared/ingest",
        "secretsmanager:oxoflow-notify/shared/ingest#k",
    ],
)
def test_the_ingest_secret_may_not_live_where_a_config_could_reference_it(secret: str) -> None:
    with pytest.raises(SettingsError, match="must be outside every config's scope"):
        build_ingest({**INGEST_ENV, "INGEST_SECRET": secret})


@pytest.mark.parametrize("secret", ["ssm:/oxoflow-notify/../x", "ssm:/a//b", "secretsmanager:/x"])
def test_the_ingest_secret_must_be_a_clean_reference(secret: str) -> None:
    with pytest.raises(SettingsError, match="not a valid reference"):
        build_ingest({**INGEST_ENV, "INGEST_SECRET": secret})


def test_the_ingest_function_reads_its_own_secret_and_nothing_else() -> None:
    ingest = build_ingest({**INGEST_ENV, "INGEST_SECRET": "ssm:/oxoflow-notify-ingest/secret"})
    assert ingest.secrets is not None
    references = References(no_aws, no_aws, only="ssm:/oxoflow-notify-ingest/secret")
    with pytest.raises(ReferenceProblem, match="reads only its own secret"):
        references.resolve("ssm:/oxoflow-notify/workflows/variant-calling/slack")
    provider = Provider({"/oxoflow-notify-ingest/secret": "s1,s0"})
    own = References(lambda: provider, no_aws, only="ssm:/oxoflow-notify-ingest/secret")
    assert own.resolve("ssm:/oxoflow-notify-ingest/secret") == "s1,s0"


# -- settings and the command line: what the Lambda applies --------------------------------------

BASE = {"CONFIG_BUCKET": "b", "RETRY_QUEUE_URL": "http://q/r", "DEAD_LETTER_QUEUE_URL": "http://q/d"}


def test_the_secrets_prefix_is_normalised_and_checked() -> None:
    assert Settings.from_env({**BASE, "SECRETS_PREFIX": "acme"}).secrets_prefix == "acme/"
    assert Settings.from_env({**BASE, "SECRETS_PREFIX": "/acme/notify/"}).secrets_prefix == "acme/notify/"
    for bad in ("a/../b", "a//b", "."):
        with pytest.raises(SettingsError, match="SECRETS_PREFIX"):
            Settings.from_env({**BASE, "SECRETS_PREFIX": bad})


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_validate_checks_scopes_from_the_file_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "variant-calling.oxoflow", '[[webhooks]]\nurl = "ssm:/oxoflow-notify/workflows/teamB/slack"\n')
    assert cli.main(["validate", path]) == 1
    rule = RULE.replace("workflows/variant-calling.oxoflow", path)
    said = capsys.readouterr()
    assert said.err.strip() == f"{path}: [[webhooks]] #1 (line 2): key 'url': {rule}"
    assert said.out.strip() == (
        f"{path}: 1 problem, checked as workflow 'variant-calling' (the file name): upload puts it at workflows/variant-calling.oxoflow"
    )
    # the same words the Lambda dead-letters, for the same file at its key
    (problem,) = parsed(Path(path).read_text(encoding="utf-8")).problems
    assert problem.message == f"{KEY}: [[webhooks]] #1 (line 2): key 'url': {RULE}"


def test_validate_takes_the_workflow_and_the_prefix_as_options(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "mine.oxoflow", '[[webhooks]]\nurl = "ssm:/acme/workflows/teamB/slack"\n')
    assert cli.main(["validate", path]) == 1  # scope of "mine" under oxoflow-notify/
    assert cli.main(["validate", "--workflow", "teamB", "--secrets-prefix", "acme/", path]) == 0
    assert cli.main(["validate", "--workflow", "teamB", "--secrets-prefix", "acme/", "--json", path]) == 0
    out = capsys.readouterr().out
    report = json.loads(out[out.index("[\n") :])  # after the two runs' verdict lines
    assert report[0]["scope"] == "acme/workflows/teamB/" and report[0]["ok"]
    assert cli.main(["validate", "--workflow", "../x", path]) == 2
    assert cli.main(["validate", "--secrets-prefix", "a/../b", path]) == 2
    shared = write(tmp_path, "_default.oxoflow", '[[webhooks]]\nurl = "ssm:/oxoflow-notify/shared/org"\n')
    assert cli.main(["validate", shared]) == 0


def test_validate_says_when_a_files_workflow_cannot_be_told(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "my config.oxoflow", '[[webhooks]]\nurl = "ssm:/oxoflow-notify/workflows/x/y"\n')
    assert cli.main(["validate", path]) == 1
    assert "the file's workflow, and so its scope, is not known" in capsys.readouterr().err
    assert cli.main(["validate", "--workflow", "x", path]) == 0
