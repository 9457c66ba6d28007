"""`oxoflow-notify deliveries --html FILE`: one self-contained page of the deliveries listed.

Per webhook, a timeline of its attempts coloured by outcome, the failing webhooks first; each
delivery expands (``<details>``, no script) to its attempts. Every value is HTML-escaped: event
names, reasons and ids come from publishers and receivers.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path

from .deliveries import Delivery, iso

COLOURS = {"delivered": "#2e7d32", "already_delivered": "#66bb6a", "held": "#9e9e9e", "retrying": "#f9a825",
           "dead_lettered": "#c62828", "failed": "#c62828"}  # fmt: skip
STYLE = """body{font:14px system-ui,sans-serif;margin:2em;color:#222}h1{font-size:20px}h2{font-size:16px;margin-top:2em}
.timeline{display:flex;gap:2px;flex-wrap:wrap;margin:.5em 0}.tick{width:10px;height:22px;border-radius:2px}
details{margin:.2em 0;padding:.2em .5em;border-left:4px solid #ccc}summary{cursor:pointer}
table{border-collapse:collapse;margin:.4em 0}td,th{padding:2px 8px;text-align:left;border-bottom:1px solid #eee}
.legend span{display:inline-block;margin-right:1em}.legend i{display:inline-block;width:10px;height:10px;margin-right:4px}"""


HEAD = "".join(f"<th>{h}</th>" for h in ("attempt", "at", "took", "status", "outcome", "reason"))


def _e(value: object) -> str:
    return html.escape("" if value is None else str(value))


def page(deliveries: Sequence[Delivery], now: float) -> str:
    """The page's HTML."""
    hooks: dict[tuple[str, str], list[Delivery]] = {}
    for d in deliveries:
        hooks.setdefault((d.last["workflow"], str(d.last.get("webhook_id"))), []).append(d)

    def failing_first(item: tuple[tuple[str, str], list[Delivery]]) -> tuple[int, str, str]:
        failed = sum(d.status != "delivered" for d in item[1])
        return (-failed, *item[0])

    parts = [f"<!doctype html><html lang=en><head><meta charset=utf-8><title>oxoflow-notify deliveries</title><style>{STYLE}</style>"
             f"</head><body><h1>Deliveries</h1><p>{len(deliveries)} deliveries, written {_e(iso(now))}.</p><p class=legend>"]  # fmt: skip
    parts += [f"<span><i style='background:{c}'></i>{_e(k)}</span>" for k, c in COLOURS.items()]
    parts.append("</p>")
    for (workflow, webhook), found in sorted(hooks.items(), key=failing_first):
        failed = sum(d.status != "delivered" for d in found)
        parts.append(f"<h2>{_e(workflow)} / {_e(webhook)} <small>({len(found)} deliveries, {failed} not delivered)</small></h2>")
        attempts = sorted((e for d in found for e in d.entries), key=lambda e: float(e["at"]))
        ticks = "".join(f"<div class=tick title='{_e(iso(e['at']))} {_e(e['outcome'])} {_e(e.get('status') or '')}' "
                        f"style='background:{COLOURS.get(e['outcome'], '#607d8b')}'></div>" for e in attempts)  # fmt: skip
        parts.append(f"<div class=timeline>{ticks}</div>")
        for d in sorted(found, key=lambda d: (d.status == "delivered", -float(d.last["at"]))):
            row = d.row()
            colour = COLOURS.get(d.last["outcome"], "#607d8b")
            parts.append(f"<details style='border-color:{colour}'><summary>{_e(row['last_attempt_at'])} {_e(row['event'])} "
                         f"<b>{_e(row['status'])}</b> after {row['attempts']} attempt(s) {_e(row['delivery_id'])}</summary>"
                         f"<table><tr>{HEAD}</tr>")  # fmt: skip
            for e in d.entries:
                took = f"{e['duration_ms']:.0f} ms" if "duration_ms" in e else ""
                parts.append(f"<tr><td>{_e(e['attempt'])}</td><td>{_e(iso(e['at']))}</td><td>{took}</td><td>{_e(e.get('status'))}</td>"
                             f"<td>{_e(e['outcome'])}</td><td>{_e(e.get('reason'))}</td></tr>")  # fmt: skip
            parts.append("</table></details>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_page(path: str, deliveries: Sequence[Delivery], now: float) -> None:
    Path(path).write_text(page(deliveries, now), encoding="utf-8")
