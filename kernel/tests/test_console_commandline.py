"""What a user types at the console parses the way the same command reads on Discord."""

from __future__ import annotations

import pytest

from clustercord.frontends.commandline import parse_command_line
from clustercord_sdk.errors import UsageError


@pytest.mark.parametrize(
    ("line", "path", "options"),
    [
        (
            '/plugin config name:minecraft key:backup_interval value:"12 h"',
            ("plugin", "config"),
            {"name": "minecraft", "key": "backup_interval", "value": "12 h"},
        ),
        ("plugin list", ("plugin", "list"), {}),
        ("  /ping  ", ("ping",), {}),
        ('/x "value:a b"', ("x",), {"value": "a b"}),
        ("/x value:'it\"s'", ("x",), {"value": 'it"s'}),
        ("/x url:http://host:8080/p", ("x",), {"url": "http://host:8080/p"}),
        ('/x note:""', ("x",), {"note": ""}),
        ("/x note:''", ("x",), {"note": ""}),
        (r"/x v:a\ b", ("x",), {"v": "a b"}),
        ('/x v:"say \\"hi\\""', ("x",), {"v": 'say "hi"'}),
        (
            "/kube logs pod:web-1 namespace:prod",
            ("kube", "logs"),
            {"pod": "web-1", "namespace": "prod"},
        ),
    ],
)
def test_parses_path_and_options(line: str, path: tuple[str, ...], options: dict[str, str]) -> None:
    assert parse_command_line(line) == (path, options)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("", "no command"),
        ("   ", "no command"),
        ("/", "no command"),
        ("name:x", "no command given before the options"),
        ("/plugin name:x config", "'config' after options"),
        ("/plugin config name:a name:b", "'name' is given more than once"),
        ('/plugin config value:"12 h', "unbalanced quotes"),
        ("/plugin config value:'12 h", "unbalanced quotes"),
        ("/plugin config value:", "'value' has no value"),
        ("/plugin config :x", "option name missing"),
        ("/plugin config x\\", "backslash"),
    ],
)
def test_rejects_bad_lines_with_a_clear_message(line: str, message: str) -> None:
    with pytest.raises(UsageError, match=message.replace("(", r"\(")):
        parse_command_line(line)
