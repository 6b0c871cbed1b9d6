"""`clustercord sandbox` as a process: banner, kubeconfig, kubectl, Ctrl-C."""

from __future__ import annotations

import re
import signal
import subprocess
import sys

import pytest

from .conftest import KUBECTL

SCRIPT = """
import argparse, pathlib, sys, tempfile
from clustercord_sandbox import cli
parser = argparse.ArgumentParser()
cli.add_parser(parser.add_subparsers(dest="command"))
sys.exit(cli.run(parser.parse_args(sys.argv[1:]), pathlib.Path(tempfile.mkdtemp())))
"""


def test_sandbox_command_serves_until_interrupted(tmp_path):
    if KUBECTL is None:
        pytest.skip("kubectl is not installed")
    kubeconfig = tmp_path / "kubeconfig"
    process = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, "sandbox", "--port", "0", "--kubeconfig", str(kubeconfig)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        banner = "".join(process.stdout.readline() for _ in range(3))
        assert "not a Kubernetes distribution" in banner
        assert re.search(r"API: https://127\.0\.0\.1:\d+", banner)
        assert f"KUBECONFIG={kubeconfig} kubectl get ns" in banner
        # What pods' processes are: isolated, or why they are refused, said at start.
        assert process.stdout.readline().startswith("Pod processes: ")
        out = subprocess.run(
            [KUBECTL, "--kubeconfig", str(kubeconfig), "get", "ns", "-o", "name"],
            capture_output=True,
            text=True,
            timeout=30,
        ).stdout
        assert "namespace/kube-system" in out
        process.send_signal(signal.SIGINT)
        assert process.wait(10) == 0
    finally:
        if process.poll() is None:
            process.kill()


def test_unsafe_host_exec_is_said_at_start(tmp_path):
    process = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, "sandbox", "--port", "0", "--unsafe-host-exec",
         "--kubeconfig", str(tmp_path / "kubeconfig")],
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline() for _ in range(4)]
        assert "--unsafe-host-exec" in lines[3] and "unisolated" in lines[3]
        process.send_signal(signal.SIGINT)
        assert process.wait(10) == 0
    finally:
        if process.poll() is None:
            process.kill()


def test_unknown_fixture_exits_2(tmp_path):
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, "sandbox", "--fixture", str(tmp_path / "nope.yaml")],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "no fixture named" in result.stdout
