"""Replies rendered for Discord never exceed a limit, and nothing is silently lost.

Every rendered message is checked with the SDK testing kit's own validator of
Discord's limits (written independently of the renderer).
"""

from __future__ import annotations

import itertools
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clustercord.frontends.discord.render import REPLY_FILE, TABLE_WIDTH, Renderer, table_text
from clustercord_sdk.reply import (
    Button,
    Card,
    Confirmation,
    Field,
    File,
    Modal,
    Reply,
    Select,
    SelectOption,
    Table,
    TextInput,
)
from clustercord_testing.fake_discord import limits as discord_limits


class MemoryMinter:
    """Custom ids kept in a dict, as the database-backed store keeps them."""

    def __init__(self) -> None:
        self.counter = itertools.count()
        self.state: dict[str, tuple[str, dict[str, Any], list[str] | None]] = {}

    def mint(self, kind: str, state: dict[str, Any], *, allowed: list[str] | None = None) -> str:
        custom_id = f"cc:test:{next(self.counter)}"
        self.state[custom_id] = (kind, state, allowed)
        return custom_id


def render(reply: Reply, user_id: str = "42") -> Any:
    return Renderer(MemoryMinter(), user_id=user_id).render(reply)


def problems(message: Any) -> list[str]:
    errors = discord_limits.check_message(message.json(), file_count=len(message.files))
    if message.modal is not None:
        errors += discord_limits.check_modal(message.modal)
    return [str(e) for e in errors]


def attached_text(message: Any) -> str:
    (full,) = [f for f in message.files if f.name == REPLY_FILE]
    return full.data.decode()


text = st.text(min_size=0, max_size=6000)
cards = st.builds(
    Card,
    title=st.none() | st.text(max_size=400),
    description=st.none() | st.text(max_size=6000),
    fields=st.lists(
        st.builds(Field, name=st.text(max_size=400), value=st.text(max_size=2000)), max_size=30
    ),
    footer=st.none() | st.text(max_size=3000),
    color=st.sampled_from([None, "red", "#00ff00", "not a colour"]),
)
buttons = st.lists(
    st.builds(Button, label=st.text(max_size=120), action=st.none() | st.just("m:f")),
    max_size=30,
)
selects = st.lists(
    st.builds(
        Select,
        action=st.just("m:pick"),
        options=st.lists(
            st.builds(SelectOption, label=st.text(max_size=150), value=st.text(max_size=300)),
            min_size=1,
            max_size=40,
        ),
        placeholder=st.none() | st.text(max_size=200),
    ),
    max_size=6,
)
tables = st.lists(
    st.builds(
        Table,
        columns=st.lists(st.text(max_size=20), min_size=1, max_size=6),
        rows=st.lists(st.lists(st.text(max_size=40), max_size=6), max_size=120),
    ),
    max_size=3,
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    text=text,
    cards=st.lists(cards, max_size=14),
    tables=tables,
    buttons=buttons,
    selects=selects,
    ephemeral=st.booleans(),
)
def test_any_reply_fits_discords_limits(text, cards, tables, buttons, selects, ephemeral):
    reply = Reply(
        text=text, cards=cards, tables=tables, buttons=buttons, selects=selects, ephemeral=ephemeral
    )
    message = render(reply)
    assert problems(message) == []
    assert bool(message.flags & 64) == ephemeral


def test_long_text_is_cut_with_a_note_and_attached_in_full():
    message = render(Reply(text="word " * 3000))
    assert len(message.content) <= 2000
    assert message.content.endswith(f"the full reply is attached as {REPLY_FILE})")
    assert attached_text(message).count("word") == 3000


def test_a_small_table_is_a_code_block_and_a_big_one_an_embed_plus_file():
    small = render(Reply(tables=[Table(["pod", "status"], [["web-1", "Running"]])]))
    assert small.content == "```\npod    status\n-----  -------\nweb-1  Running\n```"
    rows = [[f"pod-{n}", "Running", "node-a"] for n in range(600)]
    big = render(Reply(tables=[Table(["pod", "status", "node"], rows, title="Pods")]))
    (embed,) = big.embeds
    assert embed["title"] == "Pods" and embed["footer"]["text"] == "600 rows"
    assert embed["description"].startswith("```\npod")
    assert "pod-599" in attached_text(big)
    assert problems(big) == []


def test_many_cards_keep_ten_embeds_and_6000_characters():
    cards = [Card(title=f"card {n}", description="x" * 1000) for n in range(12)]
    message = render(Reply(cards=cards))
    assert len(message.embeds) <= 10
    assert sum(len(e.get("title", "")) + len(e.get("description", "")) for e in message.embeds) <= (
        6000
    )
    assert "card 11" in attached_text(message)


def test_pages_get_arrows_and_keep_the_pages_server_side():
    minter = MemoryMinter()
    reply = Reply(pages=[Reply(text=f"page {n}") for n in range(1, 4)])
    message = Renderer(minter, user_id="7").render(reply)
    (nav,) = message.components
    back, counter, forward = nav["components"]
    assert (back["label"], back["disabled"]) == ("◀", True)
    assert (counter["label"], forward["label"]) == ("1/3", "▶")
    kind, state, _ = minter.state[forward["custom_id"]]
    assert (kind, state["index"]) == ("page", 1)
    pages_kind, pages_state, _ = minter.state[state["ref"]]
    assert pages_kind == "pages" and len(pages_state["reply"]["pages"]) == 3
    assert message.content == "page 1"


def test_a_confirmation_only_the_invoker_may_press():
    minter = MemoryMinter()
    message = Renderer(minter, user_id="7").render(
        Reply(confirmation=Confirmation(prompt="Delete pod web-1?"))
    )
    confirm, cancel = message.components[0]["components"]
    assert (confirm["style"], confirm["label"], cancel["label"]) == (4, "Confirm", "Cancel")
    assert minter.state[confirm["custom_id"]] == (
        "confirm",
        {"action": None, "value": None, "answer": True},
        ["7"],
    )
    assert message.content == "⚠️ Delete pod web-1?"


def test_buttons_fill_five_rows_of_five_and_selects_keep_long_values_server_side():
    minter = MemoryMinter()
    long_value = "v" * 500
    reply = Reply(
        buttons=[Button(f"b{n}", action="m:f", value=n) for n in range(40)],
        selects=[Select("m:pick", [SelectOption("long", long_value)])],
    )
    message = Renderer(minter).render(reply)
    assert len(message.components) == 5
    menu = message.components[0]["components"][0]
    assert menu["options"][0]["value"] == "0"
    assert minter.state[menu["custom_id"]][1]["values"] == [long_value]
    assert sum(len(row["components"]) for row in message.components[1:]) == 20
    assert problems(message) == []
    assert REPLY_FILE in [f.name for f in message.files]  # the 20 buttons left out are noted


def test_a_modal_keeps_five_inputs():
    modal = Modal(
        title="A form with a title much longer than forty-five characters",
        action="m:done",
        inputs=[TextInput(f"f{n}", f"Field {n}", placeholder="p" * 200) for n in range(7)],
    )
    message = render(Reply(modal=modal))
    assert len(message.modal["components"]) == 5
    assert problems(message) == []


def test_files_beyond_ten_are_zipped_and_huge_ones_named():
    files = [File(f"f{n}.txt", b"x") for n in range(14)] + [File("huge.bin", b"0" * (9 << 20))]
    message = render(Reply(text="exports", files=files))
    assert len(message.files) == 10
    assert message.files[-1].name == "more-files.zip"
    assert "huge.bin" in message.content and "too large" in message.content
    assert problems(message) == []


def test_an_image_card_points_at_its_attachment():
    chart = File("chart.png", b"\x89PNG")
    message = render(Reply(cards=[Card(title="RBAC", image="chart.png")], files=[chart]))
    assert message.embeds[0]["image"] == {"url": "attachment://chart.png"}


def test_table_text_pads_ragged_rows():
    assert table_text(Table(["a"], [["1", "extra"], []])) == "a\n-  -----\n1  extra\n"


HOSTILE_FENCES = ["```", "````", "x```@everyone", "``````````", "`` ` ``", "end`"]


def _fences_hold(block: str) -> bool:
    """A code block that opens once and closes once: nothing inside ends it early."""
    return block.count("```") == 2 and block.startswith("```") and block.endswith("```")


def test_a_value_made_of_backticks_cannot_close_a_code_block():
    # A pod or user value with a run of backticks would end the table's code block and turn
    # the rest of the reply into Markdown (mentions, links, fake headings).
    for value in HOSTILE_FENCES:
        table = render(Reply(tables=[Table(["pod"], [[value]])]))
        assert _fences_hold(table.content), value
        assert value in table.content.replace("\u200b", "")
        data = render(Reply(data={"name": value}))
        assert _fences_hold(data.content), value
        rows = [[f"{value}-{n}"] for n in range(600)]
        (embed,) = render(Reply(tables=[Table(["pod"], rows)])).embeds
        assert _fences_hold(embed["description"]), value


def test_a_wide_table_keeps_names_whole_and_attaches_every_column():
    rows = [[f"jellyfin-hgxnx7lmrk-{n:05d}", "Running", "worker-1", "ok " * 30] for n in range(3)]
    message = render(Reply(tables=[Table(["Pod", "Status", "Node", "Message"], rows)]))
    block = message.content.split("```")[1]
    assert all(len(line) <= TABLE_WIDTH for line in block.splitlines())
    assert "jellyfin-hgxnx7lmrk-00002" in block and "…" in block
    assert "ok " * 29 + "ok" in attached_text(message)  # the cut message, whole in the file
    name = "p" * (TABLE_WIDTH - 20)
    wide = render(Reply(tables=[Table(["Pod", "A", "B", "C"], [[name, "a" * 17, "b", "c"]])]))
    assert f"-# 2 column(s) left out to fit {TABLE_WIDTH} columns: B, C" in wide.content
    assert "b" in attached_text(wide).split(name)[1]  # the file has every column
    assert problems(wide) == []
