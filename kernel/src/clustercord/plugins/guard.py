"""Guarded calls into plugin code: time budgets, isolated exceptions, failure counting.

A hook implementation runs inline (calling through a thread per hook would cost
more than the hook). A watchdog thread checks the calls in flight a few times a
second; one that overruns its budget is interrupted with :class:`HookTimeout`:
in the main thread by a signal, which also breaks a blocking ``time.sleep`` or
socket read, elsewhere by an asynchronous exception. Arming costs two dict
operations, so guarded dispatch stays within a small factor of bare pluggy.

Hooks and jobs spend the default :class:`Budget` (the hook timeout, failures counted
towards auto-disable). What a person started (commands, component actions, forms)
passes the same guard with its own budget (see :mod:`clustercord.door`): it may run
long, a blocking function runs in a worker thread (still interrupted by the watchdog),
and a :class:`~clustercord_sdk.errors.ClusterCordError` it raises is its answer to the
person, not a failure of the plugin.
"""

from __future__ import annotations

import asyncio
import ctypes
import inspect
import itertools
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from clustercord_sdk.errors import HookTimeout

log = logging.getLogger("clustercord.plugins")
_INTERRUPT_SIGNAL = signal.SIGUSR2


@dataclass
class CallResult:
    ok: bool
    value: Any = None
    error: BaseException | None = None
    duration: float = 0.0
    answered: bool = False
    """``error`` is the plugin's answer to a person (a ``ClusterCordError``), not a failure."""


@dataclass(frozen=True)
class Budget:
    """How a guarded call may spend: its time, and what its failures cost the plugin."""

    timeout: float | None = None
    """Seconds before the call is interrupted; ``None``: the guard's own (hook) timeout."""
    unlimited: bool = False
    """No time limit at all (a command that legitimately waits minutes)."""
    counts: bool = True
    """A failure counts towards disabling the plugin (hooks, jobs, actions)."""
    in_thread: bool = False
    """A synchronous function runs in a worker thread (it may block long) instead of inline."""
    answers: tuple[type[BaseException], ...] = ()
    """Exceptions that are the plugin's answer, not a failure: returned as ``error`` with
    ``ok`` false and ``answered`` true, neither counted nor logged."""


HOOK_BUDGET = Budget()


class Watchdog:
    """Interrupts guarded calls that overrun their deadline."""

    def __init__(self, interval: float = 0.05) -> None:
        self.interval = interval
        self._calls: dict[int, tuple[float, int]] = {}  # thread id -> (deadline, token)
        self._fired: set[int] = set()
        self._tokens = itertools.count(1)
        self._thread: threading.Thread | None = None
        self._main = threading.main_thread().ident
        self._signal_ready = False

    def _start(self) -> None:
        if self._thread is not None:
            return
        if threading.current_thread() is threading.main_thread():
            signal.signal(_INTERRUPT_SIGNAL, self._on_signal)
            self._signal_ready = True
        self._thread = threading.Thread(
            target=self._watch, name="clustercord-watchdog", daemon=True
        )
        self._thread.start()

    def arm(self, timeout: float) -> int:
        if self._thread is None:
            self._start()
        token = next(self._tokens)
        self._calls[threading.get_ident()] = (time.monotonic() + timeout, token)
        return token

    def calls_of_this_thread(self) -> tuple[dict[int, tuple[float, int]], int]:
        """The deadline table and this thread's key, for callers that re-arm in a loop."""
        if self._thread is None:
            self._start()
        return self._calls, threading.get_ident()

    def disarm(self, token: int) -> None:
        ident = threading.get_ident()
        current = self._calls.get(ident)
        if current is not None and current[1] == token:
            del self._calls[ident]
        self._fired.discard(token)

    def _on_signal(self, signum: int, frame: Any) -> None:
        current = self._calls.get(self._main or 0)
        if current is not None and current[1] in self._fired:
            raise HookTimeout()

    def _watch(self) -> None:
        while True:
            time.sleep(self.interval)
            now = time.monotonic()
            for ident, (deadline, token) in list(self._calls.items()):
                if now < deadline or token in self._fired:
                    continue
                self._fired.add(token)
                if ident == self._main and self._signal_ready:
                    signal.pthread_kill(ident, _INTERRUPT_SIGNAL)
                else:
                    ctypes.pythonapi.PyThreadState_SetAsyncExc(
                        ctypes.c_ulong(ident), ctypes.py_object(HookTimeout)
                    )


class Guard:
    """Calls plugin functions with a time budget and counts consecutive failures.

    ``on_failure(plugin, error, failures)`` is called for each failure; the kernel
    disables a plugin when ``failures`` reaches ``max_failures``.
    """

    def __init__(
        self,
        *,
        timeout: float = 5.0,
        max_failures: int = 3,
        trace: bool = False,
        on_failure: Callable[[str, BaseException, int], None] | None = None,
        watchdog: Watchdog | None = None,
    ) -> None:
        self.timeout = timeout
        self.max_failures = max_failures
        self.trace = trace
        self.on_failure = on_failure
        self.watchdog = watchdog or Watchdog()
        self.failures: dict[str, int] = {}

    def call(
        self,
        plugin: str,
        name: str,
        function: Callable[..., Any],
        kwargs: dict[str, Any],
        budget: Budget = HOOK_BUDGET,
    ) -> CallResult:
        """Run a synchronous plugin function inline, interrupted if it overruns."""
        start = time.perf_counter()
        try:
            value = self._bounded(function, kwargs, budget)
        except HookTimeout as exc:
            error: BaseException = self._timeout_error(name, budget)
            error.__cause__ = exc
            return self.failed(plugin, name, error, start, budget)
        except budget.answers as exc:
            return self._answered(plugin, name, exc, start)
        except Exception as exc:
            return self.failed(plugin, name, exc, start, budget)
        return self._succeeded(plugin, name, value, start, budget)

    async def acall(
        self,
        plugin: str,
        name: str,
        function: Callable[..., Any],
        kwargs: dict[str, Any],
        budget: Budget = HOOK_BUDGET,
    ) -> CallResult:
        """Run a plugin function that may be ``async``; coroutines get ``wait_for``, a
        synchronous function runs inline (or in a worker thread, if the budget says so)."""
        if not inspect.iscoroutinefunction(function) and not budget.in_thread:
            return self.call(plugin, name, function, kwargs, budget)
        start = time.perf_counter()
        limit = self._limit(budget)
        try:
            if inspect.iscoroutinefunction(function):
                value = await asyncio.wait_for(function(**kwargs), limit)
            else:
                # The watchdog interrupts the worker thread; wait_for frees the caller even
                # if the thread sits in a blocking call the interruption cannot reach. It is
                # started from this thread, so the main thread's signal is installed.
                self.watchdog._start()
                work = asyncio.to_thread(self._bounded, function, kwargs, budget)
                value = await asyncio.wait_for(work, limit)
        except (TimeoutError, HookTimeout):
            return self.failed(plugin, name, self._timeout_error(name, budget), start, budget)
        except budget.answers as exc:
            return self._answered(plugin, name, exc, start)
        except Exception as exc:
            return self.failed(plugin, name, exc, start, budget)
        return self._succeeded(plugin, name, value, start, budget)

    def _limit(self, budget: Budget) -> float | None:
        if budget.unlimited:
            return None
        return self.timeout if budget.timeout is None else budget.timeout

    def _bounded(self, function: Callable[..., Any], kwargs: dict[str, Any], budget: Budget) -> Any:
        limit = self._limit(budget)
        if limit is None:
            return function(**kwargs)
        token = self.watchdog.arm(limit)
        try:
            return function(**kwargs)
        finally:
            self.watchdog.disarm(token)

    def _timeout_error(self, name: str, budget: Budget) -> TimeoutError:
        return TimeoutError(f"{name} did not return within {self._limit(budget):g} s")

    def _succeeded(
        self, plugin: str, name: str, value: Any, start: float, budget: Budget
    ) -> CallResult:
        if self.trace:
            self._trace(plugin, name, start, "ok")
        if budget.counts and self.failures.get(plugin):
            self.failures[plugin] = 0
        return CallResult(True, value, duration=time.perf_counter() - start)

    def _answered(self, plugin: str, name: str, error: BaseException, start: float) -> CallResult:
        if self.trace:
            self._trace(plugin, name, start, f"answered {type(error).__name__}: {error}")
        return CallResult(False, error=error, duration=time.perf_counter() - start, answered=True)

    def failed(
        self,
        plugin: str,
        name: str,
        error: BaseException,
        start: float,
        budget: Budget = HOOK_BUDGET,
    ) -> CallResult:
        """Count and report a failure of ``plugin`` (callers that inline :meth:`call` use it).

        With a budget whose failures do not count (commands), it is only logged and traced."""
        count = 0
        what = f"{name} failed"
        if budget.counts:
            count = self.failures.get(plugin, 0) + 1
            self.failures[plugin] = count
            what += f" ({count} in a row)"
        log.warning(
            "plugin %s: %s: %s: %s",
            plugin,
            what,
            type(error).__name__,
            error,
            exc_info=not isinstance(error, TimeoutError),
        )
        if self.trace:
            self._trace(plugin, name, start, f"{type(error).__name__}: {error}")
        if budget.counts and self.on_failure is not None:
            self.on_failure(plugin, error, count)
        return CallResult(False, error=error, duration=time.perf_counter() - start)

    def _trace(self, plugin: str, name: str, start: float, outcome: str) -> None:
        elapsed = (time.perf_counter() - start) * 1000
        print(f"trace: plugin={plugin} hook={name} {elapsed:.3f}ms {outcome}", file=sys.stderr)
