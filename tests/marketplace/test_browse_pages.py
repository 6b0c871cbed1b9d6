"""``/plugin browse`` pages: ◀ ▶ buttons in Discord (pressed through the fake Discord, only
by an admin), a ``next:`` line in the console that keeps the filters; autocomplete of names
fetches the index when nothing was fetched yet, within the time Discord waits."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import replace

import pytest

from tests.discord.conftest import start_bot
from tests.discord.test_interactions import button

ADMIN = "100000000000000077"
MEMBER = "100000000000000088"


def big_index(folder, signer, entries: int) -> None:
    """A signed index of ``entries`` plugins named p00000… (stars = their number), as
    benchmarks/marketplace.py makes for its 1,000-entry browse (no wheels: browsing only)."""
    from clustercord.plugins.index import INDEX_FORMAT, iso

    now = time.time()
    version = {
        "version": "1.0.0",
        "description": "A benchmark entry",
        "api": ">=1.0,<2",
        "distribution": "bench-plugin",
        "wheel": "bench_plugin-1.0.0-py3-none-any.whl",
        "sha256": "0" * 64,
        "size": 1000,
        "permissions": ["pods:read"],
        "commands": ["bench"],
    }
    plugins = [
        {"name": f"p{i:05d}", "category": "bench", "stars": i, "versions": [version]}
        for i in range(entries)
    ]
    data = json.dumps(
        {
            "format": INDEX_FORMAT,
            "name": "bench",
            "generated": iso(now),
            "valid_until": iso(now + 86400),
            "plugins": plugins,
        }
    ).encode()
    folder.mkdir(parents=True)
    (folder / "index.json").write_bytes(data)
    (folder / "index.json.asc").write_text(signer.keys.signer(signer.fingerprint).detach_sign(data))


@pytest.fixture
def paged_harness(market_harness, publisher, tmp_path):
    """23 signed entries (three pages of ten), most starred first: p00022 … p00000."""
    big_index(tmp_path / "big", publisher, 23)
    market_harness.settings = replace(
        market_harness.settings,
        marketplace={
            **market_harness.settings.marketplace,
            "sources": [{"name": "bench", "url": str(tmp_path / "big")}],
        },
    )
    return market_harness


def names(reply) -> list[str]:
    return [e["name"] for e in reply.data["entries"]]


async def test_console_pages_keep_their_filters_and_buttons_reach_the_same_page(paged_harness):
    from clustercord.dispatcher import Invocation

    kernel = await paged_harness.start()
    first = (await paged_harness.run('/plugin browse category:bench query:"benchmark entry"')).reply
    assert names(first) == [f"p{i:05d}" for i in range(22, 12, -1)]
    assert (
        'Page 1/3 · next: /plugin browse category:bench query:"benchmark entry" page:2'
        in first.text
    )
    previous, following = first.buttons
    assert previous.disabled and not following.disabled
    assert following.value == {
        "options": {"category": "bench", "query": "benchmark entry"},
        "page": 2,
    }
    typed = (
        await paged_harness.run('/plugin browse category:bench query:"benchmark entry" page:2')
    ).reply
    pressed = await kernel.door.action(
        Invocation(user_id="console", command=("plugin", "browse"), options={}),
        plugin="plugins",
        action=following.action,
        value=following.value,
        send=_ignore,
        ask=_yes,
    )
    assert pressed.status == "ok"
    assert names(pressed.reply) == names(typed) == [f"p{i:05d}" for i in range(12, 2, -1)]
    last = (await paged_harness.run("/plugin browse page:9")).reply  # clamped to the last
    assert last.data["page"] == 3 and names(last) == ["p00002", "p00001", "p00000"]
    assert last.buttons[1].disabled and "next:" not in last.text
    other = (await paged_harness.run("/plugin browse category:games")).reply
    assert other.data["total"] == 0 and other.buttons == []  # one page: no buttons
    bad = await paged_harness.run("/plugin browse page:0")
    assert not bad.ok


async def _ignore(reply):
    return None


async def _yes(confirmation):
    return True


async def test_discord_next_and_previous_buttons_page_for_admins_only(fake_discord, paged_harness):
    from clustercord.config import AccessConfig

    paged_harness.settings = replace(
        paged_harness.settings, access=AccessConfig(admins=frozenset({f"user:{ADMIN}"}))
    )
    bot = await start_bot(fake_discord, paged_harness)
    try:
        shown = await fake_discord.invoke(bot.url, "plugin browse", {}, user_id=ADMIN)
        await fake_discord.wait_for(lambda: shown.message is not None)
        assert "Page 1/3" in shown.message["content"]
        assert button(shown.message, "◀ Previous").get("disabled")

        outsider = await fake_discord.click(
            bot.url, shown.message, button(shown.message, "Next ▶")["custom_id"], user_id=MEMBER
        )
        await fake_discord.wait_for(lambda: outsider.message is not None)
        assert "Page 2/3" not in str(outsider.message)

        pressed = await fake_discord.click(
            bot.url, shown.message, button(shown.message, "Next ▶")["custom_id"], user_id=ADMIN
        )
        await fake_discord.wait_for(lambda: pressed.message is not None)
        assert "Page 2/3" in pressed.message["content"]
        assert "p00012" in str(pressed.message) and "p00022" not in str(pressed.message)
        back = await fake_discord.click(
            bot.url,
            pressed.message,
            button(pressed.message, "◀ Previous")["custom_id"],
            user_id=ADMIN,
        )
        await fake_discord.wait_for(lambda: back.message is not None)
        assert "Page 1/3" in back.message["content"] and "p00022" in str(back.message)
    finally:
        await bot.server.close()


async def test_autocomplete_fetches_a_cold_index_in_bounded_time(
    fake_discord, paged_harness, tmp_path
):
    bot = await start_bot(fake_discord, paged_harness)
    try:
        # Nothing fetched since the start: the names come from a fetch made for the keystroke.
        offered = await fake_discord.autocomplete(
            bot.url, "plugin install", focused="name", value="p0001"
        )
        assert [c["value"] for c in offered.choices] == [f"p0001{i}" for i in range(10)]
    finally:
        await bot.server.close()


async def test_a_slow_source_gives_no_names_in_time_and_names_once_fetched(paged_harness):
    kernel = await paged_harness.start()
    sources = kernel.marketplace.sources
    fetching = asyncio.Event()
    real = sources.catalog

    async def slow_catalog(**kwargs):
        fetching.set()
        await asyncio.sleep(1.0)  # an index server that answers late
        return await real(**kwargs)

    sources.catalog = slow_catalog
    service = paged_harness.plugin("plugins").context.plugins
    began = time.monotonic()
    assert await service.market_names_fetched(within=0.2) == []
    assert time.monotonic() - began < 0.6  # bounded: no wait for the slow source
    assert fetching.is_set()
    await asyncio.sleep(1.3)  # the fetch went on in the background
    assert "p00022" in await service.market_names_fetched(within=0.2)
