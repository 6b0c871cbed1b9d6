"""Experiments as durable records, written before any fault is injected.

A record holds what was asked (kind, target, parameters, who), its state and expiry, and
every change made with what undoes it. The record of a change is written *before* the change
is made (state ``injecting``), so a bot killed at any instant leaves enough to undo: at start
and periodically, :mod:`clustercord_builtins.chaos.reconcile` rolls back every experiment that
expired or whose injection never finished.

States: ``awaiting-approval`` → ``injecting`` → ``active`` → ``ended`` (rolled back or run its
course); ``refused`` (approval denied or expired), ``failed`` (injection failed, rolled back),
``rollback-failed`` (kept and retried by the reconciler until the change is undone).
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from clustercord_sdk.services import Store

EXPERIMENTS = "experiments"
TIMELINE = "timeline"
PROTECTED = "protected"
RUNS = "runs"
SCHEDULES = "schedules"
SETTINGS = "settings"
MAX_PODS = "max_pods"
EVERY_NAMESPACE = "*"
"""The ``max_pods`` row of the limit for every namespace (no namespace is named ``*``)."""

LIVE = ("injecting", "active", "rollback-failed")
"""States whose changes may still be in the cluster: the reconciler's work."""
OPEN = (*LIVE, "awaiting-approval")
"""States that hold their target: a second experiment on it is refused."""


def create_tables(store: Store) -> None:
    store.table(EXPERIMENTS).create(
        {
            "id": str,
            "kind": str,
            "cluster": str,
            "namespace": str,
            "target": str,
            "parameters": str,
            "user": str,
            "state": str,
            "started": float,
            "expires": float,
            "ended": float,
            "changes": str,
            "result": str,
            "error": str,
            "approval": str,
        },
        pk="id",
        if_not_exists=True,
    )
    store.table(EXPERIMENTS).create_index(["state"], if_not_exists=True)
    store.table(EXPERIMENTS).create_index(["started"], if_not_exists=True)
    store.table(TIMELINE).create(
        {"id": int, "experiment": str, "at": float, "text": str}, pk="id", if_not_exists=True
    )
    store.table(TIMELINE).create_index(["experiment", "at"], if_not_exists=True)
    store.table(PROTECTED).create(
        {"namespace": str, "by": str, "at": float}, pk="namespace", if_not_exists=True
    )


def create_runs(store: Store) -> None:
    store.table(RUNS).create(
        {"id": str, "name": str, "user": str, "started": float, "ended": float,
         "verdict": str, "report": str},
        pk="id",
        if_not_exists=True,
    )  # fmt: skip


def create_schedules(store: Store) -> None:
    store.table(SCHEDULES).create(
        {"id": str, "name": str, "user": str, "cron": str, "file": str, "created": float},
        pk="id",
        if_not_exists=True,
    )


def create_settings(store: Store) -> None:
    store.table(SETTINGS).create(
        {"key": str, "value": str, "by": str, "at": float}, pk="key", if_not_exists=True
    )


def create_max_pods(store: Store) -> None:
    store.table(MAX_PODS).create(
        {"namespace": str, "max_pods": int, "by": str, "at": float},
        pk="namespace",
        if_not_exists=True,
    )


MIGRATIONS = [
    (1, create_tables),
    (2, create_runs),
    (3, create_schedules),
    (4, create_settings),
    (5, create_max_pods),
]


@dataclass
class Experiment:
    id: str
    kind: str
    cluster: str
    namespace: str
    target: str
    """The pod or node hit."""
    parameters: dict[str, Any]
    user: str
    state: str
    started: float
    expires: float | None = None
    ended: float | None = None
    changes: list[dict[str, Any]] = field(default_factory=list)
    """Each change made (or about to be), with what undoes it (see ``faults.undo``)."""
    result: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    approval: str | None = None

    def summary(self) -> dict[str, Any]:
        """``data.experiment`` of a reply: what scripts read with ``--json``."""
        return {
            "id": self.id,
            "status": self.state,
            "kind": self.kind,
            "targets": [f"{self.namespace}/{self.target}" if self.namespace else self.target],
            "faults": [c["kind"] for c in self.changes],
            "dry_run": False,
            "expires": self.expires,
            "result": self.result,
        }


def new_id() -> str:
    # Short enough to type in `/chaos stop experiment:`, random enough not to be
    # guessed or collide.
    return "ex-" + secrets.token_hex(4)


class Experiments:
    """The plugin's experiments table; every write is committed before it returns."""

    def __init__(self, store: Store, clock: Any = time.time) -> None:
        self.store = store
        self.clock = clock

    def add(self, experiment: Experiment) -> Experiment:
        self.store.table(EXPERIMENTS).insert(_row(experiment))
        return experiment

    def save(self, experiment: Experiment) -> Experiment:
        self.store.table(EXPERIMENTS).upsert(_row(experiment), pk="id")
        return experiment

    def get(self, experiment_id: str) -> Experiment | None:
        rows = self.store.query("select * from experiments where id = ?", [experiment_id])
        return _experiment(rows[0]) if rows else None

    def in_states(self, states: tuple[str, ...]) -> list[Experiment]:
        marks = ", ".join("?" for _ in states)
        rows = self.store.query(
            f"select * from experiments where state in ({marks}) order by started", list(states)
        )
        return [_experiment(r) for r in rows]

    def holding(self, cluster: str, namespace: str, target: str) -> Experiment | None:
        """The open experiment on this target, if any: one experiment per target at a time."""
        marks = ", ".join("?" for _ in OPEN)
        rows = self.store.query(
            "select * from experiments where cluster = ? and namespace = ? and target = ? "
            f"and state in ({marks})",
            [cluster, namespace, target, *OPEN],
        )
        return _experiment(rows[0]) if rows else None

    def recent(self, limit: int = 25, namespace: str | None = None) -> list[Experiment]:
        if namespace:
            rows = self.store.query(
                "select * from experiments where namespace = ? order by started desc limit ?",
                [namespace, limit],
            )
        else:
            rows = self.store.query(
                "select * from experiments order by started desc limit ?", [limit]
            )
        return [_experiment(r) for r in rows]

    def note(self, experiment_id: str, text: str) -> None:
        """One line of the experiment's timeline."""
        self.store.table(TIMELINE).insert(
            {"experiment": experiment_id, "at": self.clock(), "text": text}
        )

    def timeline(self, experiment_id: str) -> list[tuple[float, str]]:
        rows = self.store.query(
            "select at, text from timeline where experiment = ? order by at, id", [experiment_id]
        )
        return [(r["at"], r["text"]) for r in rows]

    # -- runs of experiment files -------------------------------------------------------
    def save_run(self, run: dict[str, Any]) -> None:
        row = {k: run.get(k) for k in ("id", "name", "user", "started", "ended", "verdict")}
        row["report"] = json.dumps(run, sort_keys=True)
        self.store.table(RUNS).upsert(row, pk="id")

    def run(self, run_id: str) -> dict[str, Any] | None:
        rows = self.store.query("select report from runs where id = ?", [run_id])
        return json.loads(rows[0]["report"]) if rows else None

    # -- scheduled experiment files (GameDays) -------------------------------------------
    def add_schedule(self, schedule: dict[str, Any]) -> None:
        self.store.table(SCHEDULES).insert(schedule)

    def schedule(self, schedule_id: str) -> dict[str, Any] | None:
        rows = self.store.query("select * from schedules where id = ?", [schedule_id])
        return rows[0] if rows else None

    def schedules(self) -> list[dict[str, Any]]:
        return self.store.query("select * from schedules order by created")

    def remove_schedule(self, schedule_id: str) -> None:
        self.store.table(SCHEDULES).delete(schedule_id)

    # -- protected namespaces (besides the configured ones) ------------------------------
    def protect(self, namespace: str, by: str) -> None:
        self.store.table(PROTECTED).upsert(
            {"namespace": namespace, "by": by, "at": self.clock()}, pk="namespace"
        )

    def unprotect(self, namespace: str) -> bool:
        table = self.store.table(PROTECTED)
        found = bool(self.store.query("select 1 from protected where namespace = ?", [namespace]))
        if found:
            table.delete(namespace)
        return found

    def setting(self, key: str) -> str | None:
        """A setting made from chat (``/chaos config prometheus``), or ``None``."""
        rows = self.store.query("select value from settings where key = ?", [key])
        return str(rows[0]["value"]) if rows else None

    def set_setting(self, key: str, value: str, by: str) -> None:
        self.store.table(SETTINGS).upsert(
            {"key": key, "value": value, "by": by, "at": self.clock()}, pk="key"
        )

    # -- blast radius set from chat (/chaos config blast-radius) --------------------------
    def set_max_pods(self, namespace: str, limit: int, by: str) -> int | None:
        """Set the limit of ``namespace`` (``EVERY_NAMESPACE``: the default); returns the
        limit it replaces, if one was set from chat."""
        before = self.max_pods().get(namespace)
        self.store.table(MAX_PODS).upsert(
            {"namespace": namespace, "max_pods": limit, "by": by, "at": self.clock()},
            pk="namespace",
        )
        return before

    def clear_max_pods(self, namespace: str) -> int | None:
        """Drop the limit set from chat for ``namespace``; returns it (``None``: none was)."""
        before = self.max_pods().get(namespace)
        if before is not None:
            self.store.table(MAX_PODS).delete(namespace)
        return before

    def max_pods(self) -> dict[str, int]:
        """The limits set from chat, by namespace (``EVERY_NAMESPACE`` for the default)."""
        rows = self.store.query("select namespace, max_pods from max_pods order by namespace")
        return {r["namespace"]: int(r["max_pods"]) for r in rows}

    def protected(self) -> list[str]:
        return [r["namespace"] for r in self.store.query("select namespace from protected")]


_JSON = ("parameters", "changes", "result")


def _row(experiment: Experiment) -> dict[str, Any]:
    row = asdict(experiment)
    for key in _JSON:
        row[key] = json.dumps(row[key], sort_keys=True)
    return row


def _experiment(row: dict[str, Any]) -> Experiment:
    values = dict(row)
    for key in _JSON:
        values[key] = (
            json.loads(values[key]) if values.get(key) else ({} if key != "changes" else [])
        )
    return Experiment(**values)
