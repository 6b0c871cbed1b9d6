"""PromQL probes: one instant query against Prometheus' HTTP API, read to one number.

The answer's shape is Prometheus' documented one
(https://prometheus.io/docs/prometheus/latest/querying/api/#instant-queries and
#format-overview): ``{"status": "success"|"error", "data": {"resultType": ..., "result": ...},
"errorType": ..., "error": ...}``; an instant vector's ``result`` is a list of
``{"metric": {...}, "value": [<unix time>, "<value as a string>"]}``, a scalar's is
``[<unix time>, "<value>"]``; values may be ``"NaN"``, ``"+Inf"``, ``"-Inf"``. Errors answer
400 (bad query), 422 (cannot be executed) or 503 (timed out, aborted), still with that JSON.

A probe needs one finite number: an empty vector, several series, a range result, NaN or an
infinity is a :class:`ProbeError` naming what came back and how to fix the query, as is an
answer that is slow, not JSON, too large or not Prometheus' shape. Nothing here raises
anything else for a bad answer.
"""

from __future__ import annotations

import asyncio
import json
import math
import socket
import urllib.parse
from typing import Any

import aiohttp

from clustercord_builtins.chaos.plan_file import host_problem

MAX_BYTES = 1024 * 1024
"""An instant query for one number answers a few hundred bytes; more is a mistake."""
PATH = "/api/v1/query"


class ProbeError(Exception):
    """A probe that could not observe a value; the message says why, for the report."""


def query_url(base: str) -> str:
    """``base`` (``http://prometheus:9090``, or with a path prefix) + ``/api/v1/query``."""
    return base.rstrip("/") + PATH


async def check_host(url: str) -> None:
    """Refuse ``url`` if its host resolves, now, to a metadata or link-local address (it
    was checked as text when configured; names can change what they point to)."""
    host = urllib.parse.urlsplit(url).hostname or ""
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, None)
    except (OSError, UnicodeError) as error:
        raise ProbeError(f"cannot resolve {host}: {error}") from None
    for address in {info[4][0] for info in infos}:
        problem = host_problem(str(address))
        if problem:
            raise ProbeError(f"{host} resolves to {address}: {problem}")


async def query(base: str, promql: str, timeout: float) -> float:
    """The value of ``promql`` at this instant, from the Prometheus at ``base``."""
    url = query_url(base)
    await check_host(url)
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session,
            session.get(url, params={"query": promql}, allow_redirects=False) as answer,
        ):
            body = await answer.content.read(MAX_BYTES + 1)
            status, kind = answer.status, answer.content_type
    except TimeoutError:
        raise ProbeError(f"Prometheus at {base} did not answer within {timeout:g} s") from None
    except (aiohttp.ClientError, OSError, socket.gaierror) as error:
        raise ProbeError(f"cannot reach Prometheus at {base}: {error}") from None
    if len(body) > MAX_BYTES:
        raise ProbeError(f"Prometheus answered more than {MAX_BYTES:,} bytes for one number")
    return read_answer(status, kind, body)


def read_answer(status: int, content_type: str, body: bytes) -> float:
    """One number out of an answer of the instant-query API, or a :class:`ProbeError`."""
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        # Not the body itself: a url: in an experiment file may name any server the bot
        # reaches, and the report goes to whoever ran the file.
        raise ProbeError(
            f"Prometheus answered {status} with something that is not JSON ({content_type}, "
            f"{len(body):,} bytes); is the url Prometheus' own (it ends before /api/v1/query)?"
        ) from None
    if not isinstance(document, dict):
        raise ProbeError(f"Prometheus answered {status} with JSON that is not its API's shape")
    if document.get("status") != "success" or not 200 <= status < 300:
        what = document.get("errorType") or "error"
        why = str(document.get("error") or document.get("status") or "no reason given")[:300]
        raise ProbeError(f"Prometheus answered {status}: {what}: {why}")
    data = document.get("data")
    if not isinstance(data, dict):
        raise ProbeError("Prometheus' answer has no data")
    kind, result = data.get("resultType"), data.get("result")
    if kind == "scalar":
        return _number(result, "the scalar")
    if kind == "vector":
        if not isinstance(result, list):
            raise ProbeError("Prometheus' vector is not a list")
        if not result:
            raise ProbeError(
                "the query returned no series (an empty vector): no metric matched; check its "
                "name and labels, or add 'or vector(0)' if none means zero"
            )
        if len(result) > 1:
            raise ProbeError(
                f"the query returned {len(result)} series; a probe needs one number "
                "(aggregate them, e.g. sum(...) or max(...))"
            )
        series = result[0] if isinstance(result[0], dict) else {}
        return _number(series.get("value"), "the series")
    raise ProbeError(
        f"the query returned a {kind or 'result of no type'}; a probe needs an instant vector "
        "or a scalar (no [5m] range selector at the outside)"
    )


def _number(sample: Any, what: str) -> float:
    if not (isinstance(sample, list) and len(sample) == 2):
        raise ProbeError(f"{what} is not a [time, value] pair")
    try:
        value = float(sample[1])
    except (TypeError, ValueError):
        raise ProbeError(f"{what}'s value {str(sample[1])[:40]!r} is not a number") from None
    if math.isnan(value):
        raise ProbeError(
            f"{what}'s value is NaN (e.g. a ratio over no requests: 0/0); "
            "guard the divisor or add 'or vector(0)'"
        )
    if math.isinf(value):
        raise ProbeError(f"{what}'s value is {sample[1]} (a division by zero?)")
    return value
