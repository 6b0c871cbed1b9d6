"""Each Discord interaction is answered at most once.

A signed interaction stays valid for the whole timestamp window (``signature_max_age``):
whoever captured one (a proxy's log, a leaked request dump) could POST it again and run
the command a second time under the original user's name. :class:`InteractionMemory`
remembers every interaction id received until no request bearing it could still pass the
timestamp check, in a small table of the kernel's database, so a restart does not forget
them. The id is claimed (insert or fail) before any work; a second claim is refused.

Its own connection, ``synchronous=NORMAL`` on the WAL journal: a claim is committed before
the interaction runs and survives the process being killed, without an fsync on every
interaction (only a power cut in the seconds after a claim could forget it).

The interaction server's request handler and hikari's listener for the interaction run in
one task: the handler opens a :func:`delivery` (the signature's timestamp, and the id the
listener refused as a replay, if it did) that the listener finds with :func:`current`.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

TABLE = "_discord_interactions_seen"
_INSERT = f"INSERT INTO {TABLE}(id, expires_at) VALUES (?, ?)"
_PRUNE = f"DELETE FROM {TABLE} WHERE expires_at < ?"


@dataclass
class Delivery:
    """One interaction request being handled by the interaction server."""

    signed_at: float
    """The signature's timestamp."""
    replayed: str | None = None
    """The interaction id refused as already received."""


_delivery: ContextVar[Delivery | None] = ContextVar("clustercord_delivery", default=None)


@contextmanager
def delivery(signed_at: float) -> Iterator[Delivery]:
    """The request being handled in this task, for the listener to find (:func:`current`)."""
    current = Delivery(signed_at)
    token = _delivery.set(current)
    try:
        yield current
    finally:
        _delivery.reset(token)


def current() -> Delivery | None:
    """The interaction server request this task handles (``None``: the gateway)."""
    return _delivery.get()


class InteractionMemory:
    """Interaction ids seen within the accepted window (``window`` seconds), pruned by age."""

    def __init__(
        self,
        database: Any,
        window: float,
        *,
        clock: Callable[[], float] = time.time,
        prune_every: float | None = None,
    ) -> None:
        self.window = float(window)
        self.clock = clock
        self.prune_every = self.window / 10 if prune_every is None else prune_every
        self._next_prune = 0.0
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection = database.connect()
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute(
            f"CREATE TABLE IF NOT EXISTS {TABLE} "
            "(id TEXT PRIMARY KEY, expires_at REAL NOT NULL) WITHOUT ROWID"
        )
        # No index on expires_at: it would double the cost of every claim, and pruning
        # (a scan of the ids of one window, every tenth of a window) does without.

    def claim(self, interaction_id: Any, timestamp: float | None = None) -> bool:
        """Record ``interaction_id``; ``False`` when it was already seen (a replay or a
        duplicate delivery). ``timestamp``: when it was signed (or created); the id is kept
        until a request signed then would be refused as stale anyway."""
        now = self.clock()
        signed = now if timestamp is None else timestamp
        expires = max(now, signed) + self.window
        with self._lock:
            if now >= self._next_prune:
                self._conn.execute(_PRUNE, (now,))
                self._next_prune = now + self.prune_every
            try:
                self._conn.execute(_INSERT, (str(interaction_id), expires))
            except sqlite3.IntegrityError:
                return False
        return True

    def __len__(self) -> int:
        with self._lock:
            row = self._conn.execute(f"SELECT count(*) FROM {TABLE}").fetchone()
        return int(row[0])

    def close(self) -> None:
        with self._lock:
            self._conn.close()
