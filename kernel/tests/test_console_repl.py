"""The REPL completes commands and options and hands typed lines to the dispatcher."""

from __future__ import annotations

import asyncio
import io
import os
import signal
from pathlib import Path
from typing import Any

import pytest
from prompt_toolkit.application import create_app_session
from prompt_toolkit.completion import CompleteEvent
from prompt_toolkit.document import Document
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput
from rich.console import Console

from clustercord.frontends.repl import CommandCompleter, run_repl

COMMANDS: list[dict[str, Any]] = [
    {
        "path": "plugin config",
        "description": "Configure a plugin",
        "options": [
            {
                "name": "name",
                "description": "Plugin name",
                "required": True,
                "choices": ["minecraft", "my game"],
            },
            {"name": "key", "description": "Setting", "required": False},
        ],
    },
    {"path": "plugin list", "description": "List plugins", "options": []},
    {"path": "ping", "description": "Check the bot answers"},
]


def complete(text: str, commands: list[dict[str, Any]] | None = None) -> dict[str, tuple[int, str]]:
    completer = CommandCompleter(lambda: COMMANDS if commands is None else commands)
    return {
        c.text: (c.start_position, c.display_meta_text)
        for c in completer.get_completions(Document(text), CompleteEvent(completion_requested=True))
    }


def test_completes_first_command_word_keeping_the_slash() -> None:
    assert complete("/plu") == {"/plugin": (-4, "subcommands: config, list")}
    assert set(complete("/")) == {"/plugin", "/ping"}
    assert set(complete("pi")) == {"ping"}


def test_completes_subcommand_with_description() -> None:
    assert complete("/plugin c") == {"config": (-1, "Configure a plugin")}
    assert set(complete("/plugin ")) == {"config", "list"}


def test_completes_option_names_not_yet_given() -> None:
    assert complete("/plugin config ") == {
        "name:": (0, "(required) Plugin name"),
        "key:": (0, "Setting"),
    }
    assert set(complete("/plugin config name:minecraft ")) == {"key:"}
    assert set(complete("/plugin config k")) == {"key:"}
    assert complete("/plugin list ") == {}


def test_completes_choices_after_option_name() -> None:
    got = complete("/plugin config name:m")
    assert got == {
        "name:minecraft": (-len("name:m"), "Plugin name"),
        'name:"my game"': (-len("name:m"), "Plugin name"),
    }
    assert set(complete('/plugin config name:"my')) == {'name:"my game"'}
    assert complete("/plugin config key:") == {}  # no choices: nothing to suggest


def test_completion_follows_the_current_command_list() -> None:
    commands = list(COMMANDS)
    completer = CommandCompleter(lambda: commands)
    event = CompleteEvent(completion_requested=True)
    assert [c.text for c in completer.get_completions(Document("/mine"), event)] == []
    commands.append({"path": "minecraft backup", "description": "Back up"})
    assert [c.text for c in completer.get_completions(Document("/mine"), event)] == ["/minecraft"]


async def _drive(text: str, tmp_path: Path) -> tuple[list[str], Console, Path]:
    lines: list[str] = []

    async def dispatch(line: str) -> None:
        lines.append(line)

    history = tmp_path / "state" / "history"
    console = Console(file=io.StringIO(), width=100)
    with create_pipe_input() as pipe, create_app_session(input=pipe, output=DummyOutput()):
        pipe.send_text(text)
        await run_repl(dispatch, lambda: COMMANDS, history, console)
    return lines, console, history


async def test_repl_dispatches_lines_and_keeps_history(tmp_path: Path) -> None:
    lines, _, history = await _drive("/ping\n/plugin list\nexit\n", tmp_path)
    assert lines == ["/ping", "/plugin list"]
    saved = history.read_text()
    assert "/ping" in saved and "/plugin list" in saved


@pytest.mark.parametrize("ending", ["quit\n", "\x04"])  # quit, Ctrl-D
async def test_repl_ends_on_quit_and_ctrl_d(tmp_path: Path, ending: str) -> None:
    lines, _, _ = await _drive("/ping\n\n" + ending, tmp_path)
    assert lines == ["/ping"]


async def test_ctrl_c_clears_the_line(tmp_path: Path) -> None:
    lines, _, _ = await _drive("/plugin li\x03/ping\nexit\n", tmp_path)
    assert lines == ["/ping"]


async def test_help_prints_the_command_table(tmp_path: Path) -> None:
    lines, console, _ = await _drive("help\nexit\n", tmp_path)
    assert lines == []
    out = console.file.getvalue()  # type: ignore[attr-defined]
    assert "/plugin config" in out and "Configure a plugin" in out and "[key:]" in out


async def test_a_failing_command_does_not_end_the_repl(tmp_path: Path) -> None:
    seen: list[str] = []

    async def dispatch(line: str) -> None:
        seen.append(line)
        if line == "/boom":
            raise RuntimeError("kaboom")

    console = Console(file=io.StringIO(), width=100)
    with create_pipe_input() as pipe, create_app_session(input=pipe, output=DummyOutput()):
        pipe.send_text("/boom\n/ping\nexit\n")
        await run_repl(dispatch, lambda: COMMANDS, tmp_path / "h", console)
    assert seen == ["/boom", "/ping"]
    assert "kaboom" in console.file.getvalue()  # type: ignore[attr-defined]


@pytest.mark.skipif(not hasattr(signal, "SIGINT") or os.name != "posix", reason="POSIX signals")
async def test_ctrl_c_during_a_command_cancels_only_that_command(tmp_path: Path) -> None:
    seen: list[str] = []
    before = signal.getsignal(signal.SIGINT)

    async def dispatch(line: str) -> None:
        seen.append(line)
        if line == "/slow":
            os.kill(os.getpid(), signal.SIGINT)
            await asyncio.sleep(30)

    console = Console(file=io.StringIO(), width=100)
    with create_pipe_input() as pipe, create_app_session(input=pipe, output=DummyOutput()):
        pipe.send_text("/slow\n/ping\nexit\n")
        await asyncio.wait_for(run_repl(dispatch, lambda: COMMANDS, tmp_path / "h", console), 10)
    assert seen == ["/slow", "/ping"]
    assert "Interrupted" in console.file.getvalue()  # type: ignore[attr-defined]
    assert signal.getsignal(signal.SIGINT) == before


async def test_piped_lines_run_in_order_and_show_once(tmp_path: Path) -> None:
    seen: list[str] = []

    async def dispatch(line: str) -> None:
        seen.append(line)

    console = Console(file=io.StringIO(), width=100)
    script = io.StringIO("/ping\n\n/plugin list\nexit\n/never\n")
    await run_repl(dispatch, lambda: COMMANDS, tmp_path / "h", console, piped=script)
    assert seen == ["/ping", "/plugin list"]
    shown = console.file.getvalue()  # type: ignore[attr-defined]
    assert shown.count("/ping") == 1 and shown.count("/plugin list") == 1
    assert not (tmp_path / "h").exists()  # a script's lines are not the user's history
