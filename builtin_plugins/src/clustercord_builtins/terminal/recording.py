"""A recorded terminal session, and the recorder that builds one as the session runs.

Everything goes through the redactor on the way in, so a :class:`Recording` never holds a
secret in clear: not in its output, its input, its command list, nor its markers.

Times are seconds since the session started, on the monotonic clock (a wall-clock jump
mid-session cannot reorder events); only ``started`` is wall-clock Unix time.
"""

from __future__ import annotations

import base64
import codecs
import dataclasses
import re
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from clustercord_builtins.terminal import rules
from clustercord_builtins.terminal.ansi import strip_ansi
from clustercord_builtins.terminal.redaction import KNOWN_MIN, Finding, Redactor, StreamRedactor

EVENT_CODES = ("o", "i", "m", "r", "x")
"""Output, input, marker (a command was entered), resize, exit: asciicast's codes."""
HIDDEN_INPUT = "********"
"""What a reply to a password prompt is recorded as."""

# The terminal does not echo what is typed at these, so it is a secret.
_PASSWORD_PROMPT = re.compile(
    r"(?i)(?:password|passwd|passphrase|pass phrase|\bpin\b|secret|token)[^\n]{0,80}:\s*$"
)
_PROMPT_TAIL = 256  # characters of the last output line kept to recognise a prompt
_LINE_END = re.compile(r"\r\n|\r|\n")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def new_session_id() -> str:
    """Eight characters of base32 (40 random bits), lower case: safe in URLs and chat."""
    return base64.b32encode(secrets.token_bytes(5)).decode().lower()


@dataclass
class SessionInfo:
    """Who ran what, where and when: the fields a :class:`Recording` and the summary of a
    stored one (``storage.Summary``) both begin with."""

    id: str
    user: str
    cluster: str
    namespace: str
    pod: str
    container: str | None
    command: list[str]
    """The argv started, such as ``["sh"]`` or ``["sh", "-c", "ls"]``."""
    started: float


@dataclass
class Recording(SessionInfo):
    width: int
    height: int
    events: list[tuple[float, str, str]] = field(default_factory=list)
    """``(seconds since start, code, data)``, redacted, in order; codes as :data:`EVENT_CODES`."""
    commands: list[str] = field(default_factory=list)
    """The lines typed, redacted, in order: the n-th is the n-th ``m`` event's label."""
    duration: float = 0.0
    exit_code: int | None = None
    redactions: int = 0
    """Secrets masked, in output and input together."""

    def command_times(self) -> list[float]:
        """When each command was entered (for "jump to command N")."""
        return [t for t, code, _ in self.events if code == "m"]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["events"] = [list(event) for event in self.events]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Recording:
        known = {f.name for f in dataclasses.fields(cls)}
        fields = {k: v for k, v in data.items() if k in known}
        fields["events"] = [(float(t), str(c), str(d)) for t, c, d in data.get("events", [])]
        fields["command"] = list(data.get("command", []))
        fields["commands"] = list(data.get("commands", []))
        return cls(**fields)


class Recorder:
    """Builds a :class:`Recording` from a live session: call :meth:`output` with what the
    pod sends, :meth:`input` with what the user types, :meth:`finish` at the end.

    Output is released as the redactor allows: a line once it is complete, a block of a
    ``kind: Secret`` once its kind is known. Call :meth:`flush` when output goes quiet
    (a prompt waits on an unfinished line); :meth:`input` flushes first by itself.
    """

    def __init__(
        self,
        *,
        id: str,
        user: str,
        cluster: str,
        namespace: str,
        pod: str,
        container: str | None,
        command: list[str],
        width: int = 80,
        height: int = 24,
        record_input: bool = True,
        known_secrets: Iterable[str] = (),
        redactor: StreamRedactor | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.id = id
        self.command = list(command)  # as given: what to run (the recording keeps it masked)
        self.record_input = record_input
        # Values masked wherever they appear (the Secrets the pod uses, see known_secrets).
        self._known = [k for k in known_secrets if len(k.strip()) >= KNOWN_MIN]
        self._redactor = redactor or StreamRedactor()
        self._redactor.learn(self._known)
        self._clock = clock
        self._start = clock()
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._last_line = ""  # raw, in memory only: to recognise a password prompt
        self._typed = ""  # input up to its line end
        self._input_redactions = 0
        self._recording = Recording(
            id=id,
            user=user,
            cluster=cluster,
            namespace=namespace,
            pod=pod,
            container=container,
            command=[self._redact(arg)[0] for arg in command],
            started=wall(),
            width=width,
            height=height,
        )

    def _redact(self, text: str) -> tuple[str, list[Finding]]:
        return Redactor(known=self._known).redact(text)

    def _event(self, code: str, data: str) -> None:
        self._recording.events.append((max(0.0, self._clock() - self._start), code, data))

    def output(self, data: bytes) -> str:
        """Record output; the part released (redacted), for the caller to show."""
        # The incremental decoder keeps a multi-byte character cut between frames whole.
        text = self._decoder.decode(data)
        if text:  # (not the whole frame joined and split: a frame is 32 KB)
            end = text.rfind("\n") + 1
            last = text[max(end, len(text) - _PROMPT_TAIL) :]
            self._last_line = (last if end else self._last_line + last)[-_PROMPT_TAIL:]
        return self._emit(self._redactor.feed(text))

    def flush(self, *, give_up: bool = False) -> str:
        """Output went quiet: release what the redactor can (see
        :meth:`.StreamRedactor.flush`); the text released. (Half a multi-byte character
        stays with the decoder until the rest comes.)"""
        return self._emit(self._redactor.flush(give_up=give_up))

    def _emit(self, text: str) -> str:
        if text:
            self._event("o", text)
        return text

    def input(self, text: str) -> str:
        """Record what the user typed; what was recorded of it (redacted, or
        :data:`HIDDEN_INPUT` for a password prompt's answer, or "" when input is not
        recorded). Each completed line is a command: an ``i`` event, an ``m`` marker named
        after it, and an entry of ``commands``. Control keys (``^C``) are recorded at once.

        The user answered what was shown: the unfinished line is a prompt (the redactor
        learns it) and is released now, masked conservatively."""
        self._redactor.note_prompt()
        self.flush(give_up=True)
        recorded = []
        self._typed += text
        parts = _LINE_END.split(self._typed)
        ends = _LINE_END.findall(self._typed)
        self._typed = parts.pop()
        for line, end in zip(parts, ends, strict=True):
            recorded.append(self._line(line, end))
        if self._typed and _CONTROL.search(self._typed):
            recorded.append(self._keys(self._typed))
            self._typed = ""
        return "".join(recorded)

    def _line(self, line: str, end: str) -> str:
        if _PASSWORD_PROMPT.search(strip_ansi(self._last_line)):
            self._last_line = ""
            if not self.record_input:
                return ""
            self._event("i", HIDDEN_INPUT + end)
            return HIDDEN_INPUT + end
        self._last_line = ""
        redacted, findings = self._redact(line)
        self._input_redactions += len(findings)
        # What the user typed as a secret stays masked when the shell prints it back bare.
        self._redactor.learn(line[f.start : f.end] for f in findings)
        command = _CONTROL.sub("", redacted).strip()
        if self.record_input:
            self._event("i", redacted + end)
        if command:
            self._event("m", command)
            self._recording.commands.append(command)
        self._redactor.mask_all(rules.reveals_secret(line), echo=line.strip())
        return redacted + end if self.record_input else ""

    def _keys(self, keys: str) -> str:
        redacted, findings = self._redact(keys)
        self._input_redactions += len(findings)
        if not self.record_input:
            return ""
        self._event("i", redacted)
        return redacted

    def resize(self, cols: int, rows: int) -> None:
        recording = self._recording
        if not recording.events:
            recording.width, recording.height = cols, rows  # the size it starts with
        self._event("r", f"{cols}x{rows}")

    def finish(self, exit_code: int | None) -> Recording:
        """The recording: held output released, the exit status last."""
        rest = self._redactor.feed(self._decoder.decode(b"", final=True))
        self._emit(rest + self._redactor.end())
        if self._typed:
            self._keys(self._typed)
            self._typed = ""
        self._event("x", "" if exit_code is None else str(exit_code))
        recording = self._recording
        recording.duration = recording.events[-1][0]
        recording.exit_code = exit_code
        recording.redactions = len(self._redactor.findings) + self._input_redactions
        return recording
