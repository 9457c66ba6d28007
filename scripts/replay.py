#!/usr/bin/env python3
"""Replay dead letters: re-deliver each, once, and delete only what succeeded.

    export AWS_REGION=... CONFIG_BUCKET=... DEAD_LETTER_QUEUE_URL=... RETRY_QUEUE_URL=... LEDGER_TABLE=...   # stack outputs
    python scripts/replay.py --dry-run                       # what would happen
    python scripts/replay.py --workflow variant-calling --reason retries_exhausted --older-than 1h

The same as `oxoflow-notify replay` (this file runs it from a checkout without installing).
Each dead letter is delivered with the current config (URL and secret as they are now), the same
X-OxoFlow-Delivery id (receivers dedupe on it) and the next attempt number. One that fails again
stays in the queue, once. Reads the same environment variables as the functions.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "layers" / "notify"))

from oxoflow_notify.tools.cli import main as cli


def main(argv: list[str] | None = None) -> int:
    return cli(["replay", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
