"""The pipe's codec: SDK values round-trip; nothing but the allowlisted types is built."""

from __future__ import annotations

import os

import pytest

from clustercord.isolation.protocol import (
    MAX_FRAME,
    FrameError,
    encode,
    error_from_wire,
    from_wire,
    read_frame,
    to_wire,
)
from clustercord_sdk import Event, File, Invocation, Reply
from clustercord_sdk.errors import PermissionDenied
from clustercord_sdk.reply import Button, Card, Field, Progress
from clustercord_sdk.services import Job


def test_sdk_values_round_trip():
    reply = Reply(
        text="hi",
        cards=[Card(title="t", fields=[Field("a", "b")])],
        buttons=[Button("Go", action="actions:go", value={"$t": "sneaky"})],
        files=[File("x.bin", b"\x00\x01")],
        progress=Progress(1, 2, "half"),
        data={"n": 1, "$t": "not a tag"},
    )
    invocation = Invocation(user_id="1", command=("a", "b"), roles=frozenset({"r"}))
    job = Job("j", "p", "jobs:tick", "every 1h", 0.0, payload={"k": [1, 2]})
    event = Event("pod:start", namespace="n", name="p", labels={"app": "x"})
    plain = {"raw": b"\xff", "$t": "a key like a tag", "list": [1, "two", None]}
    for value in (reply, invocation, job, event, plain):
        assert from_wire(to_wire(value)) == value


def test_unknown_types_are_refused_not_built():
    with pytest.raises(FrameError):
        from_wire({"$t": "Kernel", "v": {}})
    with pytest.raises(FrameError):
        from_wire({"$t": "os.system", "v": {"command": "true"}})


def test_errors_keep_only_sdk_classes():
    assert isinstance(
        error_from_wire({"type": "PermissionDenied", "message": "no"}, remote=RuntimeError),
        PermissionDenied,
    )
    other = error_from_wire({"type": "SystemExit", "message": "x"}, remote=lambda n, m: KeyError(n))
    assert isinstance(other, KeyError)


def test_frames_over_the_limit_are_refused():
    read, write = os.pipe()
    try:
        os.write(write, (MAX_FRAME + 1).to_bytes(4, "big"))
        with pytest.raises(FrameError):
            read_frame(read)
        os.write(write, encode({"op": "x"}))
        assert read_frame(read) == {"op": "x"}
        os.close(write)
        assert read_frame(read) is None
    finally:
        os.close(read)
