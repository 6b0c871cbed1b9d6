"""Replies look right in a terminal: panels, tables, saved files, confirmations."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from rich.console import Console

from clustercord.frontends.console import ConsoleRenderer, reply_to_json, safe_file_name
from clustercord_sdk.reply import (
    Button,
    Card,
    Confirmation,
    Field,
    File,
    Modal,
    Progress,
    Reply,
    Select,
    SelectOption,
    Table,
    TextInput,
)


def make(tmp_path: Path, **console_args: object) -> tuple[ConsoleRenderer, Console]:
    console = Console(file=io.StringIO(), width=100, **console_args)  # type: ignore[arg-type]
    return ConsoleRenderer(console, tmp_path / "files"), console


def output(console: Console) -> str:
    return console.file.getvalue()  # type: ignore[attr-defined, no-any-return]


def test_card_table_and_file(tmp_path: Path) -> None:
    renderer, console = make(tmp_path)
    reply = Reply(
        text="Server status",
        cards=[
            Card(
                title="minecraft",
                description="Survival server",
                fields=[Field("Players", "3/20"), Field("Version", "1.21")],
                footer="updated just now",
            )
        ],
        tables=[
            Table(
                columns=["Pod", "Status"], rows=[["mc-0", "Running"], ["mc-1", None]], title="Pods"
            )
        ],
        files=[File(name="report.txt", data=b"hello\x00world")],
    )
    renderer.render(reply)
    out = output(console)
    for expected in (
        "Server status",
        "minecraft",
        "Survival server",
        "Players",
        "3/20",
        "updated just now",
        "Pods",
        "Pod",
        "Status",
        "mc-0",
        "Running",
        "mc-1",
    ):
        assert expected in out
    saved = tmp_path / "files" / "report.txt"
    assert saved.read_bytes() == b"hello\x00world"
    assert str(saved) in out


def test_second_file_with_same_name_does_not_overwrite(tmp_path: Path) -> None:
    renderer, console = make(tmp_path)
    renderer.render(Reply(files=[File(name="out.tar.gz", data=b"one")]))
    renderer.render(Reply(files=[File(name="out.tar.gz", data=b"two")]))
    renderer.render(Reply(files=[File(name="out.tar.gz", data=b"three")]))
    files = tmp_path / "files"
    assert (files / "out.tar.gz").read_bytes() == b"one"
    assert (files / "out-1.tar.gz").read_bytes() == b"two"
    assert (files / "out-2.tar.gz").read_bytes() == b"three"
    assert str(files / "out-2.tar.gz") in output(console)


@pytest.mark.parametrize(
    ("name", "safe"),
    [
        ("../../etc/passwd", "passwd"),
        ("..\\..\\evil.bat", "evil.bat"),
        ("..", "file"),
        ("", "file"),
        ("a:b?.txt", "a_b_.txt"),
        ("report.csv", "report.csv"),
    ],
)
def test_file_names_cannot_escape_the_directory(name: str, safe: str) -> None:
    assert safe_file_name(name) == safe


def test_path_traversal_file_lands_in_files_dir(tmp_path: Path) -> None:
    renderer, _ = make(tmp_path)
    renderer.render(Reply(files=[File(name="../escape.txt", data=b"x")]))
    assert (tmp_path / "files" / "escape.txt").read_bytes() == b"x"
    assert not (tmp_path / "escape.txt").exists()


def test_error_ephemeral_and_markup_is_literal(tmp_path: Path) -> None:
    renderer, console = make(tmp_path)
    renderer.render(Reply.fail("pod [bold]x[/bold] not found", ephemeral=True))
    out = output(console)
    assert "Error: pod [bold]x[/bold] not found" in out
    assert "(only you can see this)" in out


def test_pages_actions_modal_confirmation(tmp_path: Path) -> None:
    renderer, console = make(tmp_path)
    reply = Reply(
        pages=[Reply(text="first page"), Reply(text="second page")],
        buttons=[Button(label="Approve", action="approve"), Button(label="Deny", action="deny")],
        selects=[
            Select(
                action="pick",
                placeholder="Pick a world",
                options=[SelectOption("Overworld", "o"), SelectOption("Nether", "n")],
            )
        ],
        modal=Modal(
            title="Configure",
            action="cfg",
            inputs=[TextInput(name="interval", label="Backup interval")],
        ),
        confirmation=Confirmation(prompt="Delete the world?"),
    )
    renderer.render(reply)
    out = output(console)
    assert out.index("Page 1/2") < out.index("first page") < out.index("Page 2/2")
    assert out.index("Page 2/2") < out.index("second page")
    for expected in (
        "Approve",
        "Deny",
        "Pick a world",
        "Overworld",
        "Nether",
        "Configure",
        "Backup interval",
        "interval",
        "Delete the world?",
    ):
        assert expected in out


def test_data_only_reply_is_still_shown(tmp_path: Path) -> None:
    renderer, console = make(tmp_path)
    renderer.render(Reply(data={"replicas": 3}))
    assert "replicas" in output(console)


def test_progress_only_reply_prints_nothing_on_a_pipe(tmp_path: Path) -> None:
    renderer, console = make(tmp_path)
    renderer.render(Reply(progress=Progress(1, 10, "Copying")))
    renderer.progress(Progress(10, 10, "Copying"))
    renderer.finish()
    assert output(console) == ""


def test_progress_draws_a_bar_on_a_terminal(tmp_path: Path) -> None:
    renderer, console = make(tmp_path, force_terminal=True, color_system=None)
    renderer.render(Reply(progress=Progress(3, 10, "Copying")))
    assert renderer._bar is not None
    renderer.render(Reply(progress=Progress(10, 10, "Copying")))
    assert renderer._bar is None  # finished at 100 %
    renderer.render(Reply(progress=Progress(1, None, "Waiting")))
    renderer.render(Reply(text="done"))  # a result ends the bar
    assert renderer._bar is None
    out = output(console)
    assert "Copying" in out and "done" in out


class _FakeStdin(io.StringIO):
    def __init__(self, text: str, tty: bool) -> None:
        super().__init__(text)
        self._tty = tty

    def isatty(self) -> bool:
        return self._tty


async def test_ask_with_assume_yes(tmp_path: Path) -> None:
    renderer, console = make(tmp_path)
    assert await renderer.ask(Confirmation(prompt="Scale to zero?"), assume_yes=True) is True
    out = output(console)
    assert "Scale to zero?" in out and "yes (--yes)" in out


async def test_ask_without_a_terminal_refuses(tmp_path: Path) -> None:
    console = Console(file=io.StringIO(), width=100)
    renderer = ConsoleRenderer(console, tmp_path, stdin=_FakeStdin("y\n", tty=False))
    assert await renderer.ask(Confirmation(prompt="Scale to zero?"), assume_yes=False) is False
    out = output(console)
    assert "Scale to zero?" in out
    assert "Not confirmed: pass --yes to confirm non-interactively" in out


@pytest.mark.parametrize(("answer", "expected"), [("y\n", True), ("n\n", False), ("\n", False)])
async def test_ask_on_a_terminal_reads_the_answer(
    tmp_path: Path, answer: str, expected: bool
) -> None:
    console = Console(file=io.StringIO(), width=100)
    renderer = ConsoleRenderer(console, tmp_path, stdin=_FakeStdin(answer, tty=True))
    assert await renderer.ask(Confirmation(prompt="Restart?"), assume_yes=False) is expected
    assert "Restart?" in output(console)


def test_reply_to_json_round_trips() -> None:
    reply = Reply(text="héllo", files=[File(name="a.bin", data=b"\x01")], data={"n": 1})
    text = reply_to_json(reply)
    assert "héllo" in text
    assert Reply.from_dict(json.loads(text)) == reply


PODS = Table(
    ["Pod", "Status", "Node", "Message"],
    [
        ["jellyfin-hgxnx7lmrk-mtpxj", "Running", "worker-1", "ready since the last rollout"],
        ["group:system:masters-reader", "Pending", "worker-2", "waiting for a volume " * 4],
    ],
)


def test_a_narrow_terminal_keeps_names_whole_and_cuts_free_text(tmp_path: Path) -> None:
    renderer, console = make(tmp_path, force_terminal=True, color_system=None)
    console.width = 80
    renderer.render(Reply(tables=[PODS]))
    out = output(console)
    assert "jellyfin-hgxnx7lmrk-mtpxj" in out and "group:system:masters-reader" in out
    assert "…" in out  # the long message, not a name
    assert all(len(line) <= 80 for line in out.splitlines())


def test_columns_are_left_out_from_the_right_when_names_do_not_fit(tmp_path: Path) -> None:
    renderer, console = make(tmp_path, force_terminal=True, color_system=None)
    console.width = 50
    renderer.render(Reply(tables=[PODS]))
    out = output(console)
    assert "jellyfin-hgxnx7lmrk-mtpxj" in out and "worker-1" not in out
    assert "2 column(s) left out to fit 50 columns: Node, Message" in " ".join(out.split())


def test_piped_output_is_never_cut(tmp_path: Path) -> None:
    renderer, console = make(tmp_path)  # a file, not a terminal: full width
    renderer.render(Reply(tables=[PODS]))
    out = output(console)
    assert "waiting for a volume " * 3 in out and "…" not in out
    assert len([line for line in out.splitlines() if "group:system:masters-reader" in line]) == 1
