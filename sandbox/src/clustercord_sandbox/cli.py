"""`clustercord sandbox`: the sandbox API server in the foreground.

The kernel's command line offers this command when the sandbox (its own distribution,
``clustercord-sandbox``, the kernel's ``sandbox`` extra) is installed; it hands over its data
directory, so the sandbox needs nothing of the kernel.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
import signal
from pathlib import Path

from . import BANNER

DEFAULT_PORT = 8001  # not 6443, so it never collides with a real local cluster


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    parser = subparsers.add_parser(
        "sandbox",
        help="serve the sandbox Kubernetes API (for demos and tests, not a distribution)",
        description=BANNER,
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)"
    )
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT}; 0 picks one)"
    )
    parser.add_argument(
        "--fixture", default="empty", help="empty | homelab | a YAML file of objects"
    )
    parser.add_argument(
        "--kubeconfig", type=Path, default=None, help="where to write the kubeconfig"
    )
    parser.add_argument(
        "--unsafe-host-exec",
        action="store_true",
        help="run kubectl exec/debug/attach commands as local processes on this machine, "
        "unisolated (by default they run in each pod's own Linux namespaces through "
        "bubblewrap, or are refused where the machine cannot make them)",
    )
    parser.add_argument(
        "--event-ttl",
        type=duration,
        default=None,
        metavar="DURATION",
        help="how long Events live after their last change, like the API server's "
        "--event-ttl (e.g. 1h, 30m, 90s, 1h30m; default 1h)",
    )
    return parser


_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


def duration(text: str) -> float:
    """A Go duration (`1h`, `30m`, `1h30m`, `90s`, `500ms`) or plain seconds, in seconds."""
    parts = re.fullmatch(r"(?:\d+(?:\.\d+)?(?:ms|h|m|s))+", text.strip())
    try:
        if parts is None:
            seconds = float(text)
        else:
            seconds = sum(
                float(number) * _UNITS[unit]
                for number, unit in re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", text)
            )
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid duration {text!r} (e.g. 1h, 30m, 90s, 1h30m)"
        ) from None
    if not seconds > 0 or seconds == float("inf"):
        raise argparse.ArgumentTypeError(f"the duration must be positive, not {text!r}")
    return seconds


def run(args: argparse.Namespace, data_dir: Path) -> int:
    """Serves until Ctrl-C (or SIGTERM); exit 2 on a bad fixture, 1 if the port is taken.
    Without ``--kubeconfig`` the kubeconfig goes to ``data_dir/sandbox/kubeconfig``."""
    from . import fixtures

    try:
        objects = fixtures.resolve(args.fixture)
    except fixtures.FixtureError as exc:
        print(f"error: {exc}")
        return 2
    try:
        return asyncio.run(_serve(args, objects, data_dir))
    except KeyboardInterrupt:
        return 0


async def _serve(args: argparse.Namespace, objects: list[dict], data_dir: Path) -> int:  # type: ignore[type-arg]
    from . import fixtures
    from .server import SandboxServer
    from .store import SandboxStore

    server = SandboxServer(
        SandboxStore(),
        host=args.host,
        port=args.port,
        host_exec=getattr(args, "unsafe_host_exec", False),
        **({"event_ttl": args.event_ttl} if getattr(args, "event_ttl", None) else {}),
    )
    try:
        fixtures.load(server.api, objects)
    except Exception as exc:  # a FixtureError, or an ApiError from a bad object
        print(f"error: the fixture could not be loaded: {exc}")
        return 2
    try:
        await server.start()
    except OSError as exc:
        print(f"error: cannot listen on {args.host}:{args.port}: {exc}")
        return 1
    path = server.write_kubeconfig(args.kubeconfig or data_dir / "sandbox" / "kubeconfig")
    print(BANNER)
    print(f"API: {server.url}   kubeconfig: {path}")
    print(f"Try: KUBECONFIG={path} kubectl get ns")
    print(server.pod_processes)
    print("Ctrl-C stops it.", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await server.stop()
    return 0
