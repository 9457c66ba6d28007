"""`oxoflow-notify deliveries`, `deliveries show`, `endpoints`: the delivery log read back.

The log keeps one entry per attempt (``pipeline.delivery_log``); these commands fold a delivery's
entries into one row (its status, attempts, last answer, next attempt) and a webhook's rows into its
health. Nothing printed holds a URL, a secret or a configured header's value: the log never had them.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TextIO

from oxoflow_notify.formats import render
from oxoflow_notify.pipeline.attempts import subject_from_payload

STATUSES = ("delivered", "failed", "pending", "dead")


def delivered(entry: dict[str, Any]) -> bool:
    """A 2xx: posted now, or found in the ledger; a duplicate attempt (a redelivered message whose
    attempt was already handed on) is not one."""
    return entry["outcome"] == "delivered" or (entry["outcome"] == "already_delivered" and entry.get("error") != "duplicate_attempt")


def counts(entry: dict[str, Any]) -> bool:
    """Whether an entry says anything of the delivery's state (a duplicate attempt's does not)."""
    return not (entry["outcome"] == "already_delivered" and entry.get("error") == "duplicate_attempt")


FAILED_OUTCOMES = frozenset({"retrying", "dead_lettered", "failed"})  # an attempt that was made and failed


def iso(at: float | None) -> str | None:
    return None if at is None else datetime.fromtimestamp(at, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass
class Delivery:
    """One delivery folded from its entries (oldest first)."""

    entries: list[dict[str, Any]] = field(default_factory=list)

    @property
    def last(self) -> dict[str, Any]:
        return self.entries[-1]

    @property
    def status(self) -> str:
        """delivered (a 2xx), dead (dead-lettered), pending (waiting in the retry queue), failed
        (the last redelivery by hand failed, nothing waiting)."""
        if any(delivered(e) for e in self.entries):
            return "delivered"
        said = [e for e in self.entries if counts(e)]
        outcome = (said[-1] if said else self.last)["outcome"]
        if outcome == "dead_lettered":
            return "dead"
        if outcome in ("retrying", "held"):
            return "pending"
        return "failed"

    def matches(self, status: str | None) -> bool:
        """``--status failed`` is every delivery not delivered that has a failed attempt."""
        if status is None:
            return True
        if status == "failed":
            return self.status != "delivered" and any(e["outcome"] in FAILED_OUTCOMES for e in self.entries)
        return self.status == status

    def row(self) -> dict[str, Any]:
        first, last = self.entries[0], self.last
        made = [e for e in self.entries if "duration_ms" in e or e.get("status") is not None]
        codes = [e["status"] for e in self.entries if e.get("status") is not None]
        reasons = [e["reason"] for e in self.entries if e.get("reason") and not delivered(e) and counts(e)]
        return {
            "delivery_id": last["delivery_id"], "event_id": last.get("event_id"), "event": last.get("event"),
            "workflow": last["workflow"], "run_id": last.get("run_id"), "webhook_id": last.get("webhook_id"),
            "status": self.status, "attempts": max((int(e["attempt"]) for e in made), default=0),
            "last_status_code": codes[-1] if codes else None,
            "reason": None if self.status == "delivered" else (reasons[-1] if reasons else None),
            "first_attempt_at": iso(first["at"]), "last_attempt_at": iso(last["at"]),
            "next_attempt_at": iso(last.get("next_attempt_at")) if self.status == "pending" else None,
        }  # fmt: skip


def fold(entries: Iterable[dict[str, Any]]) -> list[Delivery]:
    """Entries (any order) -> deliveries, the most recently attempted first."""
    by_id: dict[str, Delivery] = {}
    for entry in sorted(entries, key=lambda e: float(e["at"])):
        by_id.setdefault(entry["delivery_id"], Delivery()).entries.append(entry)
    return sorted(by_id.values(), key=lambda d: -float(d.last["at"]))


def print_table(rows: Sequence[dict[str, Any]], out: TextIO, reason_width: int = 60) -> None:
    """The default view: one line per delivery, newest first."""
    columns = [("LAST ATTEMPT", "last_attempt_at"), ("WORKFLOW", "workflow"), ("EVENT", "event"), ("WEBHOOK", "webhook_id"),
               ("STATUS", "status"), ("TRIES", "attempts"), ("CODE", "last_status_code"), ("DELIVERY", "delivery_id")]  # fmt: skip
    cells = [[("-" if r.get(key) is None else str(r[key])) for _, key in columns] for r in rows]
    widths = [max([len(title), *(len(c[i]) for c in cells)]) for i, (title, _) in enumerate(columns)]
    print("  ".join(t.ljust(w) for (t, _), w in zip(columns, widths, strict=True)) + "  REASON", file=out)
    for r, c in zip(rows, cells, strict=True):
        reason = r.get("reason") or ""
        reason = reason if len(reason) <= reason_width else reason[: reason_width - 1] + "…"
        print("  ".join(v.ljust(w) for v, w in zip(c, widths, strict=True)) + "  " + reason, file=out)


def print_json(rows: Iterable[dict[str, Any]], out: TextIO) -> None:
    for r in rows:
        print(json.dumps(r, separators=(",", ":")), file=out)


def show(entries: Sequence[dict[str, Any]], out: TextIO) -> None:
    """`deliveries show`: each attempt, then the request as sent and the receiver's last answer."""
    delivery = fold(entries)[0]
    row = delivery.row()
    print(f"delivery {row['delivery_id']}: {row['status']}", file=out)
    print(f"  event    {row['event']} {row['event_id']} (workflow {row['workflow']}, run {row['run_id'] or '-'})", file=out)
    print(f"  webhook  {row['webhook_id']} ({delivery.last.get('format')}, {delivery.last.get('config_key')})", file=out)
    print("\nattempts:", file=out)
    for e in delivery.entries:
        took = f"{e['duration_ms']:.0f} ms" if "duration_ms" in e else "-"
        mark = " (redelivery)" if e.get("redelivery") else ""
        print(f"  #{e['attempt']:<3} {iso(e['at'])}  {took:>8}  {e.get('status') or '-':>4}  {e['outcome']}{mark}", file=out)
        if e.get("reason"):
            print(f"        {e['reason']}", file=out)
        if e.get("next_attempt_at") and e is delivery.last and row["status"] == "pending":
            print(f"        next attempt at {iso(e['next_attempt_at'])}", file=out)
    posted = [e for e in delivery.entries if e.get("headers")]
    if posted:
        print("\nrequest (as last sent):", file=out)
        for name, value in posted[-1]["headers"].items():
            print(f"  {name}: {value}", file=out)
    body = rendered_body(delivery)
    print("\nbody:", file=out)
    print(body if body is not None else "  (not kept: the event was larger than the log keeps)", file=out)


def rendered_body(delivery: Delivery) -> str | None:
    """The body as sent: the kept event rendered in the webhook's format (the bytes the POST carried)."""
    kept = [e for e in delivery.entries if e.get("payload")]
    if not kept:
        return None
    event = subject_from_payload(json.loads(kept[0]["payload"]))
    return render(event, str(kept[0]["format"])).decode("utf-8", "replace")


def kept_event(entries: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """The event a redelivery posts again: the one kept on the delivery's first posting."""
    kept = [e for e in entries if e.get("payload")]
    return json.loads(kept[0]["payload"]) if kept else None


# -- endpoints -------------------------------------------------------------------------------------


def health(entries: Iterable[dict[str, Any]], now: float) -> list[dict[str, Any]]:
    """Per (workflow, webhook): deliveries and success over the last hour and day, p50/p95 of the
    POSTs' durations, failing since (the first failure after the last 2xx), and a state."""
    hooks: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for e in entries:
        hooks.setdefault((e["workflow"], str(e.get("webhook_id"))), []).append(e)
    rows = []
    for (workflow, webhook), found in sorted(hooks.items()):
        found.sort(key=lambda e: float(e["at"]))
        row: dict[str, Any] = {"workflow": workflow, "webhook_id": webhook, "config_key": found[-1].get("config_key")}
        for label, span in (("hour", 3600.0), ("day", 86400.0)):
            deliveries = fold(e for e in found if float(e["at"]) >= now - span)
            done = sum(d.status == "delivered" for d in deliveries)
            row[f"deliveries_{label}"] = len(deliveries)
            row[f"success_{label}"] = round(done / len(deliveries), 3) if deliveries else None
        durations = sorted(float(e["duration_ms"]) for e in found if "duration_ms" in e)
        row["p50_ms"] = round(statistics.median(durations), 1) if durations else None
        row["p95_ms"] = round(durations[min(len(durations) - 1, int(0.95 * len(durations)))], 1) if durations else None
        last_ok = max((float(e["at"]) for e in found if delivered(e)), default=None)
        failures = [float(e["at"]) for e in found if e["outcome"] in FAILED_OUTCOMES and (last_ok is None or float(e["at"]) > last_ok)]
        row["failing_since"] = iso(failures[0]) if failures else None
        row["state"] = state_of(found[-1], bool(failures))
        rows.append(row)
    return rows


def state_of(last: dict[str, Any], failing: bool) -> str:
    if last.get("error") == "endpoint_disabled":
        return "disabled"
    if last.get("error") == "circuit_open":
        return "circuit open"
    return "failing" if failing else "healthy"


def print_health(rows: Sequence[dict[str, Any]], out: TextIO) -> None:
    def pct(v: Any) -> str:
        return "-" if v is None else f"{100 * v:.0f}%"

    print(f"{'WORKFLOW':16} {'WEBHOOK':20} {'STATE':13} {'1H':>9} {'1D':>11} {'P50':>8} {'P95':>8}  FAILING SINCE", file=out)
    for r in rows:
        hour = f"{r['deliveries_hour']} {pct(r['success_hour'])}"
        day = f"{r['deliveries_day']} {pct(r['success_day'])}"
        p50 = "-" if r["p50_ms"] is None else f"{r['p50_ms']:.0f} ms"
        p95 = "-" if r["p95_ms"] is None else f"{r['p95_ms']:.0f} ms"
        print(f"{r['workflow']:16} {r['webhook_id']:20} {r['state']:13} {hour:>9} {day:>11} {p50:>8} {p95:>8}  {r['failing_since'] or '-'}",
              file=out)  # fmt: skip
