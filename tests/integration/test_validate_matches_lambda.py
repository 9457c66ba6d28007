"""`oxoflow-notify validate` is the deployed Lambda: what it refuses, the dispatcher dead-letters with
the same words, and what it passes, the dispatcher sends; and the README's validate-then-upload line
works on every example file in the repository (mock_aws S3)."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from moto import mock_aws

from oxoflow_notify.tools import cli
from oxolocal.receivers import Receiver, ok
from oxolocal.stack import LOCAL_ENV, Stack
from tests.conftest import sns_event

ROOT = Path(__file__).resolve().parents[2]
THREE = ("http://10.0.0.1/hook", "http://localhost:8080/hook", "https://127.0.0.1/hook")
OPEN = ["--allow-http", "--allowlist", "10.0.0.0/8,127.0.0.0/8"]
# The template's defaults (RequireHttps "true", TargetAllowlist ""), and a stack opened for those ranges.
SETTINGS = {
    "defaults": {"REQUIRE_HTTPS": "true", "TARGET_ALLOWLIST": ""},
    "open": {"REQUIRE_HTTPS": "false", "TARGET_ALLOWLIST": "10.0.0.0/8,127.0.0.0/8"},
}
GUARD_HINT = re.compile(r" \(only a stack (?:deployed with|whose) .*\)$")


@pytest.fixture
def no_stack_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No stack's settings in the environment: validate applies the template's defaults."""
    for name in ("REQUIRE_HTTPS", "TARGET_ALLOWLIST", "CONFIG_PREFIX", "SECRETS_PREFIX"):
        monkeypatch.delenv(name, raising=False)


def validate(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = cli.main(["validate", *args])
    said = capsys.readouterr()
    return code, said.out, said.err


def config_file(tmp_path: Path, url: str, name: str = "wf.oxoflow") -> Path:
    path = tmp_path / name
    path.write_text(f'[workflow]\nname = "wf"\n\n[[webhooks]]\nid = "hook"\nformat = "json"\nurl = "{url}"\n', encoding="utf-8")
    return path


# -- validate refuses what the guard refuses, at the url's own line ---------------------------------


@pytest.mark.parametrize("url", THREE)
@pytest.mark.usefixtures("no_stack_env")
def test_the_three_urls_the_stack_refuses_fail_validate_at_the_url_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], url: str
) -> None:
    # given a file whose webhook's url (line 7) the deployed functions would refuse
    path = config_file(tmp_path, url)
    # when it is validated with no stack settings (the template's defaults)
    code, out, err = validate(capsys, str(path))
    # then it is refused in the Lambda's words, at the url's line, and named as the file upload would put
    assert code == 1
    (problem,) = err.splitlines()
    assert problem.startswith(f"{path}: [[webhooks]] #1 (line 7): key 'url': ")
    lambda_words = "plain http is refused (REQUIRE_HTTPS is on)" if url.startswith("http:") else "target resolves to 127.0.0.1"
    assert lambda_words in problem
    assert "upload puts it at workflows/wf.oxoflow" in out
    # and upload, which validates first, refuses it too, uploading nothing
    assert cli.main(["upload", str(path), "--bucket", "never-used"]) == 1
    assert "nothing uploaded" in capsys.readouterr().err


@pytest.mark.parametrize("url", THREE)
@pytest.mark.usefixtures("no_stack_env")
def test_the_flags_that_mirror_the_parameters_let_them_pass(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    path = config_file(tmp_path, url)
    # when validated with --allow-http and --allowlist (RequireHttps=false, TargetAllowlist=...)
    code, out, err = validate(capsys, *OPEN, str(path))
    assert (code, err) == (0, "") and f"{path}: ok (1 webhook)" in out
    # or with those settings in the environment, as `eval "$(oxoflow-notify env)"` of such a stack sets them
    monkeypatch.setenv("REQUIRE_HTTPS", "false")
    monkeypatch.setenv("TARGET_ALLOWLIST", "10.0.0.0/8,127.0.0.0/8")
    assert validate(capsys, str(path))[0] == 0


@pytest.mark.usefixtures("no_stack_env")
def test_a_reference_is_a_note_and_dns_is_asked_only_with_resolve(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    reference = tmp_path / "wf.oxoflow"
    reference.write_text('[[webhooks]]\nurl = "ssm:/oxoflow-notify/workflows/wf/slack"\n', encoding="utf-8")
    code, out, err = validate(capsys, str(reference))
    assert (code, err) == (0, "")
    assert "note: " in out and "its url is an ssm: reference" in out and "cannot be checked offline" in out
    # a name is looked up only with --resolve (localhost: /etc/hosts, no network), then vetted as the guard vets it
    named = config_file(tmp_path, "https://localhost.localdomain/hook")
    assert validate(capsys, str(named))[0] == 1  # a loopback name by definition: no lookup needed
    assert validate(capsys, "--resolve", "--allowlist", "127.0.0.0/8,::1/128", str(named))[0] == 0
    code, _, err = validate(capsys, "--allowlist", "bogus", str(named))
    assert code == 2 and "'bogus' is not a CIDR range" in err


@pytest.mark.usefixtures("no_stack_env")
def test_every_url_problem_is_reported_at_the_url_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = config_file(tmp_path, "https://user:pw@hooks.example.org:99999/x")
    code, _, err = validate(capsys, str(path))
    assert code == 1
    assert err.splitlines() == [
        f"{path}: [[webhooks]] #1 (line 7): key 'url' must not carry credentials (user:password@); use the secret key for signing",
        f"{path}: [[webhooks]] #1 (line 7): key 'url' is not usable: the URL's port is not a number between 1 and 65535",
    ]
    assert "pw" not in err and "99999" not in err


# -- the proof: the same file through the real dispatcher gives the same verdict ------------------


@pytest.fixture(params=sorted(SETTINGS))
def setting(request: pytest.FixtureRequest, restore_environ: None) -> Iterator[tuple[str, Stack]]:
    """The template's resources in mock_aws, the functions run with one of SETTINGS."""
    name: str = request.param
    os.environ.update(LOCAL_ENV)
    os.environ.pop("AWS_ENDPOINT_URL", None)
    with mock_aws():
        yield name, Stack(overrides={"RETRY_SCHEDULE": "0,0", "POWERTOOLS_METRICS_NAMESPACE": "Test", **SETTINGS[name]}).provision()


def lambda_verdict(stack: Stack, receiver: Receiver) -> str:
    """What the dispatcher did with the file's one webhook: "sent" (delivered, or tried and queued for a
    retry: the guard let it through), or "refused: <the guard's words>" (dead-lettered, never contacted)."""
    result = stack.invoke("DispatchFunction", sns_event("rule-failed"))
    letters = stack.drain(stack.dead_letter_queue_url)
    if not letters:
        assert result["delivered"] + result["retrying"] == 1
        return "sent"
    (letter,) = letters
    assert letter["reason_code"] == "permanent_failure" and receiver.requests == [] and receiver.connections == 0
    return "refused: " + str(letter["reason"]).removesuffix(" (permanent; not retried)")


def validate_verdict(capsys: pytest.CaptureFixture[str], path: Path) -> str:
    code, _, err = validate(capsys, str(path))
    if code == 0:
        return "sent"
    (problem,) = err.splitlines()
    return "refused: " + GUARD_HINT.sub("", problem.split(": key 'url': ", 1)[1])


PARITY_URLS = [
    ("http://localhost:{port}/hook", False),
    ("http://127.0.0.1:{port}/hook", False),
    ("https://127.0.0.1:{port}/hook", True),
    ("https://localhost:{port}/hook", True),
    ("http://2130706433:{port}/hook", False),
    ("https://[::ffff:127.0.0.1]:{port}/hook", True),
    ("https://[::1]:{port}/hook", True),
    ("https://169.254.169.254/latest/meta-data", True),
    ("https://0.0.0.0:{port}/hook", True),
]


@pytest.mark.parametrize(("template", "tls"), PARITY_URLS)
def test_validate_says_what_the_dispatcher_does(
    setting: tuple[str, Stack],
    receivers: Callable[..., Receiver],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    template: str,
    tls: bool,
) -> None:
    name, stack = setting
    # given a loopback receiver and a workflow file whose one webhook points at it (or somewhere blocked)
    receiver = receivers(ok(), tls=tls)
    url = template.format(port=receiver.port)
    path = config_file(tmp_path, url)
    stack.put_config("variant-calling", path.read_text(encoding="utf-8"))  # the sample event's workflow
    # when validate runs with the stack's settings in its environment, and the stack's dispatcher handles an event
    for key, value in SETTINGS[name].items():
        monkeypatch.setenv(key, value)
    said = validate_verdict(capsys, path)
    did = lambda_verdict(stack, receiver)
    # then they agree: both refuse, in the same words, or validate passes and the receiver got the POST
    assert said == did, f"{name}: {url}"


def test_the_parity_cases_cover_both_verdicts() -> None:
    """The cases above would prove little if the open stack refused (or passed) all of them; with the
    template's defaults every loopback case is refused (only a public address passes, and these tests
    reach loopback only)."""
    from oxoflow_notify.aws.settings import guard_from
    from oxoflow_notify.outbound.preflight import Preflight

    def verdicts(setting: str) -> set[bool]:
        check = Preflight(guard_from(SETTINGS[setting]))
        return {check(template.format(port=8443)) is None for template, _ in PARITY_URLS}

    assert verdicts("open") == {True, False} and verdicts("defaults") == {False}


# -- one rule for whose file it is: README's validate && upload on every example -------------------


def example_files() -> list[tuple[str, str, str]]:
    """Every whole .oxoflow example: events/*.oxoflow and each toml block of the docs holding webhooks,
    with the file name a reader would give it (the workflow whose secret names it uses, else my.oxoflow)."""
    found = [(str(p.relative_to(ROOT)), p.name, p.read_text(encoding="utf-8")) for p in sorted((ROOT / "events").glob("*.oxoflow"))]
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for number, block in enumerate(re.findall(r"```toml\n(.*?)```", doc.read_text(encoding="utf-8"), re.S)):
            if re.search(r"^\[\[?webhooks?\]\]?", block, re.M):
                scoped = re.search(r"workflows/([A-Za-z0-9_.-]+)/", block)
                found.append((f"{doc.name} block {number + 1}", f"{scoped.group(1) if scoped else 'my'}.oxoflow", block))
    return found


EXAMPLES = example_files()


def test_the_examples_are_found() -> None:
    assert len(EXAMPLES) >= 6 and any(name == "variant-calling.oxoflow" and "[workflow]" not in text for _, name, text in EXAMPLES)


@pytest.mark.parametrize(("where", "name", "text"), EXAMPLES, ids=[where for where, _, _ in EXAMPLES])
@pytest.mark.usefixtures("no_stack_env")
def test_the_readme_validate_then_upload_line_works_on_every_example(
    stack: Stack, tmp_path: Path, capsys: pytest.CaptureFixture[str], where: str, name: str, text: str
) -> None:
    # given the example saved under the name its text implies
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    # when the README's line runs: oxoflow-notify validate my.oxoflow && oxoflow-notify upload my.oxoflow --bucket "$BUCKET"
    code, out, err = validate(capsys, str(path))
    assert code == 0, err
    said = re.search(r"upload puts it at (\S+)", out)
    assert said is not None, out
    assert cli.main(["upload", str(path), "--bucket", stack.bucket]) == 0, capsys.readouterr().err
    # then upload put it exactly where validate said, which is where the Lambda reads that workflow's file
    assert capsys.readouterr().out.strip() == f"s3://{stack.bucket}/{said.group(1)}"
    body = stack.s3.get_object(Bucket=stack.bucket, Key=said.group(1))["Body"].read()
    assert body == text.encode("utf-8")


@pytest.mark.usefixtures("no_stack_env")
def test_workflow_name_wins_over_the_file_name_in_both_commands_and_says_so(
    stack: Stack, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # given pipeline.oxoflow whose [workflow] name is variant-calling, with a secret in that workflow's scope
    path = tmp_path / "pipeline.oxoflow"
    path.write_text(
        '[workflow]\nname = "variant-calling"\n[[webhooks]]\nurl = "https://lims.example.org/h"\n'
        'secret = "ssm:/oxoflow-notify/workflows/variant-calling/lims"\n',
        encoding="utf-8",
    )
    # then validate checks it as variant-calling (so its reference is in scope) and says which name won
    code, out, _ = validate(capsys, str(path))
    assert code == 0
    assert "the file name says 'pipeline'; [workflow] name 'variant-calling' wins" in out
    assert "checked as workflow 'variant-calling' ([workflow] name): upload puts it at workflows/variant-calling.oxoflow" in out
    # and upload puts it there; --workflow overrides both, and then its scope is checked (the reference is outside it)
    assert cli.main(["upload", str(path), "--bucket", stack.bucket]) == 0
    assert capsys.readouterr().out.strip() == f"s3://{stack.bucket}/workflows/variant-calling.oxoflow"
    assert validate(capsys, "--workflow", "other", str(path))[0] == 1
    assert cli.main(["upload", str(path), "--workflow", "other", "--bucket", stack.bucket]) == 1
    assert "nothing uploaded" in capsys.readouterr().err
    assert cli.main(["validate", "--json", str(path)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report[0]["workflow"], report[0]["workflow_from"], report[0]["key"]) == (
        "variant-calling",
        "[workflow] name",
        "workflows/variant-calling.oxoflow",
    )
