"""Logs an operator can ship: plain lines for a person, or one JSON object a line
(``--log-format json``) for Loki, Elasticsearch or ``jq``, each with the Discord interaction
(or console line) it belongs to. Secrets are masked with the audit log's patterns, those
plugins declare included, before a line is written, in both formats.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
import time
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import Any, TextIO

from clustercord.services.audit import mask_text

request_id: ContextVar[str | None] = ContextVar("clustercord_request", default=None)
"""The interaction (or console line) being served; contextvars follow it into its tasks."""

Masker = Callable[[str], str]


@contextlib.contextmanager
def serving(request: str) -> Iterator[None]:
    """Log lines written inside belong to ``request`` (an interaction id, ``console-3``)."""
    token = request_id.set(request)
    try:
        yield
    finally:
        request_id.reset(token)


class _Masked(logging.Formatter):
    def __init__(self, masker: Masker, fmt: str | None = None) -> None:
        super().__init__(fmt)
        self.masker = masker

    def text(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.exc_info:
            message += "\n" + self.formatException(record.exc_info)
        return self.masker(message)


class TextFormatter(_Masked):
    def format(self, record: logging.LogRecord) -> str:
        request = request_id.get()
        where = f" [{request}]" if request else ""
        return f"{record.levelname.lower()}: {record.name}{where}: {self.text(record)}"


class JsonFormatter(_Masked):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": self.text(record),
        }
        if request_id.get():
            entry["request"] = request_id.get()
        return json.dumps(entry, ensure_ascii=False)


def configure(
    log_format: str = "text", level: str = "warning", stream: TextIO | None = None
) -> logging.Handler:
    """One handler on the root logger, in ``log_format`` (``text`` or ``json``)."""
    formatter = (JsonFormatter if log_format == "json" else TextFormatter)(mask_text)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h.formatter, _Masked)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    return handler


def mask_with(masker: Masker) -> None:
    """Mask with ``masker`` from now on (the kernel's audit log: plugins' patterns too)."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler.formatter, _Masked):
            handler.formatter.masker = masker
