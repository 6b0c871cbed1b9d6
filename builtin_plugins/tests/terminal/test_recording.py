"""Recording a session: output and input as events, commands as markers, secrets masked
on the way in, password answers hidden, and a recording that survives JSON."""

from __future__ import annotations

import json
import re

import pytest

from clustercord_builtins.terminal.recording import HIDDEN_INPUT, Recording, new_session_id
from clustercord_builtins.terminal.redaction import HOLD, StreamRedactor

from .conftest import NOW, recorder


def codes(recording: Recording) -> list[str]:
    return [code for _, code, _ in recording.events]


def output(recording: Recording) -> str:
    return "".join(data for _, code, data in recording.events if code == "o")


def test_a_session_becomes_timed_events_markers_and_commands():
    rec = recorder()
    rec.resize(100, 30)
    rec.output(b"/ # ")
    assert rec.input("ls -la\n") == "ls -la\n"
    rec.output(b"ls -la\r\ntotal 48\r\n/ # ")
    rec.input("exit\n")
    recording = rec.finish(0)
    assert codes(recording) == ["r", "o", "i", "m", "o", "o", "i", "m", "x"]
    assert recording.commands == ["ls -la", "exit"]
    assert [d for _, c, d in recording.events if c == "m"] == ["ls -la", "exit"]
    assert output(recording) == "/ # ls -la\r\ntotal 48\r\n/ # "
    times = [t for t, _, _ in recording.events]
    assert times == sorted(times) and times[0] > 0
    assert recording.duration == times[-1]
    assert recording.events[-1] == (recording.duration, "x", "0")
    assert (recording.width, recording.height, recording.exit_code) == (100, 30, 0)
    assert recording.started == NOW
    assert recording.command_times() == [t for t, c, _ in recording.events if c == "m"]


def test_output_is_released_by_whole_lines_and_a_waiting_prompt_once_output_is_quiet():
    now = [0.0]
    rec = recorder(redactor=StreamRedactor(clock=lambda: now[0]))
    assert rec.output(b"hello wor") == ""
    assert rec.output(b"ld\nContinue? [y/N] ") == "hello world\n"
    assert rec.flush() == "Continue? [y/N] "  # nothing in it a secret could follow
    assert rec.output(b"y\nPassword: ") == "y\n"
    assert rec.flush() == ""  # "Password:" may be a key whose value is on its way
    now[0] += HOLD
    assert rec.flush() == "Password: "


@pytest.mark.parametrize("text", ["€ 漢字 🎉 naïve", "ß" * 7])
def test_a_character_split_between_frames_stays_whole(text):
    data = (text + "\n").encode()
    for cut in range(1, len(data)):
        rec = recorder()
        released = rec.output(data[:cut]) + rec.output(data[cut:])
        assert released == text + "\n", cut
        assert "\ufffd" not in output(rec.finish(0))


def test_a_secret_split_between_frames_never_shows():
    token = "ghp_" + "Ab1" * 12
    data = f"GITHUB_TOKEN={token}\nok\n".encode()
    for cut in range(1, len(data)):
        rec = recorder()
        shown = rec.output(data[:cut]) + rec.output(data[cut:])
        recording = rec.finish(0)
        assert shown == "GITHUB_TOKEN=ghp_***************\nok\n"
        assert "Ab1Ab1" not in json.dumps(recording.to_dict())
        assert recording.redactions == 1


def test_typed_secrets_are_masked_in_input_markers_and_commands():
    rec = recorder(command=["sh", "-c", "PGPASSWORD=hunter2x psql -h db"])
    recorded = rec.input("export GITHUB_TOKEN=ghp_" + "Zz9" * 12 + "\n")
    recording = rec.finish(0)
    assert recorded == "export GITHUB_TOKEN=ghp_***************\n"
    assert recording.commands == ["export GITHUB_TOKEN=ghp_***************"]
    assert recording.command == ["sh", "-c", "PGPASSWORD=************ psql -h db"]
    assert "Zz9Zz9" not in json.dumps(recording.to_dict())
    assert recording.redactions == 1  # the argv is masked too, but was never typed


@pytest.mark.parametrize(
    "prompt",
    [
        "Password: ",
        "[sudo] password for app: ",
        "Password for 'https://ci@github.com': ",
        "Enter passphrase for key '/root/.ssh/id_ed25519': ",
        "Enter PIN for 'PIV Card Holder pin': ",
    ],
)
def test_the_answer_to_a_password_prompt_is_hidden(prompt):
    rec = recorder()
    rec.output(prompt.encode())
    assert rec.input("Summer2024\n") == HIDDEN_INPUT + "\n"
    rec.output(b"\r\nWelcome\r\n$ ")
    rec.input("whoami\n")
    recording = rec.finish(0)
    assert recording.commands == ["whoami"]  # the answer is not a command
    assert "Summer2024" not in json.dumps(recording.to_dict())
    assert [d for _, c, d in recording.events if c == "i"] == [HIDDEN_INPUT + "\n", "whoami\n"]


def test_without_input_recording_only_markers_are_kept():
    rec = recorder(record_input=False)
    rec.output(b"$ ")
    assert rec.input("curl -H 'Authorization: Bearer abcdefghijklmnop1234'\n") == ""
    rec.output(b"Password: ")
    assert rec.input("hunter2x\n") == ""
    recording = rec.finish(0)
    assert "i" not in codes(recording)
    assert recording.commands == ["curl -H 'Authorization: Bearer ************'"]
    assert "hunter2x" not in json.dumps(recording.to_dict())


def test_input_waits_for_its_line_end_but_control_keys_are_immediate():
    rec = recorder()
    assert rec.input("ls ") == ""
    assert rec.input("-l\r") == "ls -l\r"  # a terminal's Enter
    assert rec.input("\x03") == "\x03"
    recording = rec.finish(130)
    assert recording.commands == ["ls -l"]
    assert [d for _, c, d in recording.events if c == "i"] == ["ls -l\r", "\x03"]
    assert recording.exit_code == 130 and recording.events[-1][1:] == ("x", "130")


def test_output_of_a_command_that_prints_a_bare_secret_is_masked_whole():
    rec = recorder()
    rec.input("kubectl get secret db -o jsonpath='{.data.password}' | base64 -d\n")
    assert rec.output(b"Summer2024!x\n") == "************\n"
    rec.input("echo done\n")
    assert rec.output(b"done\n") == "done\n"  # the next command is shown again


@pytest.mark.parametrize(
    ("command", "whole"),
    [
        ("echo $DB_PASSWORD", True),
        ('printf "%s" "${API_TOKEN}"', True),
        ("printenv GITHUB_TOKEN", True),
        ("echo DB_PASSWORD=set; uname -s", False),  # nothing bare: the value rule is enough
        ("echo the token expired", False),
    ],
)
def test_only_commands_that_print_a_bare_secret_mask_their_whole_output(command, whole):
    rec = recorder()
    rec.input(command + "\n")
    shown = rec.output(b"Linux\n")
    assert shown == ("************\n" if whole else "Linux\n")


def test_a_terminal_echo_of_a_revealing_command_stays_readable():
    rec = recorder()
    command = "cat /etc/db-secret/password"
    rec.output(b"/ # ")
    rec.input(command + "\n")
    shown = rec.output(f"{command}\r\nSummer2024!x\r\n".encode())
    assert shown == f"{command}\r\n************\r\n"


def test_resize_events_and_the_starting_size():
    rec = recorder()
    rec.resize(120, 40)  # before any output: the size it starts with
    rec.output(b"x\n")
    rec.resize(80, 24)
    recording = rec.finish(None)
    assert [d for _, c, d in recording.events if c == "r"] == ["120x40", "80x24"]
    assert (recording.width, recording.height) == (120, 40)
    assert recording.exit_code is None and recording.events[-1][1:] == ("x", "")


def test_finish_releases_what_was_held():
    rec = recorder()
    rec.output(b"data:\n  password: aGVsbG8=\n")  # a Secret's data, kind still unknown
    rec.output(b"/ # \xe2\x82")  # and half a euro sign
    recording = rec.finish(0)
    assert output(recording) == "data:\n  password: ************\n/ # \ufffd"


def test_a_recording_survives_json():
    rec = recorder()
    rec.output(b"hi\n")
    rec.input("ls\n")
    recording = rec.finish(0)
    again = Recording.from_dict(json.loads(json.dumps(recording.to_dict())))
    assert again == recording


def test_session_ids_are_short_chat_safe_and_distinct():
    ids = {new_session_id() for _ in range(2000)}
    assert len(ids) == 2000
    assert all(re.fullmatch(r"[a-z2-7]{8}", i) for i in ids)
