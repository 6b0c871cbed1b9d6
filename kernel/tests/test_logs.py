"""Log lines: one JSON object a line for shipping (or plain text), each with the request it
belongs to, and never a secret in clear."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys

from clustercord import logs

TOKEN = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"


def test_json_lines_carry_the_request_and_mask_secrets():
    stream = io.StringIO()
    handler = logs.configure("json", "info", stream=stream)
    try:
        log = logging.getLogger("clustercord.test")
        with logs.serving("1186051234567890"):
            log.warning("cloning with %s and password=hunter22", TOKEN)
        log.info("no request here")
    finally:
        logging.getLogger().removeHandler(handler)
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["request"] == "1186051234567890" and first["level"] == "warning"
    assert first["logger"] == "clustercord.test" and first["ts"].endswith("Z")
    assert TOKEN not in first["message"] and "hunter22" not in first["message"]
    assert "request" not in second and second["message"] == "no request here"


def test_the_kernel_masks_with_plugins_patterns_too():
    stream = io.StringIO()
    handler = logs.configure("text", "warning", stream=stream)
    try:
        logs.mask_with(lambda text: text.replace("minecraft-rcon-pw", "********"))
        logging.getLogger("clustercord.test").warning("rcon: minecraft-rcon-pw")
    finally:
        logging.getLogger().removeHandler(handler)
    assert stream.getvalue() == "warning: clustercord.test: rcon: ********\n"


def test_the_command_line_writes_json_lines(tmp_path):
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    os.chmod(data, 0o755)  # loose: the kernel tightens it and logs a warning
    result = subprocess.run(
        [sys.executable, "-m", "clustercord.cli", "--log-format", "json", "backup", "list"],
        env={**os.environ, "CLUSTERCORD_DATA_DIR": str(data)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    entries = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    assert all({"ts", "level", "logger", "message"} <= set(e) for e in entries)
