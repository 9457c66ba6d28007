"""Live messages' state (``pipeline.live``) on the delivery ledger's table.

One item per live message, ``oxoflow-live#<group>`` (key ``id``), and one marker per counted
event, ``oxoflow-live#<group>#<event key>``, written in the same transaction as the count so an
event is counted once however often it arrives. Every other write is one conditional update.
TTL on ``expiration``: a week and a day after the message's last event. The calls are the
ledger's own (LEDGER_ACTIONS: TransactWriteItems is governed by PutItem and UpdateItem).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from oxoflow_notify.errors import InfrastructureError
from oxoflow_notify.pipeline.live_state import STALE_TIMER, Change, LiveState

from .dynamo import OnTable, cancellation_reasons, conditional, number

PREFIX = "oxoflow-live"
KEEP_SECONDS = 8 * 86_400
COUNTED = ("RuleStarted", "RuleCompleted", "RuleFailed", "RuleSkipped")
_NAMES = {"#v": "version", "#tt": "total", "#st": "state", "#tm": "timer", "#ta": "timer_at", "#ls": "lease", "#lu": "lease_until",
          "#sv": "sent_version", "#le": "last_edit", "#msg": "message", "#th": "threaded", "#br": "broken"}  # fmt: skip
_CONFLICT_TRIES = 8


class DynamoLiveStore(OnTable):
    def __init__(self, table: str, client: Callable[[], Any]) -> None:
        super().__init__(table, client)

    def _key(self, group: str) -> dict[str, Any]:
        return {"id": {"S": f"{PREFIX}#{group}"}}

    def _update(self, group: str, expression: str, values: dict[str, Any], condition: str | None = None,
                returns: bool = False) -> dict[str, Any] | None:  # fmt: skip
        """One update (conditional when ``condition``); None when its condition did not hold, else the item after it."""
        used = {k: v for k, v in _NAMES.items() if k in expression or (condition and k in condition)}
        request: dict[str, Any] = {"TableName": self.table, "Key": self._key(group), "UpdateExpression": expression}
        if values:
            request["ExpressionAttributeValues"] = values
        if used:
            request["ExpressionAttributeNames"] = used
        if condition:
            request["ConditionExpression"] = condition
        if returns:
            request["ReturnValues"] = "ALL_NEW"
        answer = conditional(self._ddb().update_item, **request)
        return None if answer is None else answer.get("Attributes") or {}

    def record(self, group: str, key: str, change: Change, now: float) -> bool:
        values: dict[str, Any] = {":one": {"N": "1"}, ":exp": {"N": str(int(now) + KEEP_SECONDS)}}
        sets = ["expiration = :exp"]
        adds = ["#v :one"] + ([f"n_{change.counted} :one"] if change.counted in COUNTED else [])
        for expression, name, value in (
            ("#st = :s", ":s", {"S": change.state} if change.state is not None else None),
            ("#tt = :t", ":t", {"N": str(change.total)} if change.total is not None else None),
            ("started = if_not_exists(started, :st0)", ":st0", {"N": number(change.started)} if change.started is not None else None),
            ("ended = :e", ":e", {"N": number(change.ended)} if change.ended is not None else None),
        ):
            if value is not None:
                sets.append(expression)
                values[name] = value
        text = f"SET {', '.join(sets)} ADD {', '.join(adds)}"
        names = {k: _NAMES[k] for k in ("#v", "#st", "#tt") if k in text}
        update = {"TableName": self.table, "Key": self._key(group), "UpdateExpression": text, "ExpressionAttributeValues": values,
                  "ExpressionAttributeNames": names}  # fmt: skip
        marker = {"TableName": self.table, "Item": {"id": {"S": f"{PREFIX}#{group}#{key}"}, "expiration": values[":exp"]},
                  "ConditionExpression": "attribute_not_exists(id)"}  # fmt: skip
        for _ in range(_CONFLICT_TRIES):
            try:
                self._ddb().transact_write_items(TransactItems=[{"Put": marker}, {"Update": update}])
                return True
            except Exception as exc:
                reasons = cancellation_reasons(exc)
                if reasons is None:
                    raise
                if reasons and reasons[0].get("Code") == "ConditionalCheckFailed":
                    return False  # counted before
                if not any(r.get("Code") == "TransactionConflict" for r in reasons):
                    raise
        raise InfrastructureError("the live message's item stayed in transaction conflict")  # the event runs again

    def newest_failure(self, group: str, failure: dict[str, Any], at: float, key: str) -> None:
        # Events of one run are counted by many instances in any order: the one processed last is
        # not always the one that happened last. Ties (publishers stamp to the second) go to the greater key.
        self._update(group, "SET last_failure = :f, last_failure_at = :at, last_failure_key = :k ADD #v :one",
                     {":f": {"S": json.dumps(failure)}, ":at": {"N": number(at)}, ":k": {"S": key}, ":one": {"N": "1"}},
                     "attribute_exists(#v) AND (attribute_not_exists(last_failure_at) OR last_failure_at < :at "
                     "OR (last_failure_at = :at AND last_failure_key < :k))")  # fmt: skip

    def keep_failure(self, group: str, key: str, payload: dict[str, Any], most: int) -> None:
        self._update(group, "SET failures = list_append(if_not_exists(failures, :none), :one) ADD failure_keys :key, #v :inc",
                     {":none": {"L": []}, ":one": {"L": [{"S": json.dumps(payload)}]}, ":key": {"SS": [key]}, ":k": {"S": key},
                      ":most": {"N": str(most)}, ":inc": {"N": "1"}},
                     "(attribute_not_exists(failure_keys) OR NOT contains(failure_keys, :k)) AND "
                     "(attribute_not_exists(failures) OR size(failures) < :most)")  # fmt: skip

    def overdue(self, group: str) -> bool:
        answer = self._update(group, "SET #st = :o ADD #v :one", {":o": {"S": "overdue"}, ":r": {"S": "running"}, ":one": {"N": "1"}},
                              "attribute_exists(#v) AND (attribute_not_exists(#st) OR #st = :r)")  # fmt: skip
        return answer is not None

    def schedule(self, group: str, token: str, now: float) -> LiveState | None:
        answer = self._update(group, "SET #tm = :t, #ta = :now", {":t": {"S": token}, ":now": {"N": number(now)},
                              ":stale": {"N": number(now - STALE_TIMER)}},
                              "attribute_exists(#v) AND (attribute_not_exists(#tm) OR #tm = :t OR #ta < :stale)", returns=True)  # fmt: skip
        return _state(answer) if answer is not None else None

    def get(self, group: str) -> LiveState | None:
        item = self._ddb().get_item(TableName=self.table, Key=self._key(group), ConsistentRead=True).get("Item")
        return _state(item) if item and "version" in item else None

    def touch(self, group: str, token: str, now: float) -> None:
        self._update(group, "SET #ta = :now", {":now": {"N": number(now)}, ":t": {"S": token}}, "#tm = :t")

    def lease(self, group: str, token: str, lease: str, now: float, until: float) -> LiveState | None:
        values = {":l": {"S": lease}, ":u": {"N": number(until)}, ":t": {"S": token}, ":now": {"N": number(now)}}
        answer = self._update(group, "SET #ls = :l, #lu = :u", values, "#tm = :t AND (attribute_not_exists(#lu) OR #lu < :now)", True)
        return _state(answer) if answer is not None else None

    def edited(self, group: str, lease: str, version: int, message: str, threaded: int, now: float) -> LiveState | None:
        answer = self._update(group, "SET #sv = :v, #le = :now, #msg = :m, #th = :th REMOVE #ls, #lu",
                              {":v": {"N": str(version)}, ":now": {"N": number(now)}, ":m": {"S": message}, ":th": {"N": str(threaded)},
                               ":l": {"S": lease}}, "#ls = :l", returns=True)  # fmt: skip
        return _state(answer) if answer is not None else None

    def release(self, group: str, lease: str) -> None:
        self._update(group, "REMOVE #ls, #lu", {":l": {"S": lease}}, "#ls = :l")

    def lost(self, group: str, lease: str) -> bool:
        answer = self._update(group, "SET reposted = :yes REMOVE #msg, #ls, #lu", {":yes": {"BOOL": True}, ":l": {"S": lease}},
                              "#ls = :l AND attribute_not_exists(reposted)")  # fmt: skip
        if answer is None:
            self.release(group, lease)
        return answer is not None

    def end_timer(self, group: str, token: str, version: int | None) -> bool:
        values: dict[str, Any] = {":t": {"S": token}}
        condition = "#tm = :t"
        if version is not None:
            values[":v"] = {"N": str(version)}
            condition += " AND #v = :v"
        return self._update(group, "REMOVE #tm, #ta", values, condition) is not None

    def broke(self, group: str, token: str, reason: str) -> None:
        self._update(group, "SET #br = :r REMOVE #tm, #ta", {":r": {"S": reason[:1000]}, ":t": {"S": token}}, "#tm = :t")

    def revive(self, group: str, token: str, now: float) -> None:
        # With its time: a revived timer whose message is lost goes stale (STALE_TIMER) like any other.
        self._update(group, "SET #tm = :t, #ta = :now REMOVE #br, #ls, #lu", {":t": {"S": token}, ":now": {"N": number(now)}},
                     "attribute_exists(#v) AND attribute_exists(#br)")  # fmt: skip


def _n(item: dict[str, Any], name: str) -> float | None:
    value = item.get(name, {}).get("N")
    return float(value) if value is not None else None


def _state(item: dict[str, Any]) -> LiveState:
    counts = {name: int(_n(item, f"n_{name}") or 0) for name in COUNTED if f"n_{name}" in item}
    failures = tuple(json.loads(f["S"]) for f in item.get("failures", {}).get("L", []))
    last = item.get("last_failure", {}).get("S")
    total = _n(item, "total")
    return LiveState(
        version=int(_n(item, "version") or 0),
        counts=counts,
        state=item.get("state", {}).get("S", "running"),
        total=int(total) if total is not None else None,
        started=_n(item, "started"),
        ended=_n(item, "ended"),
        last_failure=json.loads(last) if last else None,
        failures=failures,
        message=item.get("message", {}).get("S"),
        sent_version=int(_n(item, "sent_version") or 0),
        last_edit=_n(item, "last_edit") or 0.0,
        threaded=int(_n(item, "threaded") or 0),
        reposted=bool(item.get("reposted", {}).get("BOOL")),
        timer=item.get("timer", {}).get("S"),
        broken=item.get("broken", {}).get("S"),
    )
