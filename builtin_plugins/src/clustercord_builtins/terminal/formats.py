"""Exports of a recording: asciicast v2/v3 (asciinema), the spec's JSON, a plain text
transcript, one self-contained HTML page, and the timed lines of a chat replay.

asciicast: https://docs.asciinema.org/manual/asciicast/v2/ and .../v3/. Unknown header keys
are ignored by readers, so ours carry what a round trip needs under ``"clustercord"``.
"""

from __future__ import annotations

import html
import json
import shlex
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from clustercord_builtins.terminal.ansi import strip_ansi
from clustercord_builtins.terminal.player import (
    PAGE_STYLE,
    PLAYER_VERSION,
    START_SCRIPT,
    player_script,
    player_style,
)
from clustercord_builtins.terminal.recording import EVENT_CODES, Recording
from clustercord_builtins.terminal.vt import Terminal

__all__ = [
    "parse_asciicast",
    "strip_ansi",
    "timeline",
    "to_asciicast_v2",
    "to_asciicast_v3",
    "to_html",
    "to_json",
    "to_text",
    "transcript_lines",
]

TERM = "xterm-256color"


def _title(rec: Recording) -> str:
    return f"{rec.namespace}/{rec.pod} on {rec.cluster} ({rec.id})"


def _extras(rec: Recording) -> dict[str, Any]:
    return {
        "id": rec.id,
        "user": rec.user,
        "cluster": rec.cluster,
        "namespace": rec.namespace,
        "pod": rec.pod,
        "container": rec.container,
        "argv": rec.command,
        "exit_code": rec.exit_code,
        "redactions": rec.redactions,
    }


def _ndjson(header: dict[str, Any], events: list[list[Any]]) -> str:
    lines = [json.dumps(header, ensure_ascii=False)]
    lines += [json.dumps(event, ensure_ascii=False) for event in events]
    return "\n".join(lines) + "\n"


def to_asciicast_v2(rec: Recording) -> str:
    """asciicast v2: absolute times. v2 has no exit event; the status is in the header."""
    header = {
        "version": 2,
        "width": rec.width,
        "height": rec.height,
        "timestamp": int(rec.started),
        "duration": round(rec.duration, 6),
        "command": shlex.join(rec.command),
        "title": _title(rec),
        "env": {"TERM": TERM},
        "clustercord": _extras(rec),
    }
    events = [[round(t, 6), code, data] for t, code, data in _ordered(rec) if code != "x"]
    return _ndjson(header, events)


def to_asciicast_v3(rec: Recording) -> str:
    """asciicast v3: each event's interval since the previous one, in whole milliseconds.
    Intervals are differences of rounded absolute times (the rounding error is carried,
    never accumulated), so they add up to the last event's time within half a millisecond."""
    header = {
        "version": 3,
        "term": {"cols": rec.width, "rows": rec.height, "type": TERM},
        "timestamp": int(rec.started),
        "command": shlex.join(rec.command),
        "title": _title(rec),
        "tags": ["clustercord", rec.cluster, rec.namespace],
        "clustercord": _extras(rec),
    }
    events = []
    previous = 0
    for t, code, data in _ordered(rec):
        now = round(t * 1000)
        events.append([(now - previous) / 1000, code, data])
        previous = now
    return _ndjson(header, events)


def _ordered(rec: Recording) -> list[tuple[float, str, str]]:
    """Events with times that never go backwards (players require it)."""
    latest = 0.0
    events = []
    for t, code, data in rec.events:
        latest = max(latest, t)
        events.append((latest, code, data))
    return events


def to_json(rec: Recording) -> dict[str, Any]:
    """The spec's "Recording Format". ``user`` is the Discord user id (stable, unlike a
    display name; ``<@id>`` in Discord shows it); ``redactions`` counts masked secrets."""
    return {
        "session_id": rec.id,
        "user": rec.user,
        "cluster": rec.cluster,
        "pod": rec.pod,
        "namespace": rec.namespace,
        "start_time": datetime.fromtimestamp(rec.started, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "duration": round(rec.duration, 3),
        "frames": [
            {"timestamp": round(t, 3), "type": "input" if code == "i" else "output", "data": data}
            for t, code, data in rec.events
            if code in ("i", "o")
        ],
        "commands": list(rec.commands),
        "exit_code": rec.exit_code,
        "redactions": rec.redactions,
    }


def to_text(rec: Recording) -> str:
    """The output as the terminal showed it (``asciinema convert -f txt``), read through a
    terminal emulator (:mod:`.vt`): escape sequences applied, a full-screen program's
    screens as blocks of lines."""
    terminal = Terminal(rec.height)
    lines = [line for _, code, data in rec.events if code == "o" for line in terminal.feed(data)]
    if terminal.pending:
        lines.append(terminal.pending)
    return "\n".join(lines) + "\n" if lines else ""


def transcript_lines(rec: Recording) -> list[tuple[float, str]]:
    """The session as timed lines, for a replay in chat: each command as ``$ command`` at
    the time it was entered, each output line at the time it began. A terminal's echo of
    the command (``/ # ls`` after ``$ ls``) is left out."""
    return [(t, text) for t, text, _ in timeline(rec)]


def timeline(rec: Recording) -> list[tuple[float, str, int | None]]:
    """:func:`transcript_lines` with, for each line, the index in ``rec.commands`` of the
    command it belongs to (the command itself, or the last one entered before it)."""
    lines: list[tuple[float, str, int | None]] = []
    screen = Terminal(rec.height)
    began: float | None = None
    echo: str | None = None
    command: int | None = None
    for t, code, data in rec.events:
        if code == "m":
            command = 0 if command is None else command + 1
            lines.append((t, f"$ {data}", command))
            echo = data
        elif code == "o":
            began = t if began is None else began
            for line in screen.feed(data):
                if echo is None or not line.endswith(echo):
                    lines.append((began, line, command))
                echo = None  # only the line right after the command can be its echo
                began = t
            began = began if screen.pending else None
    if screen.pending:
        lines.append((began or 0.0, screen.pending, command))
    return lines


def searchable_text(rec: Recording) -> Iterator[str]:
    """What the search index reads of ``rec``: every line of :func:`timeline` (perhaps with
    trailing blanks, and the terminal's echo of each command too), in blocks of whole
    lines. Only the index's trigrams need it: more of them only adds candidates (each is
    then read line by line), none missing keeps every match."""
    for _, code, data in rec.events:
        if code == "m":
            yield f"$ {data}\n"
    screen = Terminal(rec.height)
    for _, code, data in rec.events:
        if code == "o":
            yield screen.feed_text(data)
    yield screen.pending


def to_html(rec: Recording) -> str:
    """One page that works offline: metadata, asciinema-player (play/pause, speed, seeking,
    a marker per command; see :mod:`.player`), the list of commands to jump to and, without
    JavaScript, the plain transcript. The recording is embedded as JSON with ``<``, ``>`` and
    ``&`` escaped, so nothing in it can close the script."""
    meta = [
        ("Session", rec.id),
        ("User", rec.user),
        ("Cluster", rec.cluster),
        ("Namespace", rec.namespace),
        ("Pod", rec.pod + (f" (container {rec.container})" if rec.container else "")),
        ("Command", shlex.join(rec.command)),
        ("Started", datetime.fromtimestamp(rec.started, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")),
        ("Duration", f"{rec.duration:.1f} s"),
        ("Exit code", "" if rec.exit_code is None else str(rec.exit_code)),
        ("Secrets masked", str(rec.redactions)),
    ]
    rows = "\n".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in meta
    )
    commands = "\n".join(
        f'<li><button type="button" data-command="{n}">{html.escape(c)}</button></li>'
        for n, c in enumerate(rec.commands)
    )
    title = html.escape(f"Terminal session {_title(rec)}")
    # The player's terminal emulator is WebAssembly: 'wasm-unsafe-eval' lets it compile,
    # nothing else may load or run (no network, no eval).
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; \
style-src 'unsafe-inline'; script-src 'unsafe-inline' 'wasm-unsafe-eval'; img-src data:; \
font-src data:">
<title>{title}</title>
<!-- asciinema-player {PLAYER_VERSION} (Apache-2.0): github.com/asciinema/asciinema-player -->
<style>{player_style()}</style>
<style>{PAGE_STYLE}</style>
</head>
<body>
<h1>{title}</h1>
<table class="meta">
{rows}
</table>
<div id="player"></div>
<noscript><pre class="transcript">{html.escape(to_text(rec))}</pre></noscript>
<h2>Commands</h2>
<ol id="commands">
{commands}
</ol>
<script type="application/json" id="recording">{_script_json(to_asciicast_v2(rec))}</script>
<script>{player_script()}</script>
<script>{START_SCRIPT}</script>
</body>
</html>
"""


def _script_json(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=True)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


# -- reading asciicast back -------------------------------------------------------------
def parse_asciicast(text: str) -> Recording:
    """A recording from asciicast v2 or v3 text; ValueError naming the line if malformed.
    Unknown header keys and event codes are ignored, as the format requires."""
    lines = text.splitlines()
    if not lines:
        raise ValueError("line 1: empty file, expected an asciicast header")
    header = _json_line(lines[0], 1)
    if not isinstance(header, dict):
        raise ValueError("line 1: the header must be a JSON object")
    version = header.get("version")
    if version == 2:
        width, height = header.get("width"), header.get("height")
    elif version == 3:
        term = header.get("term")
        width, height = (term.get("cols"), term.get("rows")) if isinstance(term, dict) else (0, 0)
    else:
        raise ValueError(f"line 1: asciicast version {version!r} is not 2 or 3")
    if not (isinstance(width, int) and isinstance(height, int) and width > 0 and height > 0):
        raise ValueError("line 1: the header needs the terminal size (positive integers)")
    events = _events(lines, version)
    found = header.get("clustercord")
    extras: dict[str, Any] = found if isinstance(found, dict) else {}
    markers = [data for _, code, data in events if code == "m"]
    typed = [data.strip() for _, code, data in events if code == "i" and data.strip()]
    exits = [data for _, code, data in events if code == "x"]
    exit_code = extras.get("exit_code")
    if exits and exits[-1].lstrip("-").isdigit():
        exit_code = int(exits[-1])
    duration = header.get("duration", events[-1][0] if events else 0.0)
    return Recording(
        id=str(extras.get("id", "")),
        user=str(extras.get("user", "")),
        cluster=str(extras.get("cluster", "")),
        namespace=str(extras.get("namespace", "")),
        pod=str(extras.get("pod", "")),
        container=extras.get("container"),
        command=list(extras.get("argv") or shlex.split(str(header.get("command") or ""))),
        started=float(header.get("timestamp") or 0),
        width=width,
        height=height,
        events=events,
        commands=markers or typed,
        duration=float(duration),
        exit_code=exit_code,
        redactions=int(extras.get("redactions", 0)),
    )


def _json_line(line: str, number: int) -> Any:
    try:
        return json.loads(line)
    except json.JSONDecodeError as exc:
        raise ValueError(f"line {number}: not valid JSON ({exc.msg})") from None


def _events(lines: list[str], version: int) -> list[tuple[float, str, str]]:
    events = []
    now = 0.0
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip() or (version == 3 and line.startswith("#")):
            continue
        event = _json_line(line, number)
        if not (
            isinstance(event, list)
            and len(event) == 3
            and isinstance(event[0], int | float)
            and not isinstance(event[0], bool)
            and isinstance(event[1], str)
            and isinstance(event[2], str)
        ):
            raise ValueError(f"line {number}: an event is [time, code, data]")
        if event[0] < 0:
            raise ValueError(f"line {number}: negative time {event[0]}")
        now = now + event[0] if version == 3 else float(event[0])
        if event[1] in EVENT_CODES:
            events.append((round(now, 6), event[1], event[2]))
    return events
