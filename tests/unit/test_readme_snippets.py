"""The receiver-side verification snippets in README.md, run against the shared vectors."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

from tests.conftest import ROOT, require_tool

README = (ROOT / "README.md").read_text(encoding="utf-8")


def block(lang: str, marker: str) -> str:
    for code in re.findall(rf"```{lang}\n(.*?)```", README, flags=re.S):
        if marker in code:
            return str(code)
    raise AssertionError(f"README has no {lang} block containing {marker!r}")


def openssl_path() -> str:
    """PATH for the openssl snippets: the openssl found (failing under CI=true, else skipping) before the system dirs."""
    return f"{Path(require_tool('openssl')).parent}:/usr/bin:/bin"


def cases(vectors: dict[str, Any]) -> list[dict[str, str]]:
    found: list[dict[str, str]] = vectors["x_hub_signature_256"]["cases"]
    return found


def test_python_snippet_verifies_the_vectors(vectors: dict[str, Any]) -> None:
    namespace: dict[str, Any] = {}
    exec(block("python", "def verify"), namespace)  # noqa: S102 - our own README
    for case in cases(vectors):
        assert namespace["verify"](case["secret"], case["body"].encode(), case["expected"])
        assert not namespace["verify"](case["secret"], case["body"].encode() + b"x", case["expected"])


def test_node_snippet_verifies_the_vectors(vectors: dict[str, Any]) -> None:
    node = require_tool("node")
    script = block("js", "function verify") + (
        "\nconst cases = JSON.parse(process.argv[1]);\n"
        "for (const c of cases) {\n"
        "  if (!verify(c.secret, Buffer.from(c.body, 'utf8'), c.expected)) process.exit(1);\n"
        "  if (verify(c.secret, Buffer.from(c.body + 'x', 'utf8'), c.expected)) process.exit(2);\n"
        "}\n"
    )
    result = subprocess.run([node, "-e", script, json.dumps(cases(vectors))], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


def test_openssl_snippet_reproduces_the_vectors(vectors: dict[str, Any]) -> None:
    path = openssl_path()
    command = block("sh", '-hmac "$SECRET"')
    for case in cases(vectors):
        result = subprocess.run(
            ["bash", "-c", command],
            env={"BODY": case["body"], "SECRET": case["secret"], "PATH": path},
            capture_output=True,
            text=True,
            check=True,
        )
        assert result.stdout.strip() == case["expected"]


def test_security_md_openssl_commands_reproduce_both_schemes(vectors: dict[str, Any]) -> None:
    path = openssl_path()
    doc = (ROOT / "docs" / "security.md").read_text(encoding="utf-8")
    (block,) = [b for b in re.findall(r"```sh\n(.*?)```", doc, flags=re.S) if "hexkey" in b]
    hub_line, standard = block.split("# Standard Webhooks")
    for case in cases(vectors):
        env = {"BODY": case["body"], "SECRET": case["secret"], "PATH": path}
        out = subprocess.run(["bash", "-c", hub_line], env=env, capture_output=True, text=True, check=True).stdout
        assert out.strip() == case["expected"]
    for case in vectors["standard_webhooks"]["cases"]:
        env = {
            "BODY": case["body"],
            "SECRET": case["secret"],
            "WEBHOOK_ID": case["id"],
            "WEBHOOK_TIMESTAMP": case["timestamp"],
            "PATH": path,
        }
        out = subprocess.run(["bash", "-c", standard], env=env, capture_output=True, text=True, check=True).stdout
        assert "v1," + out.strip() == case["expected"]
