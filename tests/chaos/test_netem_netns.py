"""The network faults' own commands run for real in a veth pair between two network namespaces
that the test creates (``ip netns``, root only): the interface the fault finds is the veth, the
guard removes the qdisc when the duration ends and on SIGTERM, and with ``sch_netem`` the
round trip and loss measured through the pair (UDP echo, Python at both ends) match what was
asked. Without root, ``ip`` or the netem module each test is skipped with the reason."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator

import pytest

from clustercord_builtins.chaos import network

from .test_network import netem_missing

ECHO = textwrap.dedent("""
    import socket
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", 7007))
    print("ready", flush=True)
    while True:
        data, peer = s.recvfrom(64)
        s.sendto(data, peer)
""")
MEASURE = textwrap.dedent("""
    import socket, sys, time
    count, interval = int(sys.argv[1]), float(sys.argv[2])
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(0.15 if count > 100 else 1.0)  # many probes: losses must not take long
    rtts, lost = [], 0
    for i in range(count):
        sent = time.perf_counter()
        s.sendto(str(i).encode(), ("10.213.0.2", 7007))
        try:
            while s.recv(64) != str(i).encode():
                pass
            rtts.append((time.perf_counter() - sent) * 1000)
        except TimeoutError:
            lost += 1
        time.sleep(interval)
    mean = sum(rtts) / len(rtts) if rtts else -1
    print(f"{mean:.2f} {100 * lost / count:.1f}")
""")


def _ip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=True)


@pytest.fixture
def pair() -> Iterator[tuple[str, str, str]]:
    """Namespaces a (the pod) and b (its peer), a veth between them: (a, b, a's interface)."""
    if os.geteuid() != 0:
        pytest.skip("creating network namespaces needs root")
    if shutil.which("ip") is None or shutil.which("tc") is None:
        pytest.skip("ip or tc is not installed")
    tag = secrets.token_hex(3)
    a, b, veth_a, veth_b = f"cc-a-{tag}", f"cc-b-{tag}", f"cca{tag}", f"ccb{tag}"
    try:
        _ip("netns", "add", a)
        _ip("netns", "add", b)
    except subprocess.CalledProcessError as error:
        pytest.skip(f"cannot create network namespaces here: {error.stderr.strip()}")
    try:
        _ip("link", "add", veth_a, "type", "veth", "peer", "name", veth_b)
        _ip("link", "set", veth_a, "netns", a)
        _ip("link", "set", veth_b, "netns", b)
        _ip("-n", a, "addr", "add", "10.213.0.1/24", "dev", veth_a)
        _ip("-n", b, "addr", "add", "10.213.0.2/24", "dev", veth_b)
        for ns, dev in ((a, veth_a), (b, veth_b), (a, "lo"), (b, "lo")):
            _ip("-n", ns, "link", "set", dev, "up")
        yield a, b, veth_a
    finally:
        for ns in (a, b):  # the veth goes with its namespace
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def in_ns(ns: str, command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ip", "netns", "exec", ns, "sh", "-c", command], capture_output=True, text=True
    )


def qdisc(ns: str, dev: str) -> str:
    return in_ns(ns, f"tc qdisc show dev {dev}").stdout


def guard(ns: str, seconds: float) -> subprocess.Popen[str]:
    return subprocess.Popen(
        ["ip", "netns", "exec", ns, "sh", "-c", network.guard(seconds)], text=True
    )


def set_fault(ns: str, dev: str, kind: str, params: dict) -> None:
    argv = ["tc", "qdisc", "replace", "dev", dev, "root", *network.qdisc_for(kind, params)]
    done = subprocess.run(["ip", "netns", "exec", ns, *argv], capture_output=True, text=True)
    assert done.returncode == 0, network.explain_tc(argv, done.stderr)


def test_the_fault_finds_the_veth_and_its_guard_removes_the_qdisc_at_the_end_and_on_sigterm(
    pair,
):
    a, _, dev = pair
    assert in_ns(a, network.FIND_INTERFACE).stdout.strip() == dev  # not eth0, not lo
    bandwidth = {"rate": network.parse_rate("1mbit")}

    timer = guard(a, 1)
    set_fault(a, dev, "network-bandwidth", bandwidth)
    assert "tbf" in qdisc(a, dev)
    timer.wait(timeout=10)
    assert "tbf" not in qdisc(a, dev)  # the duration ended: removed by the guard itself

    stopped = guard(a, 600)
    set_fault(a, dev, "network-bandwidth", bandwidth)
    assert "tbf" in qdisc(a, dev)
    started = time.monotonic()
    stopped.send_signal(signal.SIGTERM)
    stopped.wait(timeout=10)
    assert time.monotonic() - started < 3
    assert "tbf" not in qdisc(a, dev)  # removed on SIGTERM, long before the 600 s


def measure(a: str, b: str, count: int, interval: float) -> tuple[float, float]:
    server = subprocess.Popen(
        ["ip", "netns", "exec", b, sys.executable, "-c", ECHO], stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == "ready"
        done = subprocess.run(
            ["ip", "netns", "exec", a, sys.executable, "-c", MEASURE, str(count), str(interval)],
            capture_output=True, text=True, check=True, timeout=120,
        )  # fmt: skip
        mean, lost = done.stdout.split()
        return float(mean), float(lost)
    finally:
        server.terminate()
        server.wait(timeout=5)


def test_netem_delay_and_loss_measured_through_the_pair_match_what_was_asked(pair):
    a, b, dev = pair
    base, base_lost = measure(a, b, 20, 0.02)  # the measurement itself, with or without netem
    assert base_lost == 0 and 0 < base < 20, (base, base_lost)
    missing = netem_missing()
    if missing is not None:
        pytest.skip(f"netem measurement skipped (baseline {base:.2f} ms measured): {missing}")

    delay = guard(a, 60)
    set_fault(a, dev, "network-delay", {"latency_ms": 100})
    during, _ = measure(a, b, 20, 0.02)
    delay.send_signal(signal.SIGTERM)
    delay.wait(timeout=10)
    assert 90 <= during - base <= 130, (base, during)
    assert "netem" not in qdisc(a, dev)

    loss = guard(a, 60)
    set_fault(a, dev, "network-loss", {"percent": 30})
    _, lost = measure(a, b, 400, 0.001)
    loss.send_signal(signal.SIGTERM)
    loss.wait(timeout=10)
    assert 20 <= lost <= 40, lost  # 30 % of 400 probes: ±4 standard deviations
    assert "netem" not in qdisc(a, dev)
    after, lost_after = measure(a, b, 20, 0.02)
    assert lost_after == 0 and after < base + 20
