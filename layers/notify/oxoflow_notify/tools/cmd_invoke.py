"""`oxoflow-notify invoke`: a function of the checkout's template run locally, through the local toolkit
(scripts/oxolocal), found from any directory.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from .cli_common import Usage

# -- local tools from the checkout --------------------------------------------------------------


def local_toolkit() -> Path:
    """scripts/ of the project checkout (the working directory's, or this package's own): where
    the local toolkit (``oxolocal``: the moto stack, template.yaml's functions) lives."""
    for root in (Path.cwd(), Path(__file__).resolve().parents[4]):  # .../layers/notify/oxoflow_notify/tools/cmd_invoke.py
        if (root / "scripts" / "oxolocal" / "invoke.py").is_file() and (root / "template.yaml").is_file():
            return root / "scripts"
    raise Usage("invoke: needs the project checkout (template.yaml and scripts/oxolocal); run it from the repository root")


def run_invoke(argv: Sequence[str]) -> int:
    """``invoke``: the local toolkit's own command, imported (its options are its own, --help too)."""
    scripts = str(local_toolkit())
    if scripts not in sys.path:
        sys.path.insert(0, scripts)
    from oxolocal.invoke import main as invoke_main

    try:
        return invoke_main(list(argv))
    except SystemExit as exc:  # argparse's --help (0) and usage errors (2)
        return exc.code if isinstance(exc.code, int) else 1
