"""Bounded rendering: a community template renders in a child process with a deadline and a
memory ceiling, so a hostile one (an endless loop, ``'x' * 10**10``) cannot hang or starve
the bot.

Why a child process and not hooks inside Jinja: a single Jinja expression (string
multiplication, ``range`` over a huge number, a C-level ``join``) never returns to Python
code that could check a clock, and a ``MemoryError`` in the bot's own process can hit any
coroutine. A child is killed on expiry whatever it is doing, and its address space is capped
with ``resource.setrlimit`` without touching the parent.

Each render is a fresh interpreter (``sys.executable``), not a fork: forking the bot
(threads, sockets, an event loop) is unsafe, and ``multiprocessing``'s fork server re-imports
the bot's ``__main__`` in every child. The price is an interpreter start-up per render
(about 0.35 s here), which is why the curated catalog, which we ship and test, renders
in-process. The deadline counts that start-up too.
"""

from __future__ import annotations

import math
import os
import pickle
import signal
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from clustercord_builtins.templates.template import TemplateError

# What the child runs: read a pickled call from stdin, answer a pickled outcome on stdout.
_CHILD = "from clustercord_builtins.templates.limits import child_main; child_main()"


# What the child may see of the bot's environment: enough to start Python and find our
# packages. Not the rest: a token, a secret key or a kubeconfig path is none of a community
# template's business, whatever hole it might find in the Jinja sandbox.
_CHILD_ENVIRONMENT = ("PATH", "PYTHONPATH", "LANG", "LC_ALL", "LC_CTYPE", "TMPDIR")


@dataclass(frozen=True)
class RenderLimits:
    """How long, and how much memory (address space), one render may take."""

    seconds: float = 5.0
    memory_mb: int = 256

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> RenderLimits:
        """The plugin's ``render_timeout`` and ``render_memory_mb`` settings."""
        return cls(
            seconds=float(config.get("render_timeout", cls.seconds)),
            memory_mb=int(config.get("render_memory_mb", cls.memory_mb)),
        )


class RenderLimitError(TemplateError):
    """A render gave up on a limit; the message names the template and the limit."""


def child_main() -> None:
    """In the child: cap the address space and CPU time, run the call, send back the result."""
    import resource

    memory_mb, seconds, call, args = pickle.load(sys.stdin.buffer)
    memory = memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    # A second net under the parent's kill: the kernel ends the child even if the parent died.
    cpu = math.ceil(seconds) + 1
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    try:
        outcome: tuple[str, Any] = ("ok", call(*args))
    except MemoryError:
        outcome = ("memory", None)
    except RecursionError:
        outcome = ("error", "the template recurses too deeply (a macro that calls itself?)")
    except TemplateError as error:
        outcome = ("error", str(error))
    except Exception as error:  # any failure of a hostile template is reported as its own
        outcome = ("error", f"{type(error).__name__}: {error}")
    try:
        answer = pickle.dumps(outcome)
    except MemoryError:
        answer = pickle.dumps(("memory", None))
    sys.stdout.buffer.write(answer)
    sys.stdout.buffer.flush()


def _outcome(done: subprocess.CompletedProcess[bytes]) -> tuple[str, Any]:
    if done.returncode == 0 and done.stdout:
        outcome: tuple[str, Any] = pickle.loads(done.stdout)
        return outcome
    if done.returncode == -signal.SIGXCPU:
        return "time", None
    if done.returncode < 0 or b"MemoryError" in done.stderr:
        # Killed, or out of memory before it could answer (the kernel refused it memory).
        return "memory", None
    return "error", f"the renderer failed: {done.stderr.decode(errors='replace')[-300:]}"


def run_limited(what: str, limits: RenderLimits, call: Callable[..., Any], *args: Any) -> Any:
    """``call(*args)`` in a child process bounded by ``limits``; ``what`` names the template.

    ``call`` must be a module-level function (it is pickled to the child). Its
    :class:`TemplateError` comes back as one; a deadline or a memory ceiling reached raises
    :class:`RenderLimitError`.
    """
    payload = pickle.dumps((limits.memory_mb, limits.seconds, call, args))
    try:
        # On expiry ``subprocess.run`` kills the child and waits for it: nothing keeps running.
        done = subprocess.run(
            [sys.executable, "-c", _CHILD],
            input=payload,
            capture_output=True,
            timeout=limits.seconds,
            check=False,
            env={name: os.environ[name] for name in _CHILD_ENVIRONMENT if name in os.environ},
        )
    except subprocess.TimeoutExpired:
        status, value = "time", None
    else:
        status, value = _outcome(done)
    if status == "ok":
        return value
    if status == "time":
        raise RenderLimitError(
            f"template {what} took longer than {limits.seconds:g} s to render; nothing was deployed"
        )
    if status == "memory":
        raise RenderLimitError(
            f"template {what} needed more than {limits.memory_mb} MB of memory to render; "
            "nothing was deployed"
        )
    raise TemplateError(value)
