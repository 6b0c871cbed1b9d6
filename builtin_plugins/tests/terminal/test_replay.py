"""A live replay's controls: pause holds the recording's time, resume and faster redraw,
stop ends a wait at once."""

from __future__ import annotations

import asyncio

from clustercord_builtins.terminal.session import Replay


async def test_a_paused_replay_waits_until_resumed_and_each_change_asks_for_a_redraw():
    with Replay("1001", speed=1.0) as replay:
        assert Replay.running(replay.id) is replay
        replay.pause()
        assert await replay.wait(0.05) == 0.05  # changed: redraw first, nothing waited yet
        waiting = asyncio.create_task(replay.wait(0.05))
        await asyncio.sleep(0.3)
        assert not waiting.done()  # paused: the recording's time stands still
        replay.resume()
        assert await waiting == 0.05
        assert await replay.wait(0.05) is None
    assert Replay.running(replay.id) is None


async def test_faster_doubles_the_speed_and_stop_wakes_a_paused_replay():
    with Replay("1001", speed=2.0) as replay:
        replay.faster()
        assert replay.speed == 4.0 and await replay.wait(1.0) == 1.0
        replay.pause()
        await replay.wait(1.0)
        waiting = asyncio.create_task(replay.wait(1.0))
        await asyncio.sleep(0.1)
        replay.stop()
        assert await asyncio.wait_for(waiting, 1.0) is None
