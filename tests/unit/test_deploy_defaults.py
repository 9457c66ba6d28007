"""Accepting every default of `sam deploy --guided` deploys a stack with nothing unauthenticated to answer for,
and `oxoflow-notify env` exports every stack output a command reads.

The template is transformed by the SAM translator and checked by the SAM CLI's own guided-deploy
check, both from .venv-sam (tests/fixtures/deploy_defaults.py, run there in a subprocess).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from oxoflow_notify.tools import stackenv
from oxolocal import template as tpl
from tests.conftest import ROOT, in_ci

TEMPLATE = tpl.load()
SAM_PYTHON = ROOT / ".venv-sam" / "bin" / "python"
SCRIPT = ROOT / "tests" / "fixtures" / "deploy_defaults.py"
# Outputs for people and consoles, not read by any command (each needs a reason to be here).
NOT_FOR_COMMANDS = {
    "DashboardUrl": "opened in a browser",
    "AlarmTopicArn": "subscribed to by people (or AlarmEmail)",
    "DispatchFunctionArn": "for the console and logs; no command invokes a deployed function",
    "RetryFunctionArn": "for the console and logs; no command invokes a deployed function",
}


def sam_python() -> Path:
    """.venv-sam's python: missing fails under CI=true (CI runs `make sam-check` first), skips elsewhere."""
    if SAM_PYTHON.exists():
        return SAM_PYTHON
    hint = "no .venv-sam: `make sam-check` creates it (the SAM translator and CLI)"
    if in_ci():
        pytest.fail(f"{hint}, and CI=true needs it", pytrace=False)
    pytest.skip(f"{hint} (under CI=true this test fails instead)")


@cache
def _deployed(*overrides: str) -> dict[str, Any]:
    done = subprocess.run([str(SAM_PYTHON), str(SCRIPT), *overrides], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def deployed(*overrides: str) -> dict[str, Any]:
    """What the stack holds with these parameter values (the rest at their defaults), as SAM translates it."""
    sam_python()
    return _deployed(*overrides)


def public_urls(report: dict[str, Any]) -> list[str]:
    return [name for name, spec in report["resources"].items() if spec["Type"] == "AWS::Lambda::Url" and spec["AuthType"] == "NONE"]


def test_every_parameter_has_a_default_guided_deploy_accepts() -> None:
    # given the template, when `sam deploy --guided` asks for each parameter and the operator presses Enter
    assert deployed()["parameters_without_default"] == []
    for name, spec in TEMPLATE["Parameters"].items():
        default = str(spec["Default"])
        # then CloudFormation accepts what was offered
        if "AllowedValues" in spec:
            assert default in [str(v) for v in spec["AllowedValues"]], name
        if "AllowedPattern" in spec:
            assert re.fullmatch(spec["AllowedPattern"], default), name
        if spec["Type"] == "Number":
            assert spec.get("MinValue", float("-inf")) <= float(default) <= spec.get("MaxValue", float("inf")), name


def test_the_defaults_deploy_no_unauthenticated_url_and_guided_deploy_asks_nothing_about_one() -> None:
    # given every parameter at its default
    report = deployed()
    # then no Function URL exists, the CLI's "has no authentication. Is this okay? [y/N]" (whose
    # default N ends the deploy) has nothing to ask about, and the stack has no IngestUrl output
    assert public_urls(report) == []
    assert not [r for r in report["resources"].values() if r["Type"] == "AWS::Lambda::Url"]
    assert [name for name, authenticated in report["guided_auth_check"] if not authenticated] == []
    assert "IngestUrl" not in report["outputs"]
    assert "IngestFunction" in report["resources"]  # the function stays; only its public door is opt-in


def test_the_public_ingest_url_is_there_when_enabled() -> None:
    # given the operator opts in
    report = deployed("PublicIngestUrl=Enabled")
    # then the URL exists with both public permissions Lambda needs, and its output
    assert public_urls(report) == ["IngestFunctionUrl"]
    assert report["resources"]["IngestFunctionUrlPublicPermissions"]["Type"] == "AWS::Lambda::Permission"
    assert report["resources"]["IngestFunctionURLInvokeAllowPublicAccess"]["Type"] == "AWS::Lambda::Permission"
    assert "IngestUrl" in report["outputs"]
    # the parameter is the consent: guided deploy still has no question whose default ends the deploy
    assert [name for name, authenticated in report["guided_auth_check"] if not authenticated] == []


def test_the_defaults_deploy_every_output_but_the_ingest_url() -> None:
    assert set(deployed()["outputs"]) == set(TEMPLATE["Outputs"]) - {"IngestUrl"}


# -- the exports `oxoflow-notify env` prints match the template's outputs ----------------------


def test_every_output_a_command_reads_is_exported_and_every_export_is_an_output() -> None:
    outputs = set(TEMPLATE["Outputs"])
    assert set(stackenv.OUTPUT_ENV) <= outputs, "stackenv.OUTPUT_ENV names an output template.yaml does not have"
    assert not set(stackenv.OUTPUT_ENV) & set(NOT_FOR_COMMANDS)
    unclassified = outputs - set(stackenv.OUTPUT_ENV) - set(NOT_FOR_COMMANDS)
    assert not unclassified, f"new outputs: add them to stackenv.OUTPUT_ENV (a command reads them) or NOT_FOR_COMMANDS: {unclassified}"


def test_an_exported_output_holds_what_the_functions_are_given() -> None:
    # replay and the CLI run with the functions' settings: an output exported under a function's
    # variable name must be the very value the template gives the functions
    functions_env = TEMPLATE["Globals"]["Function"]["Environment"]["Variables"]
    for output, names in stackenv.OUTPUT_ENV.items():
        for name in names:
            if name in functions_env:
                assert functions_env[name] == TEMPLATE["Outputs"][output]["Value"], (output, name)


def test_every_exported_parameter_is_the_function_setting_it_feeds() -> None:
    functions_env = TEMPLATE["Globals"]["Function"]["Environment"]["Variables"]
    for parameter, name in stackenv.PARAMETER_ENV.items():
        assert parameter in TEMPLATE["Parameters"], parameter
        assert functions_env[name] == {"Ref": parameter}, (parameter, name)


def test_the_cli_reads_the_names_env_exports() -> None:
    from oxoflow_notify.tools import cli

    assert stackenv.OUTPUT_ENV["TopicArn"][0] == cli.TOPIC_ENV
    assert stackenv.OUTPUT_ENV["ConfigBucketName"][0] == cli.BUCKET_ENV
    assert "DEAD_LETTER_QUEUE_URL" in stackenv.OUTPUT_ENV["DeadLetterQueueUrl"]  # replay's --queue-url default


def test_without_venv_sam_these_tests_fail_under_ci_and_skip_elsewhere(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(sys.modules[__name__], "SAM_PYTHON", tmp_path / "missing" / "python")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="make sam-check"):
        sam_python()
    monkeypatch.setenv("CI", "")
    with pytest.raises(pytest.skip.Exception, match="make sam-check"):
        sam_python()
