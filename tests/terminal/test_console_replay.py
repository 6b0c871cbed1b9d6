"""The console's live replay steered from the keyboard, in a real terminal (a pty): the
``clustercord`` process plays a recording made by ``/terminal exec`` in a sandbox pod, and
space pauses and resumes it, each time saying where it is."""

from __future__ import annotations

import asyncio
import json
import os
import re
import select
import subprocess
import sys
import time

import pytest

from clustercord_testing.site import signed_builtins_site

CLI = [sys.executable, "-c", "import sys; from clustercord.cli import main; sys.exit(main())"]
# Eight lines, half a second apart: the replay (at 1x) takes about four seconds.
SLOW = "for i in 1 2 3 4 5 6 7 8; do echo line-$i; sleep 0.5; done"


@pytest.fixture
def env(tmp_path, clustercord_signer):
    """The CLI's environment: a signed copy of the builtins, a data directory of its own."""
    site = tmp_path / "site"
    signed_builtins_site(site, clustercord_signer)
    env = {
        **os.environ,
        "PYTHONPATH": str(site),
        "CLUSTERCORD_DATA_DIR": str(tmp_path / "data"),
        "CLUSTERCORD_FILES_DIR": str(tmp_path / "files"),
        "COLUMNS": "120",
    }
    key = tmp_path / "test.asc"
    key.write_text(clustercord_signer.public_key)
    cli(env, "keys", "trust", str(key), "--label", "test key", "--kind", "release")
    return env


def cli(env: dict[str, str], *args: str) -> str:
    done = subprocess.run([*CLI, *args], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    return done.stdout


def recorded_session(env: dict[str, str]) -> str:
    """A recording of SLOW, made in a pod of an embedded homelab sandbox."""
    listed = cli(env, "run", "--json", "--sandbox", "homelab", "/pod list namespace:media")
    pods = json.loads(listed)
    pod = pods["data"]["pods"][0]["name"]
    line = f'/terminal exec pod:{pod} namespace:media command:"{SLOW}"'
    done = json.loads(cli(env, "run", "--json", "--sandbox", "homelab", line))
    assert done["data"]["exit_code"] == 0, done
    return str(done["data"]["session"])


class Terminal:
    """A process on the child side of a pty, read as it writes."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        import pty

        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: the pty is its controlling terminal and its stdin
            os.execve(argv[0], argv, env)
        self.output = b""

    def read_until(self, pattern: bytes, timeout: float = 30.0) -> re.Match[bytes]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = re.search(pattern, self.output)
            if found:
                return found
            self.read(0.1)
        raise AssertionError(f"no {pattern!r} in:\n{self.output.decode(errors='replace')}")

    def read(self, seconds: float) -> None:
        ready, _, _ = select.select([self.fd], [], [], seconds)
        if ready:
            try:
                self.output += os.read(self.fd, 4096)
            except OSError:  # the child ended
                time.sleep(seconds)

    def type(self, keys: bytes) -> None:
        os.write(self.fd, keys)

    def close(self) -> int | None:
        """The exit status; a child still running after a grace period is killed (it is
        ours, by pid)."""
        status = None
        for _ in range(50):
            pid, code = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                status = os.waitstatus_to_exitcode(code)
                break
            self.read(0.1)
        else:
            os.kill(self.pid, 9)
            os.waitpid(self.pid, 0)
        os.close(self.fd)
        return status


def test_space_pauses_and_resumes_the_console_replay(env):
    session = recorded_session(env)
    argv = [*CLI, "run", f"/terminal playback session:{session} speed:1"]
    term = Terminal(argv, {**env, "TERM": "xterm"})
    try:
        term.read_until(rb"Space pauses and resumes")
        term.read_until(rb"line-2")
        term.type(b" ")
        paused = term.read_until(rb"Paused at \[(\d\d:\d\d)\] of \[(\d\d:\d\d)\]: space resumes")
        assert paused.group(2) == b"00:04"  # the whole recording: eight lines, 0.5 s apart
        term.read_until(rb"Replay 1x, paused: [\d.]+/4\.\d+ \(\d+%\)")  # the progress
        shown = term.output.count(b"line-")
        term.read(2.0)  # paused: time stands still
        term.read(0.5)
        assert term.output.count(b"line-") == shown, term.output.decode(errors="replace")
        assert b"line-8" not in term.output
        term.type(b" ")
        term.read_until(rb"Playing at \[\d\d:\d\d\] of \[00:04\], 1x: space pauses")
        term.read_until(rb"line-8")
        term.read_until(rb"Replay finished")
    finally:
        status = term.close()
    assert status == 0, term.output.decode(errors="replace")
    text = term.output.decode(errors="replace")
    assert text.index("line-1") < text.index("Paused") < text.index("Playing")
    assert text.index("Playing") < text.index("line-8")


def test_without_a_terminal_the_replay_just_plays(env):
    session = recorded_session(env)
    done = subprocess.run(
        [*CLI, "run", f"/terminal playback session:{session} speed:8"],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "line-8" in done.stdout and "Replay finished" in done.stdout
    assert "Space pauses" not in done.stdout  # no keys to read: no promise of them


def test_keys_do_what_the_buttons_do():
    from clustercord_builtins.terminal.console_keys import act
    from clustercord_builtins.terminal.session import Replay

    replay = Replay("1001", 1.0)
    act(replay, " ")
    assert replay.paused
    act(replay, " ")
    assert not replay.paused
    act(replay, "ff")
    assert replay.speed == 4.0
    act(replay, "b")
    assert replay.rewound
    act(replay, "x?\x1b[A")  # anything else does nothing
    assert not replay.stopped and not replay.paused
    act(replay, "q")
    assert replay.stopped


async def test_the_terminal_is_handed_back_as_it_was():
    """Keys are read one at a time, unechoed, only while the replay plays."""
    import pty
    import termios

    from clustercord_builtins.terminal.console_keys import steered_by_keys
    from clustercord_builtins.terminal.session import Replay

    master, slave = pty.openpty()
    try:
        with os.fdopen(slave, "r", closefd=False) as stream:
            before = termios.tcgetattr(slave)
            assert before[3] & termios.ICANON
            replay = Replay("1001", 1.0)
            with steered_by_keys(replay, stream) as keys:
                assert keys
                assert not termios.tcgetattr(slave)[3] & (termios.ICANON | termios.ECHO)
                os.write(master, b" ")
                for _ in range(50):
                    await asyncio.sleep(0.02)
                    if replay.paused:
                        break
                assert replay.paused
            assert termios.tcgetattr(slave) == before
    finally:
        os.close(master)
        os.close(slave)
