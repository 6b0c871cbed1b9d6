"""Persisted jobs: schedules, restarts, the missed-run policy and the run loop."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest

from clustercord.services.scheduler import SchedulerService
from clustercord.storage import Database
from clustercord_sdk.services import Job

HOUR = 3600.0


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def ts(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


@pytest.fixture
def clock() -> Clock:
    return Clock(ts("2024-01-01 10:17:00"))


@pytest.fixture
def service(tmp_path: Path, clock: Clock) -> SchedulerService:
    return SchedulerService(Database(tmp_path / "cc.db"), clock=clock)


async def run_for(service: SchedulerService, runner, until=None, more: float = 0.1) -> None:
    """Run the loop with a fast tick until ``until()`` holds, ``more`` seconds longer, then stop.

    The extra time is where a job that should not run again would run again.
    """
    stop = asyncio.Event()
    task = asyncio.create_task(service.run_loop(runner, stop, tick=0.01))
    if until is not None:
        await wait_until(until)
    await asyncio.sleep(more)
    stop.set()
    await asyncio.wait_for(task, 1)


async def wait_until(condition, timeout: float = 2.0) -> None:
    """Poll instead of sleeping a fixed time, so a slow machine does not fail the test."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


def test_every_job_survives_reopening_the_database(tmp_path: Path, clock: Clock) -> None:
    first = SchedulerService(Database(tmp_path / "cc.db"), clock=clock)
    job = first.for_plugin("backup").every("5m", "backup.jobs:run", payload={"bucket": "b1"})
    assert job.next_run == clock.now + 300

    reopened = SchedulerService(Database(tmp_path / "cc.db"), clock=clock)
    [stored] = reopened.for_plugin("backup").jobs()
    assert stored == job
    assert stored.payload == {"bucket": "b1"}
    assert stored.schedule == "every 5m"


def test_scheduling_again_on_the_next_start_keeps_the_timer(
    service: SchedulerService, clock: Clock
) -> None:
    scheduler = service.for_plugin("backup")
    first = scheduler.every("1h", "backup.jobs:run")
    clock.now += 1800  # a restart half-way through the period
    again = scheduler.every("1h", "backup.jobs:run")
    assert again.id == first.id
    assert again.next_run == first.next_run
    assert len(scheduler.jobs()) == 1


def test_a_changed_schedule_under_the_same_id_gets_a_new_next_run(
    service: SchedulerService, clock: Clock
) -> None:
    scheduler = service.for_plugin("backup")
    scheduler.every("1h", "backup.jobs:run", job_id="nightly")
    job = scheduler.cron("0 3 * * *", "backup.jobs:run", job_id="nightly")
    assert job.next_run == ts("2024-01-02 03:00:00")
    assert [j.id for j in scheduler.jobs()] == ["nightly"]


def test_cron_next_run_and_the_one_after(service: SchedulerService, clock: Clock) -> None:
    job = service.for_plugin("backup").cron("0 3 * * *", "backup.jobs:run")
    assert job.next_run == ts("2024-01-02 03:00:00")

    clock.now = job.next_run + 42  # the run took 42 seconds
    after = service.mark_ran(job)
    assert after is not None
    assert after.last_run == clock.now
    assert after.next_run == ts("2024-01-03 03:00:00")


def test_cron_weekday_expression(service: SchedulerService) -> None:
    # 2024-01-01 is a Monday; "every Friday at 18:30".
    job = service.for_plugin("report").cron("30 18 * * 5", "report:weekly")
    assert job.next_run == ts("2024-01-05 18:30:00")


@pytest.mark.parametrize("expression", ["61 * * * *", "* * * *", "0 0 * * * *", "daily"])
def test_invalid_cron_names_the_expression(service: SchedulerService, expression: str) -> None:
    with pytest.raises(ValueError, match="cron") as error:
        service.for_plugin("p").cron(expression, "p:run")
    assert repr(expression) in str(error.value)


@pytest.mark.parametrize("interval", ["soon", "0s", "-5m"])
def test_invalid_interval_is_refused(service: SchedulerService, interval: str) -> None:
    with pytest.raises(ValueError):
        service.for_plugin("p").every(interval, "p:run")


def test_unknown_missed_policy_is_refused(service: SchedulerService) -> None:
    with pytest.raises(ValueError, match="run-once"):
        service.for_plugin("p").every("5m", "p:run", missed="catch-up")


def test_due_lists_only_jobs_whose_time_has_come(service: SchedulerService, clock: Clock) -> None:
    scheduler = service.for_plugin("p")
    soon = scheduler.every("1m", "p:soon")
    scheduler.every("1h", "p:later")
    assert service.due() == []
    assert [job.id for job in service.due(clock.now + 60)] == [soon.id]
    assert len(service.due(clock.now + HOUR)) == 2


def test_plugins_see_and_cancel_only_their_own_jobs(service: SchedulerService) -> None:
    mine = service.for_plugin("a").every("5m", "a:run")
    theirs = service.for_plugin("b")
    assert theirs.jobs() == []
    assert theirs.cancel(mine.id) is False
    assert service.get(mine.id) is not None
    assert service.for_plugin("a").cancel(mine.id) is True
    assert service.get(mine.id) is None


def test_a_job_id_of_another_plugin_cannot_be_taken_over(service: SchedulerService) -> None:
    service.for_plugin("a").every("5m", "a:run", job_id="sync")
    with pytest.raises(ValueError, match="taken by plugin a"):
        service.for_plugin("b").every("5m", "b:run", job_id="sync")
    assert service.get("sync").plugin == "a"


def test_remove_plugin_jobs(service: SchedulerService) -> None:
    service.for_plugin("a").every("5m", "a:one")
    service.for_plugin("a").cron("0 * * * *", "a:two")
    service.for_plugin("b").every("5m", "b:one")
    assert service.remove_plugin_jobs("a") == 2
    assert [job.plugin for job in service.jobs()] == ["b"]


def test_mark_ran_on_a_cancelled_job_does_not_bring_it_back(service: SchedulerService) -> None:
    job = service.for_plugin("a").every("5m", "a:run")
    service.for_plugin("a").cancel(job.id)
    assert service.mark_ran(job) is None
    assert service.jobs() == []


# -- missed runs ----------------------------------------------------------------------
def _down_for(tmp_path: Path, clock: Clock, missed: str, hours: float) -> SchedulerService:
    """Schedule an hourly job, then 'restart' the kernel ``hours`` later."""
    SchedulerService(Database(tmp_path / "cc.db"), clock=clock).for_plugin("p").every(
        "1h", "p:run", missed=missed
    )
    clock.now += hours * HOUR
    return SchedulerService(Database(tmp_path / "cc.db"), clock=clock)


async def test_missed_runs_with_run_once_run_once_then_follow_the_schedule(
    tmp_path: Path, clock: Clock
) -> None:
    service = _down_for(tmp_path, clock, "run-once", hours=5.5)
    [job] = service.recover()
    assert job.next_run == clock.now

    runs: list[Job] = []

    async def runner(job: Job) -> None:
        runs.append(job)

    await run_for(service, runner, until=lambda: runs)
    assert len(runs) == 1  # coalesced: not once per missed hour
    [after] = service.jobs()
    assert after.last_run == clock.now
    assert after.next_run == clock.now + HOUR


async def test_missed_runs_with_skip_move_to_the_next_slot_without_running(
    tmp_path: Path, clock: Clock
) -> None:
    service = _down_for(tmp_path, clock, "skip", hours=5.5)
    [job] = service.recover()
    assert job.next_run > clock.now
    assert job.next_run == clock.now + HOUR

    runs: list[Job] = []

    async def runner(job: Job) -> None:
        runs.append(job)

    await run_for(service, runner)
    assert runs == []
    assert service.jobs()[0].last_run is None


async def test_skip_applies_even_when_the_loop_starts_without_an_explicit_recover(
    tmp_path: Path, clock: Clock
) -> None:
    service = _down_for(tmp_path, clock, "skip", hours=3)
    runs: list[Job] = []

    async def runner(job: Job) -> None:
        runs.append(job)

    await run_for(service, runner)
    assert runs == []


def test_missed_cron_slots_with_skip_go_to_the_next_cron_slot(tmp_path: Path, clock: Clock) -> None:
    database = Database(tmp_path / "cc.db")
    service = SchedulerService(database, clock=clock)
    service.for_plugin("p").cron("0 * * * *", "p:run", missed="skip")  # next: 11:00
    clock.now = ts("2024-01-01 14:20:00")
    [job] = service.recover()
    assert job.next_run == ts("2024-01-01 15:00:00")


def test_a_job_late_by_less_than_one_period_is_not_a_missed_run(
    tmp_path: Path, clock: Clock
) -> None:
    service = _down_for(tmp_path, clock, "skip", hours=1.5)  # due at +1h, now +1.5h
    assert service.recover() == []
    assert len(service.due()) == 1  # it simply runs, late


# -- the loop -------------------------------------------------------------------------
async def test_a_failing_job_is_not_retried_in_a_tight_loop(
    service: SchedulerService, clock: Clock
) -> None:
    job = service.for_plugin("p").every("1m", "p:broken")
    clock.now = job.next_run
    calls = 0

    async def runner(job: Job) -> None:
        nonlocal calls
        calls += 1
        raise RuntimeError("boom")

    await run_for(service, runner, until=lambda: calls)
    assert calls == 1
    [after] = service.jobs()
    assert after.last_run == clock.now
    assert after.next_run == clock.now + 60


async def test_the_loop_runs_jobs_as_they_fall_due_and_stops_on_request(
    service: SchedulerService, clock: Clock
) -> None:
    scheduler = service.for_plugin("p")
    scheduler.every("1m", "p:minutely")
    scheduler.every("1h", "p:hourly")
    seen: list[str] = []
    stop = asyncio.Event()

    async def runner(job: Job) -> None:
        seen.append(job.handler)

    task = asyncio.create_task(service.run_loop(runner, stop, tick=0.01))
    await asyncio.sleep(0.05)
    assert seen == []
    clock.now += 60
    await wait_until(lambda: len(seen) == 1)
    assert seen == ["p:minutely"]
    clock.now += HOUR
    await wait_until(lambda: len(seen) == 3)
    await asyncio.sleep(0.05)  # nothing more may run at this clock
    assert sorted(seen) == ["p:hourly", "p:minutely", "p:minutely"]
    stop.set()
    await asyncio.wait_for(task, 1)
    assert task.done()
