"""require_tool(): a test that needs node or openssl fails in CI when the tool is missing, and skips elsewhere."""

from __future__ import annotations

import os
import shutil

import pytest

from tests.conftest import require_tool


def test_a_tool_on_path_is_returned_with_its_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    python = shutil.which("python3") or shutil.which("python")
    assert python is not None
    assert require_tool(os.path.basename(python)) == python


@pytest.mark.parametrize("tool", ["node", "openssl"])
def test_a_missing_tool_fails_under_ci_true_and_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch, tool: str) -> None:
    monkeypatch.setenv("PATH", "")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=rf"{tool} is not on PATH, and CI=true needs it: install .*apt-get install"):
        require_tool(tool)


@pytest.mark.parametrize("ci", [None, "", "false"])
def test_a_missing_tool_skips_outside_ci_and_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch, ci: str | None) -> None:
    monkeypatch.setenv("PATH", "")
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    with pytest.raises(pytest.skip.Exception, match=r"node is not on PATH: install Node\.js .*apt-get install nodejs"):
        require_tool("node")


def test_a_tool_without_a_hint_still_says_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=r"install no-such-tool-xyz and put it on PATH"):
        require_tool("no-such-tool-xyz")
