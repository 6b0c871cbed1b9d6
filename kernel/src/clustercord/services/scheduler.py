"""Persisted interval and cron jobs of plugins, in the kernel table ``_jobs``.

Schedules are ``every <duration>`` (``every 5m``, ``every 1h30m``) or a five-field
cron expression (``0 3 * * *``), evaluated in the service's time zone (UTC unless
given). A job's next run is computed from the moment its previous run finished, so
a job slower than its interval never runs back to back.

Missed-run policy, applied by :meth:`SchedulerService.recover` when the kernel
starts (and at the start of :meth:`SchedulerService.run_loop`): a job whose
``next_run`` lies in the past by more than one period missed at least one whole run
while the kernel was down.

* ``missed="run-once"`` (the default): it runs once, as soon as the loop starts, no
  matter how many periods were missed (runs are coalesced), then continues on its
  schedule.
* ``missed="skip"``: it does not run; its ``next_run`` moves to the next slot in the
  future.

A job late by less than one period simply runs: that is ordinary lateness, not a
missed run.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, tzinfo
from typing import Any

from croniter import croniter

from clustercord.storage import Database
from clustercord_sdk.options import parse_duration
from clustercord_sdk.services import Job

log = logging.getLogger(__name__)

MISSED_POLICIES = ("run-once", "skip")
_COLUMNS = "id, plugin, handler, schedule, next_run, last_run, payload, missed"

Runner = Callable[[Job], Awaitable[Any]]


class SchedulerService:
    """All plugins' jobs; plugins get a scoped view through :meth:`for_plugin`."""

    def __init__(
        self,
        database: Database,
        clock: Callable[[], float] = time.time,
        timezone: tzinfo = UTC,
    ) -> None:
        self._database = database
        self._clock = clock
        self._timezone = timezone
        database.db.table("_jobs").create(
            {
                "id": str,
                "plugin": str,
                "handler": str,
                "schedule": str,
                "next_run": float,
                "last_run": float,
                "payload": str,
                "missed": str,
            },
            pk="id",
            not_null={"plugin", "handler", "schedule", "next_run", "payload", "missed"},
            if_not_exists=True,
        )
        database.db.table("_jobs").create_index(["next_run"], if_not_exists=True)

    def for_plugin(self, plugin: str) -> PluginScheduler:
        return PluginScheduler(self, plugin)

    # -- schedules -------------------------------------------------------------------
    def validate(self, schedule: str) -> str:
        """The normalised schedule, or a ValueError that says what is wrong with it."""
        text = " ".join(str(schedule).split())
        if text.lower().startswith("every "):
            seconds = parse_duration(text[6:])
            if seconds <= 0:
                raise ValueError(f"schedule {schedule!r}: the interval must be positive")
            return "every " + text[6:].strip().lower()
        fields = text.split(" ")
        if len(fields) != 5 or not croniter.is_valid(text):
            raise ValueError(
                f"schedule {schedule!r} is not a five-field cron expression "
                "(minute hour day-of-month month day-of-week, e.g. '0 3 * * *') "
                "nor an interval such as 'every 5m'"
            )
        return text

    def next_after(self, schedule: str, after: float) -> float:
        """The first run time of ``schedule`` strictly after ``after``."""
        if schedule.startswith("every "):
            return after + float(parse_duration(schedule[6:]))
        start = datetime.fromtimestamp(after, self._timezone)
        return float(croniter(schedule, start).get_next(float))

    # -- jobs ------------------------------------------------------------------------
    def schedule(
        self,
        plugin: str,
        schedule: str,
        handler: str,
        *,
        job_id: str | None = None,
        payload: Mapping[str, Any] | None = None,
        missed: str = "run-once",
    ) -> Job:
        """Create or update a job; an existing job with the same id keeps its next run.

        Plugins schedule their jobs in ``on_enable`` on every start, so the default id
        is derived from plugin, handler and schedule: scheduling again is a no-op
        rather than a duplicate job or a reset timer.
        """
        schedule = self.validate(schedule)
        if missed not in MISSED_POLICIES:
            raise ValueError(f"missed={missed!r}: use one of {', '.join(MISSED_POLICIES)}")
        if not handler:
            raise ValueError("a job needs a handler")
        job_id = job_id or default_job_id(plugin, handler, schedule)
        payload_json = json.dumps(dict(payload or {}), sort_keys=True)
        with self._database.transaction():
            existing = self._get(job_id)
            if existing is not None and existing.plugin != plugin:
                raise ValueError(
                    f"job id {job_id!r} is taken by plugin {existing.plugin}; choose another"
                )
            if existing is not None and existing.schedule == schedule:
                next_run = existing.next_run
            else:
                next_run = self.next_after(schedule, self._clock())
            self._database.conn.execute(
                f"INSERT INTO _jobs({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT(id) DO UPDATE SET handler = excluded.handler, "
                "schedule = excluded.schedule, next_run = excluded.next_run, "
                "payload = excluded.payload, missed = excluded.missed",
                (
                    job_id,
                    plugin,
                    handler,
                    schedule,
                    next_run,
                    existing.last_run if existing else None,
                    payload_json,
                    missed,
                ),
            )
            job = self._get(job_id)
        assert job is not None
        return job

    def get(self, job_id: str) -> Job | None:
        return self._get(job_id)

    def jobs(self, plugin: str | None = None) -> list[Job]:
        if plugin is None:
            rows = self._database.conn.execute(
                f"SELECT {_COLUMNS} FROM _jobs ORDER BY next_run, id"
            )
        else:
            rows = self._database.conn.execute(
                f"SELECT {_COLUMNS} FROM _jobs WHERE plugin = ? ORDER BY next_run, id", (plugin,)
            )
        return [_job(row) for row in rows]

    def cancel(self, job_id: str, plugin: str | None = None) -> bool:
        """Remove a job; with ``plugin``, only if that plugin owns it."""
        with self._database.transaction():
            if plugin is None:
                cursor = self._database.conn.execute("DELETE FROM _jobs WHERE id = ?", (job_id,))
            else:
                cursor = self._database.conn.execute(
                    "DELETE FROM _jobs WHERE id = ? AND plugin = ?", (job_id, plugin)
                )
        return cursor.rowcount > 0

    def remove_plugin_jobs(self, plugin: str) -> int:
        """Remove every job of a plugin (when it is uninstalled); returns how many."""
        with self._database.transaction():
            cursor = self._database.conn.execute("DELETE FROM _jobs WHERE plugin = ?", (plugin,))
        return cursor.rowcount

    # -- running ---------------------------------------------------------------------
    def due(self, now: float | None = None) -> list[Job]:
        now = self._clock() if now is None else now
        rows = self._database.conn.execute(
            f"SELECT {_COLUMNS} FROM _jobs WHERE next_run <= ? ORDER BY next_run, id", (now,)
        )
        return [_job(row) for row in rows]

    def mark_ran(self, job: Job, now: float | None = None) -> Job | None:
        """Record a run that ended at ``now``; ``None`` if the job was cancelled meanwhile."""
        now = self._clock() if now is None else now
        with self._database.transaction():
            current = self._get(job.id)
            if current is None:
                return None
            current.last_run = now
            current.next_run = self.next_after(current.schedule, now)
            self._database.conn.execute(
                "UPDATE _jobs SET last_run = ?, next_run = ? WHERE id = ?",
                (current.last_run, current.next_run, current.id),
            )
        return current

    def recover(self, now: float | None = None) -> list[Job]:
        """Apply the missed-run policy (module docstring); returns the jobs that missed runs.

        Idempotent: afterwards no job is late by more than one period.
        """
        now = self._clock() if now is None else now
        affected = []
        with self._database.transaction():
            for job in self.due(now):
                if self.next_after(job.schedule, job.next_run) > now:
                    continue  # late by less than one period: it just runs
                # run-once: due now, once; skip: the next slot in the future.
                job.next_run = (
                    now if job.missed == "run-once" else self.next_after(job.schedule, now)
                )
                self._database.conn.execute(
                    "UPDATE _jobs SET next_run = ? WHERE id = ?", (job.next_run, job.id)
                )
                affected.append(job)
        for job in affected:
            log.info("job %s of plugin %s missed runs; policy %s", job.id, job.plugin, job.missed)
        return affected

    async def run_loop(self, runner: Runner, stop_event: asyncio.Event, tick: float = 1.0) -> None:
        """Run due jobs one at a time with ``runner`` until ``stop_event`` is set.

        A job that raises is still marked as ran, so a broken job waits for its next
        slot instead of failing again on every tick. Time limits are the runner's
        business: a job that never returns holds up the others.
        """
        self.recover()
        while not stop_event.is_set():
            for job in self.due():
                if stop_event.is_set():
                    break
                try:
                    await runner(job)
                except Exception:
                    log.exception("job %s of plugin %s failed", job.id, job.plugin)
                self.mark_ran(job)
            try:
                await asyncio.wait_for(stop_event.wait(), tick)
            except TimeoutError:
                pass

    def _get(self, job_id: str) -> Job | None:
        row = self._database.conn.execute(
            f"SELECT {_COLUMNS} FROM _jobs WHERE id = ?", (job_id,)
        ).fetchone()
        return None if row is None else _job(row)


class PluginScheduler:
    """The :class:`clustercord_sdk.services.Scheduler` of one plugin: only its own jobs."""

    def __init__(self, service: SchedulerService, plugin: str) -> None:
        self._service = service
        self.plugin = plugin

    def every(
        self,
        interval: str,
        handler: str,
        *,
        job_id: str | None = None,
        payload: Mapping[str, Any] | None = None,
        missed: str = "run-once",
    ) -> Job:
        text = str(interval).strip()
        schedule = text if text.lower().startswith("every ") else f"every {text}"
        return self._service.schedule(
            self.plugin, schedule, handler, job_id=job_id, payload=payload, missed=missed
        )

    def cron(
        self,
        expression: str,
        handler: str,
        *,
        job_id: str | None = None,
        payload: Mapping[str, Any] | None = None,
        missed: str = "run-once",
    ) -> Job:
        if str(expression).strip().lower().startswith("every "):
            raise ValueError(f"{expression!r} is an interval; use every() for it")
        return self._service.schedule(
            self.plugin, expression, handler, job_id=job_id, payload=payload, missed=missed
        )

    def cancel(self, job_id: str) -> bool:
        return self._service.cancel(job_id, plugin=self.plugin)

    def jobs(self) -> list[Job]:
        return self._service.jobs(self.plugin)


def default_job_id(plugin: str, handler: str, schedule: str) -> str:
    digest = hashlib.sha256(f"{plugin}\0{handler}\0{schedule}".encode()).hexdigest()[:12]
    return f"{plugin}-{digest}"


def _job(row: tuple[Any, ...]) -> Job:
    job_id, plugin, handler, schedule, next_run, last_run, payload, missed = row
    return Job(
        id=job_id,
        plugin=plugin,
        handler=handler,
        schedule=schedule,
        next_run=next_run,
        last_run=last_run,
        payload=json.loads(payload),
        missed=missed,
    )
