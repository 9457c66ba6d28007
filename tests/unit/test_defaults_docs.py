"""The docs' defaults and limits are the code's: every number a reader takes from README.md or docs/*.md about
a setting, a webhook key or a limit is checked against oxoflow_notify.defaults, the one table the code reads.

A doc value that disagrees fails, naming the doc, the line, what it says and the right value; a claim this test
looks for that is no longer in the docs fails too (reword the claim here along with the doc).
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from oxoflow_notify.defaults import DEFAULTS, Row, Value, row, rows
from oxoflow_notify.errors import QUOTE_MAX
from oxolocal import template as tpl
from tests.conftest import ROOT

DOCS = (ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")))
UNITS = {"kib": 1024, "mib": 1_048_576, "kb": 1000, "mb": 1_000_000, "min": 60, "minute": 60, "minutes": 60, "h": 3600, "hour": 3600}
WORDS = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "ten": 10}
NUMBER = re.compile(r"(\d[\d,]*(?:\.\d+)?|\b(?:an?|one|two|three|four|five|ten)\b)\s*(KiB|MiB|KB|MB|minutes?|min\b|hours?\b|h\b)?", re.I)
# Figures derived from the table that the docs state too ...
DERIVED: dict[str, Value] = {
    "attempts": len(DEFAULTS.retry_schedule) + 1,
    "schedule_hours": sum(DEFAULTS.retry_schedule) / 3600,
    "secret_hold_low": DEFAULTS.secret_hold / 2,
    "secret_hold_high": DEFAULTS.secret_hold * 3 / 2,
    "interval": 1 + DEFAULTS.interval_margin,
    "interval_percent": DEFAULTS.interval_margin * 100,
}
ABOUT = {"schedule_hours": 0.005}  # ... and those the docs round ("about 27.5 hours" for 27 h 35 min)


@dataclass(frozen=True)
class Claim:
    """A sentence of a doc, as a pattern whose groups are values of the named entries (or DERIVED figures)."""

    doc: str
    pattern: str
    names: tuple[str, ...]


CLAIMS = [
    # README.md
    Claim(
        "README.md",
        r"\| `timeout` \| (\S+) \| Read timeout in seconds for this webhook \((\S+) to (\S+)\)",
        ("read_timeout", "timeout_min", "timeout_max"),
    ),
    Claim("README.md", r"\| `max_attempts` \| (\d+) \| Attempts before dead-lettering \(1 to (\d+)\)", ("attempts", "max_attempts_max")),
    Claim("README.md", r"\| `events` \| all events \| .*? at most (\d+) entries", ("max_events",)),
    Claim("README.md", r"\| `digest` \| none \| A duration \(.*?; (\d+ s) to (\d+ min)\)", ("digest_min", "digest_max")),
    Claim(
        "README.md",
        r"Defaults: `slack` (\S+), `text` (\S+) \(.*?\), `discord` (\S+) \(.*?\), `teams` (\S+),",
        ("rate_limit_slack", "rate_limit_text", "rate_limit_discord", "rate_limit_teams"),
    ),
    Claim("README.md", r"\| `headers` \| none \| .*? at most ([\d,]+) characters", ("max_header_value",)),
    Claim("README.md", r"A literal \((\d+) characters or more\)", ("min_publish_key",)),
    Claim("README.md", r"at most (1 MiB) \(([\d,]+) bytes;", ("max_config_bytes", "max_config_bytes")),
    Claim("README.md", r"tables and arrays nested at most (\d+)\s+levels deep, anywhere in the file", ("max_nesting",)),
    Claim("README.md", r"at most (\d+) webhooks \(`\[\[webhooks\]\]` entries", ("max_webhooks",)),
    Claim("README.md", r"integers of at most\s+([\d,]+) digits", ("max_int_digits",)),
    Claim(
        "README.md",
        r"`events` at most (\d+) entries, of which at most\s+(\w+) unknown names are quoted \(cut at (\d+) characters\)",
        ("max_events", "max_reported", "quote_max"),
    ),
    Claim("README.md", r"\*\*Events\*\*: JSON nested at most (\d+) levels deep", ("max_event_nesting",)),
    Claim("README.md", r"at most (256 KiB) in all", ("max_message_bytes",)),
    Claim("README.md", r"One line for humans \(at most ([\d,]+) characters\)", ("max_message",)),
    Claim("README.md", r"\(connect (\S+) s, read (\S+) s, and a total deadline", ("connect_timeout", "read_timeout")),
    Claim("README.md", r"`(\d[\d,]+)`: (\d+) attempts over about (\S+) hours", ("retry_schedule", "attempts", "schedule_hours")),
    Claim("README.md", r"`Retry-After` \(capped at (an hour)\)", ("retry_after_max",)),
    # docs/operations.md
    Claim("docs/operations.md", r"\((\d+) retryable failures in a row, `CIRCUIT_THRESHOLD`", ("circuit_threshold",)),
    Claim(
        "docs/operations.md",
        r"at least (\d+) % of its recent answers failed: the last (\d+), four times the threshold, with at\s+least (\d+) of them seen",
        ("circuit_min_failure_percent", "circuit_window", "circuit_half_window"),
    ),
    Claim("docs/operations.md", r"for (\d+) s\s+\(`CIRCUIT_COOLDOWN_SECONDS`\)", ("circuit_cooldown",)),
    Claim(
        "docs/operations.md",
        r"now \(throttled, timed out\) is held the same way: back in about (\d+) s \((\d+)–(\d+) s\)",
        ("secret_hold", "secret_hold_low", "secret_hold_high"),
    ),
    Claim("docs/operations.md", r"default schedule's (\S+) hours of waiting", ("schedule_hours",)),
    # docs/scaling.md
    Claim("docs/scaling.md", r"connect (\S+) s, read (\S+) s per POST", ("connect_timeout", "read_timeout")),
    Claim("docs/scaling.md", r"([\d,]+) bytes per message \(`MaximumMessageSize`", ("sqs_message_limit",)),
    Claim("docs/scaling.md", r"\| parsed config files \| ([\d,]+) files \| `MAX_CACHED_CONFIGS`", ("max_cached_configs",)),
    Claim("docs/scaling.md", r"\| circuit-breaker circuits \| ([\d,]+) circuits", ("max_circuits",)),
    Claim(
        "docs/scaling.md",
        r"total deadline of (\S+) s connect \+ its `timeout` \(at most (\d+) s\).*?less a (\d+) s reserve",
        ("connect_timeout", "timeout_max", "invocation_reserve"),
    ),
    Claim("docs/scaling.md", r"moves on by (\S+)/rate \(a GCRA without burst, with a (\d+) % margin\)", ("interval", "interval_percent")),
    Claim("docs/scaling.md", r"\(at most (\d+) s, the most two clocks", ("max_skew",)),
    Claim("docs/scaling.md", r"A slot within (\d+) s is waited for", ("pace_wait",)),
    Claim("docs/scaling.md", r"brings it back\s+(\d+) s before its slot", ("pace_early",)),
    Claim("docs/scaling.md", r"POST that cannot start within (\d+) s", ("pace_wait",)),
    Claim(
        "docs/scaling.md",
        r"keeps the first (\d+) failed and (\d+) other events in full \(events over\s+([\d,]+) bytes",
        ("keep_failed", "keep_other", "keep_event_bytes"),
    ),
    Claim("docs/scaling.md", r"its kept events never pass\s+(\d+ KB)", ("window_bytes",)),
    Claim("docs/scaling.md", r"closed\s+by the first event (a minute) past its time", ("stale_after",)),
    Claim("docs/scaling.md", r"for a workflow without `run_id`, its latest (\d+)", ("recent_windows",)),
    # docs/formats.md
    Claim(
        "docs/formats.md",
        r"keeps\s+at most (\d+) `RuleFailed` and (\d+) other events in full \(an event over ([\d,]+ \w+)",
        ("keep_failed", "keep_other", "keep_event_bytes"),
    ),
    Claim("docs/formats.md", r'`digest = "2m"` \((\d+ s) to (\d+ min)\)', ("digest_min", "digest_max")),
    # docs/security.md and docs/performance.md
    Claim("docs/security.md", r"\| `REQUIRE_HTTPS` \| `RequireHttps` \| `(\w+)` \|", ("require_https",)),
    Claim("docs/security.md", r"connect\s+timeout \((\S+) s\) plus the webhook's `timeout`", ("connect_timeout",)),
    Claim("docs/security.md", r"less a (\d+) s reserve", ("invocation_reserve",)),
    Claim("docs/security.md", r'"message is N bytes; the limit is ([\d,]+)"', ("max_message_bytes",)),
    Claim("docs/performance.md", r"waits in its thread up to (\d+) s", ("pace_wait",)),
    Claim("docs/performance.md", r"within the (\S+) s connect timeout", ("connect_timeout",)),
]
DERIVED["circuit_window"] = 4 * DEFAULTS.circuit_threshold
DERIVED["circuit_half_window"] = 2 * DEFAULTS.circuit_threshold
DERIVED["circuit_min_failure_percent"] = round(DEFAULTS.circuit_min_failure_rate * 100)
DERIVED["quote_max"] = QUOTE_MAX


def expected(name: str) -> Value:
    return DERIVED[name] if name in DERIVED else row(name).value


def said(text: str) -> float | str | None:
    """A doc's value as a number (units applied: 32 KiB is 32768), or the text itself when it holds none."""
    text = text.strip().strip("`")
    found = NUMBER.search(text)
    if found is None:
        return text.lower()
    number, unit = found.groups()
    value = float(WORDS[number.lower()]) if number.lower() in WORDS else float(number.replace(",", ""))
    return value * UNITS.get((unit or "").lower(), 1)


def agrees(text: str, value: Value, slack: float = 0.0) -> bool:
    """Whether a doc's ``text`` states ``value`` (within ``slack``, a fraction, for "about" figures)."""
    if isinstance(value, tuple):
        return text.replace(" ", "").strip("`") == ",".join(map(str, value))
    if isinstance(value, bool):
        return text.strip("`").lower() == str(value).lower()
    if isinstance(value, str):
        return text.strip("`") == value
    number = said(text)
    return isinstance(number, float) and abs(number - value) <= max(1e-9, abs(value) * slack)


def line_of(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def disagreements(path: Path, text: str, pattern: str, names: tuple[str, ...]) -> Iterator[str]:
    for match in re.finditer(pattern, text, flags=re.S):
        for group, name in enumerate(names, start=1):
            if not agrees(match.group(group), expected(name), ABOUT.get(name, 0.0)):
                where = f"{path.relative_to(ROOT)}:{line_of(text, match.start(group))}"
                yield f"{where} says {match.group(group)!r}; the code's value is {expected(name)!r} ({name} in oxoflow_notify.defaults)"


@pytest.mark.parametrize("claim", CLAIMS, ids=lambda c: f"{c.doc}:{'+'.join(c.names)}")
def test_each_doc_claim_states_the_codes_value(claim: Claim) -> None:
    # given a doc's sentence about a default or limit
    path = ROOT / claim.doc
    text = path.read_text(encoding="utf-8")
    # when the doc is read: then the sentence is there (or this check is out of date)
    assert re.search(claim.pattern, text, flags=re.S), f"{claim.doc}: no longer says /{claim.pattern}/: update the claim here with the doc"
    # and then every value it states is the table's
    assert list(disagreements(path, text, claim.pattern, claim.names)) == []


def settings() -> list[Row]:
    return [r for r in rows() if re.fullmatch(r"[A-Z][A-Z_]+", r.governs)]


def test_every_mention_of_a_setting_with_its_default_states_the_codes_value() -> None:
    # given every doc, when a setting is named with its default in brackets, "`CONFIG_CACHE_SECONDS` (60)"
    wrong = [
        problem
        for path in DOCS
        for entry in settings()
        for problem in disagreements(path, path.read_text(encoding="utf-8"), rf"`{entry.governs}`\s*\(([^),]*)", (entry.name,))
    ]
    # then it is the table's value
    assert wrong == []


def test_every_setting_is_documented() -> None:
    # given the settings the functions read (by their variable, or the template parameter that sets it)
    text = "\n".join(path.read_text(encoding="utf-8") for path in DOCS)
    parameters = template_defaults()
    names = {entry.governs: {entry.governs, parameters.get(entry.governs, ("", ""))[0]} - {""} for entry in settings()}
    # then each is named in the docs, so an operator can find it
    assert [setting for setting, spelled in names.items() if not any(f"`{name}`" in text for name in spelled)] == []


def template_defaults() -> dict[str, tuple[str, str]]:
    """Setting -> (template parameter or "", the value the template gives it) for the functions' environment."""
    variables = tpl.load()["Globals"]["Function"]["Environment"]["Variables"]
    parameters = tpl.load()["Parameters"]
    found: dict[str, tuple[str, str]] = {}
    for name, value in variables.items():
        if isinstance(value, dict) and "Ref" in value and value["Ref"] in parameters:
            found[name] = (value["Ref"], str(parameters[value["Ref"]]["Default"]))
        elif isinstance(value, str):
            found[name] = ("", value)
    return found


def test_the_template_deploys_the_codes_defaults() -> None:
    # given the template's environment for the functions (a parameter's default, or a literal)
    given = template_defaults()
    # then each setting the table holds gets the table's value when the operator accepts every default
    wrong = [
        f"template.yaml {param or entry.governs} = {value!r}; the code's value is {entry.value!r} ({entry.name} in oxoflow_notify.defaults)"
        for entry in settings()
        if entry.governs in given
        for param, value in [given[entry.governs]]
        if not agrees(value, entry.value)
    ]
    assert wrong == []
    assert {"RETRY_SCHEDULE", "CONFIG_CACHE_SECONDS", "CONFIG_PREFIX", "LEDGER_TTL_SECONDS"} <= set(given)


def test_every_parameter_table_row_states_the_codes_default() -> None:
    # given the docs' tables of template parameters, "| `ConfigCacheSeconds` | `60` | ..."
    by_parameter = {param: name for name, (param, _) in template_defaults().items() if param}
    table = {r.governs: r for r in settings()}
    checked = 0
    wrong: list[str] = []
    for path in DOCS:
        text = path.read_text(encoding="utf-8")
        for param, setting in by_parameter.items():
            if setting in table:
                pattern = rf"^\| `{param}` \| (`[^`|]*`|[\d.,]+) \|"  # a value, not prose
                checked += len(re.findall(pattern, text, flags=re.M))
                wrong += disagreements(path, text, pattern, (table[setting].name,))
    # then each default column is the table's value
    assert wrong == []
    assert checked >= 4


@pytest.mark.parametrize(
    ("module", "constant", "name"),
    [
        ("oxoflow_notify.pipeline.rate_gate", "PACE_WAIT", "pace_wait"),
        ("oxoflow_notify.pipeline.attempts", "PACE_EARLY", "pace_early"),
        ("oxoflow_notify.pipeline.rate_gate", "PACE_EARLY_MAX", "pace_early_max"),
        ("oxoflow_notify.pipeline.rate_gate", "REPLAY_WAIT", "replay_wait"),
        ("oxoflow_notify.pipeline.windowing", "RECENT_WINDOWS", "recent_windows"),
        ("oxoflow_notify.pipeline.answers", "SECRET_HOLD_SECONDS", "secret_hold"),
        ("oxoflow_notify.pipeline.pacing", "INTERVAL_MARGIN", "interval_margin"),
        ("oxoflow_notify.pipeline.pacing", "MAX_SKEW", "max_skew"),
        ("oxoflow_notify.pipeline.digest", "KEEP_FAILED", "keep_failed"),
        ("oxoflow_notify.pipeline.digest", "KEEP_OTHER", "keep_other"),
        ("oxoflow_notify.pipeline.digest", "KEEP_EVENT_BYTES", "keep_event_bytes"),
        ("oxoflow_notify.pipeline.digest", "WINDOW_BYTES", "window_bytes"),
        ("oxoflow_notify.pipeline.digest", "STALE_AFTER", "stale_after"),
        ("oxoflow_notify.pipeline.ports", "SQS_MAX_DELAY", "sqs_max_delay"),
        ("oxoflow_notify.aws.letters", "SQS_MESSAGE_LIMIT", "sqs_message_limit"),
        ("oxoflow_notify.inbound.events", "MAX_MESSAGE_BYTES", "max_message_bytes"),
        ("oxoflow_notify.inbound.events", "MAX_MESSAGE", "max_message"),
        ("oxoflow_notify.inbound.events", "MAX_EVENT_NESTING", "max_event_nesting"),
        ("oxoflow_notify.inbound.events", "MAX_INT_DIGITS", "max_int_digits"),
        ("oxoflow_notify.config.publish", "MIN_KEY_LENGTH", "min_publish_key"),
    ],
)
def test_constants_not_yet_reading_the_table_hold_its_value(module: str, constant: str, name: str) -> None:
    """Modules being split or moved as this lands still spell these out: until they read the table, they agree with it."""
    # given the module's own constant, then it is the table's value
    assert getattr(importlib.import_module(module), constant) == row(name).value, f"{module}.{constant} should read DEFAULTS.{name}"


def test_a_wrong_doc_value_is_reported_with_its_line_and_the_right_value() -> None:
    # given a doc that says an event over 32 KiB is trimmed, on its second line
    doc = ROOT / "docs" / "example-of-a-wrong-claim.md"
    text = "# title\nat most 10 `RuleFailed` and 10 other events in full (an event over 32 KiB is kept trimmed"
    claim = next(c for c in CLAIMS if c.doc == "docs/formats.md" and "keep_event_bytes" in c.names)
    # when it is checked
    problems = list(disagreements(doc, text, claim.pattern.replace(r"keeps\s+", ""), claim.names))
    # then the problem names the doc, the line, what it says and the code's value
    assert problems == [
        "docs/example-of-a-wrong-claim.md:2 says '32 KiB'; the code's value is 8000 (keep_event_bytes in oxoflow_notify.defaults)"
    ]
