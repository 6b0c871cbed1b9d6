"""Exports: asciicast v2/v3 that read back, the spec's JSON, a text transcript that reads
like the screen did, the chat replay's timed lines, and a self-contained HTML player."""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from clustercord_builtins.terminal import formats
from clustercord_builtins.terminal.recording import Recording
from clustercord_testing.browser import CHROMIUM, open_page

from .conftest import Clock, recorder

XSS = "</script><script>alert(1)</script>"


def session() -> Recording:
    """A shell session: a prompt, two commands with coloured and rewritten output (a
    5 s pause before the second), an exit."""
    clock = Clock()
    rec = recorder(command=["/bin/sh"], width=100, height=30, clock=clock)
    rec.output(b"/ # ")
    rec.input("ls -la\n")
    rec.output(b"ls -la\r\ntotal 48\r\n\x1b[1;34mbin\x1b[0m  app.py\r\n/ # ")
    clock.pause(5)
    rec.input("cat /app/config.json\n")
    rec.output(
        b'cat /app/config.json\r\n{\r\n  "database": "postgresql://app:pw@db/app",\r\n'
        b'  "note": "' + XSS.encode() + b'"\r\n}\r\nloading 10%\rloading 100%\r\n'
        b"typo\b\bpo\r\n/ # "
    )
    rec.resize(120, 40)
    rec.input("exit\n")
    return rec.finish(0)


def lines(text: str) -> list[object]:
    return [json.loads(line) for line in text.splitlines()]


# -- asciicast ---------------------------------------------------------------------------------
def test_asciicast_v2_header_and_events():
    rec = session()
    header, *events = lines(formats.to_asciicast_v2(rec))
    assert header["version"] == 2
    assert (header["width"], header["height"]) == (100, 30)
    assert header["timestamp"] == 1_705_312_800
    assert header["duration"] == pytest.approx(rec.duration)
    assert header["command"] == "/bin/sh"
    assert header["env"] == {"TERM": "xterm-256color"}
    assert header["clustercord"]["exit_code"] == 0  # v2 has no exit event
    assert {code for _, code, _ in events} == {"o", "i", "m", "r"}
    times = [t for t, _, _ in events]
    assert times == sorted(times)
    assert ["r", "120x40"] in [e[1:] for e in events]
    assert [d for _, c, d in events if c == "m"] == ["ls -la", "cat /app/config.json", "exit"]


def test_asciicast_v3_intervals_add_up_to_the_duration():
    rec = session()
    header, *events = lines(formats.to_asciicast_v3(rec))
    assert header["version"] == 3
    assert header["term"] == {"cols": 100, "rows": 30, "type": "xterm-256color"}
    assert header["tags"] == ["clustercord", "prod", "shop"]
    assert events[-1][1:] == ["x", "0"]
    assert all(e[0] >= 0 and round(e[0] * 1000) == pytest.approx(e[0] * 1000) for e in events)
    assert sum(e[0] for e in events) == pytest.approx(rec.duration, abs=0.001)


def test_v3_rounding_does_not_drift_over_many_events():
    rng = random.Random(5)
    steps = [rng.uniform(0.0001, 0.0019) for _ in range(5000)]
    rec = Recording("x", "u", "c", "n", "p", None, ["sh"], 0.0, 80, 24)
    now = 0.0
    for step in steps:
        now += step
        rec.events.append((now, "o", "."))
    rec.duration = now
    _, *events = lines(formats.to_asciicast_v3(rec))
    # Rounding each interval alone would be off by up to 2.5 s here.
    assert sum(e[0] for e in events) == pytest.approx(now, abs=0.0005)


@pytest.mark.parametrize("writer", [formats.to_asciicast_v2, formats.to_asciicast_v3])
def test_asciicast_reads_back_as_the_same_recording(writer):
    rec = session()
    again = formats.parse_asciicast(writer(rec))
    assert (again.id, again.user, again.cluster, again.namespace, again.pod, again.container) == (
        rec.id,
        rec.user,
        rec.cluster,
        rec.namespace,
        rec.pod,
        rec.container,
    )
    assert again.command == rec.command and again.commands == rec.commands
    assert again.exit_code == 0 and (again.width, again.height) == (100, 30)
    kept = [e for e in rec.events if writer is formats.to_asciicast_v3 or e[1] != "x"]
    assert [e[1:] for e in again.events] == [e[1:] for e in kept]
    assert [e[0] for e in again.events] == pytest.approx([e[0] for e in kept], abs=0.001)
    assert formats.to_text(again) == formats.to_text(rec)


def test_a_foreign_asciicast_reads_with_unknown_keys_codes_and_comments():
    v3 = "\n".join(
        [
            '{"version": 3, "term": {"cols": 80, "rows": 24}, "command": "bash -l", "x-y": 1}',
            "# a comment line",
            '[0.5, "o", "$ "]',
            '[1.0, "i", "ls\\r"]',
            '[0.25, "z", "an event code from the future"]',
            '[0.25, "o", "a  b\\r\\n"]',
            '[0.1, "x", "2"]',
        ]
    )
    rec = formats.parse_asciicast(v3)
    assert [e[1] for e in rec.events] == ["o", "i", "o", "x"]
    assert [e[0] for e in rec.events] == pytest.approx([0.5, 1.5, 2.0, 2.1])
    assert rec.commands == ["ls"] and rec.command == ["bash", "-l"] and rec.exit_code == 2


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "line 1: empty"),
        ("not json", "line 1: not valid JSON"),
        ('{"version": 1, "width": 80, "height": 24}', "line 1: asciicast version 1"),
        ('{"version": 2, "width": 80}', "line 1: the header needs the terminal size"),
        ('{"version": 2, "width": 80, "height": 24}\n[0.1, "o", "a"]\n[0.2, "o"', "line 3"),
        ('{"version": 2, "width": 80, "height": 24}\n[0.1, "o", "a"]\n{"t": 1}', "line 3"),
        ('{"version": 3, "term": {"cols": 80, "rows": 24}}\n[-1, "o", "a"]', "line 2"),
    ],
)
def test_a_malformed_asciicast_is_refused_naming_the_line(text, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        formats.parse_asciicast(text)


def test_the_asciinema_cli_plays_the_export(tmp_path):
    asciinema = shutil.which("asciinema")
    if asciinema is None:
        pytest.skip("the asciinema CLI is not installed (the format is checked structurally)")
    cast = tmp_path / "session.cast"
    rec = session()
    cast.write_text(formats.to_asciicast_v2(rec))
    played = subprocess.run([asciinema, "cat", str(cast)], capture_output=True, text=True)
    assert played.returncode == 0, played.stderr
    assert "total 48" in played.stdout


# -- JSON, text, chat lines ----------------------------------------------------------------------
def test_json_export_has_the_specs_shape():
    rec = session()
    data = formats.to_json(rec)
    assert list(data) == [
        "session_id",
        "user",
        "cluster",
        "pod",
        "namespace",
        "start_time",
        "duration",
        "frames",
        "commands",
        "exit_code",
        "redactions",
    ]
    assert data["start_time"] == "2024-01-15T10:00:00Z"
    assert data["session_id"] == "abcd2345" and data["user"] == "1001"
    assert {f["type"] for f in data["frames"]} == {"input", "output"}
    typed = rec.events[1]
    assert data["frames"][1] == {
        "timestamp": round(typed[0], 3),
        "type": "input",
        "data": "ls -la\n",
    }
    assert data["commands"] == ["ls -la", "cat /app/config.json", "exit"]
    assert data["redactions"] == 1  # the database URL's password
    json.dumps(data)


def test_text_reads_as_the_screen_did():
    text = formats.to_text(session())
    assert "\x1b" not in text and "\r" not in text
    assert "bin  app.py\n" in text
    assert "loading 100%\n" in text and "loading 10%" not in text  # overwritten in place
    assert "\ntypo\n" in text  # two backspaces, then "po" over "po"
    assert '"postgresql://app:************@db/app"' in text
    assert text.startswith("/ # ls -la\ntotal 48\n")


def test_chat_replay_lines_show_commands_and_output_with_their_time():
    rec = session()
    replay = formats.transcript_lines(rec)
    texts = [t for _, t in replay]
    assert texts[:4] == ["$ ls -la", "total 48", "bin  app.py", "$ cat /app/config.json"]
    assert "/ # ls -la" not in texts  # the terminal's echo of a command shows once
    times = {text: t for t, text in replay}
    entered = rec.command_times()[1]
    assert times["$ cat /app/config.json"] == entered and entered > 5
    printed = next(t for t, code, data in rec.events if code == "o" and "database" in data)
    assert times["{"] == times['  "database": "postgresql://app:************@db/app",'] == printed
    indexed = formats.timeline(rec)
    assert [c for _, t, c in indexed if t in ("total 48", "{", "$ exit")] == [0, 1, 2]


# -- HTML ---------------------------------------------------------------------------------------
class Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"
        if self._in_script:
            self.scripts.append("")

    def handle_endtag(self, tag):
        self._in_script = False

    def handle_data(self, data):
        if self._in_script:
            self.scripts[-1] += data


def test_html_is_one_self_contained_page_that_nothing_in_it_can_break():
    rec = session()
    rec.commands.append(XSS)  # a command as hostile as the output
    page = formats.to_html(rec)
    parsed = Page()
    parsed.feed(page)
    # the recording, asciinema-player and the lines that start it: nothing else runs
    assert [t for t, _ in parsed.tags].count("script") == 3
    assert XSS not in page and "alert(1)" in page
    cast = formats.parse_asciicast(json.loads(parsed.scripts[0]))
    assert any(XSS in d for _, _, d in cast.events)  # escaped, yet all there
    assert "AsciinemaPlayer" in parsed.scripts[1] and "asciinema-player 3.18.0" in page
    assert not re.search(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//""", page)
    assert "<link" not in page and "default-src 'none'" in page
    assert "&lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt;" in page  # transcript, list
    for needed in ('id="player"', "data-command=", "<noscript>", ".ap-player"):
        assert needed in page
    assert "abcd2345" in page and "shop" in page and "api-1 (container api)" in page


def test_the_vendored_player_is_the_published_release_with_its_licence():
    vendor = Path(formats.__file__).with_name("vendor") / "asciinema_player"
    notes = (vendor / "VENDORED.md").read_text()
    assert (
        "asciinema-player 3.18.0" in notes and "Apache License" in (vendor / "LICENSE").read_text()
    )
    recorded = dict(re.findall(r"^([0-9a-f]{64})  (\S+)$", notes, re.M))
    assert sorted(recorded.values()) == [
        "LICENSE",
        "asciinema-player.css",
        "asciinema-player.min.js",
    ]
    for digest, name in recorded.items():  # unchanged since it was downloaded
        assert hashlib.sha256((vendor / name).read_bytes()).hexdigest() == digest, name


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed to play the page")
async def test_the_exported_page_plays_in_a_browser(tmp_path):
    rec = session()
    path = tmp_path / "session.html"
    path.write_text(formats.to_html(rec), "utf-8")
    async with open_page(path, tmp_path, ready="!!window.clustercordPlayer") as page:
        player = "window.clustercordPlayer"
        await page.until("!!document.querySelector('.ap-player')")
        # The 5.1 s between two commands plays as 2 s, as in the chat replay.
        expected = previous = 0.0
        played: dict[str, float] = {}  # each command's marker, in played time
        for t, code, data in lines(formats.to_asciicast_v2(rec))[1:]:
            expected, previous = expected + min(t - previous, 2), t
            if code == "m":
                played[data] = expected
        duration = await page.js(f"{player}.getDuration()", wait=True)
        assert duration == pytest.approx(expected, abs=0.01) and duration < rec.duration - 3
        await page.js(f"{player}.seek({duration})", wait=True)
        # at the end the player's screen reads as the text export does (the lines exist
        # before the seek's frame is drawn into them: wait for as many with text)
        expected_lines = [line.rstrip() for line in formats.to_text(rec).splitlines()]
        await page.until(
            "[...document.querySelectorAll('.ap-line')].filter(l => l.textContent.trim())"
            f".length >= {sum(1 for line in expected_lines if line)}"
        )
        shown = await page.js(
            "[...document.querySelectorAll('.ap-line')].map(l => l.textContent.trimEnd())"
        )
        assert [line for line in shown if line] == [line for line in expected_lines if line]
        # a marker on the progress bar per command (one at the very end is not drawn)
        drawn = [t for t in played.values() if t < expected]
        assert await page.js("document.querySelectorAll('.ap-marker').length") == len(drawn)
        # a command in the page's list seeks to its marker and plays from there
        await page.js(f"{player}.seek(0)", wait=True)
        await page.js("document.querySelector('#commands button[data-command=\"1\"]').click()")
        at = played["cat /app/config.json"]
        now = 0.0
        for _ in range(50):
            now = await page.js(f"Promise.resolve({player}.getCurrentTime())", wait=True)
            if now >= at - 0.05:
                break
            await asyncio.sleep(0.1)
        assert at - 0.05 <= now <= expected
        # one file: the page fetched nothing
        assert await page.js("performance.getEntriesByType('resource').length") == 0


def _full_screen(argv: list[str], keys: list[bytes], tmp_path: Path) -> Recording:
    """A real full-screen program run on a pseudo-terminal of 80x24, its output recorded as
    the plugin records a session (with redaction); ``keys`` typed a while apart."""
    import os
    import pty
    import select
    import time

    rec = recorder(command=argv, width=80, height=24)
    pid, fd = pty.fork()
    if pid == 0:  # the child: the program, on the terminal
        os.chdir(tmp_path)
        os.execvpe(
            argv[0],
            argv,
            {"TERM": "xterm", "LINES": "24", "COLUMNS": "80", "PATH": "/usr/bin:/bin"},
        )
    pending = list(keys)
    deadline = time.monotonic() + 20
    last_key = time.monotonic()
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.3)
        if ready:
            try:
                data = os.read(fd, 65536)
            except OSError:
                break
            if not data:
                break
            rec.output(data)
        elif pending and time.monotonic() - last_key > 0.5:
            os.write(fd, pending.pop(0))
            last_key = time.monotonic()
        elif not pending and time.monotonic() - last_key > 1.5:
            break
    os.close(fd)
    os.waitpid(pid, 0)
    return rec.finish(0)


@pytest.mark.skipif(not shutil.which("less"), reason="less is not installed")
def test_a_pager_replays_as_the_screens_it_showed(tmp_path):
    (tmp_path / "notes.txt").write_text("".join(f"line {n:03d} of the notes\n" for n in range(200)))
    rec = _full_screen(["less", "notes.txt"], [b" ", b"q"], tmp_path)
    text = formats.to_text(rec)
    assert "\x1b" not in text
    # The first page, then the second after a space: as the screen showed them.
    assert "line 000 of the notes\nline 001 of the notes\n" in text
    assert "line 023 of the notes" in text and "line 040 of the notes" in text
    assert "line 150 of the notes" not in text  # never shown
    lines = [line for _, line, _ in formats.timeline(rec)]
    assert "line 030 of the notes" in lines  # searchable by line


@pytest.mark.skipif(not shutil.which("top"), reason="top is not installed")
def test_top_replays_as_a_screen_with_its_header_and_columns(tmp_path):
    rec = _full_screen(["top", "-n", "2", "-d", "0.5"], [], tmp_path)
    text = formats.to_text(rec)
    assert re.search(r"(?m)^top - \d\d:\d\d:\d\d", text)
    assert re.search(r"(?m)^\s*PID\s+USER\s+.*COMMAND\s*$", text)
    assert "\x1b" not in text and "[?1049" not in text


@pytest.mark.skipif(not shutil.which("vim"), reason="vim is not installed")
def test_an_edit_in_vim_replays_as_the_screens_it_drew(tmp_path):
    """vim draws by cursor position: read as a stream of text it is a jumble
    (``workers = 4~      ~      ~``); read through the emulator, each screen as shown."""
    (tmp_path / "app.conf").write_text("port = 8080\nworkers = 4\n")
    keys = [b"Goworkers_max = 16\x1b", b":wq\r"]
    rec = _full_screen(["vim", "-u", "NONE", "-N", "app.conf"], keys, tmp_path)
    assert (tmp_path / "app.conf").read_text().endswith("workers_max = 16\n")  # it ran
    lines = formats.to_text(rec).splitlines()
    assert "workers_max = 16" in lines and "~" in lines
    assert any(line.startswith('"app.conf" 3L') for line in lines)
    assert not any("~ " in line or "4~" in line for line in lines)
    searchable = [line for _, line, _ in formats.timeline(rec)]
    assert "workers_max = 16" in searchable
