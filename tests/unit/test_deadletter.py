"""The dead-letter shape."""

from __future__ import annotations

import json
from typing import Any

from oxoflow_notify.pipeline.deadletter import DEAD_LETTER_SCHEMA, RAW_MESSAGE_MAX, dead_letter


def test_a_dead_letter_summarises_its_attempts() -> None:
    attempts: list[dict[str, Any]] = [{"attempt": 1, "status": 503, "error": None}, {"attempt": 2, "status": None, "error": "read_timeout"}]
    letter = dead_letter("retries_exhausted", "gave up", event={"workflow": "wf"}, attempts=attempts, now=0)
    assert letter["schema"] == DEAD_LETTER_SCHEMA and letter["dead_lettered_at"] == "1970-01-01T00:00:00Z"
    assert (letter["workflow"], letter["attempt_count"], letter["last_status"], letter["last_error"]) == ("wf", 2, None, "read_timeout")
    assert "raw_message" not in letter


def test_a_huge_raw_message_is_cut_on_bytes_without_splitting_a_character() -> None:
    raw = "é" * RAW_MESSAGE_MAX  # two bytes each
    letter = dead_letter("invalid_event", "too big", raw_message=raw)
    kept = letter["raw_message"].encode("utf-8")
    assert letter["raw_message_truncated"] is True
    assert len(kept) <= RAW_MESSAGE_MAX and set(letter["raw_message"]) == {"é"}
    assert len(json.dumps(letter, ensure_ascii=False).encode()) < 256 * 1024
