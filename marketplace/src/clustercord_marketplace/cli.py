"""``clustercord marketplace build-index | verify | serve | mirror`` (the kernel's command
line reaches this module only when the extra is installed)."""

from __future__ import annotations

import argparse
import asyncio
import functools
import http.server
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from clustercord_sdk.errors import UsageError


def add_parser(sub: Any) -> None:
    market = sub.add_parser("marketplace", help="publish plugins: build, verify, serve, mirror")
    actions = market.add_subparsers(dest="action", required=True)
    build = actions.add_parser(
        "build-index", help="write and sign DIR/index.json for the plugin wheels in DIR"
    )
    build.add_argument("folder", type=Path, metavar="DIR")
    build.add_argument(
        "--key",
        help="fingerprint of the signing key (with CLUSTERCORD_SIGNING_KEY set: that key)",
    )
    build.add_argument(
        "--gnupg-home", type=Path, help="GnuPG home holding --key (default: the data directory's)"
    )
    build.add_argument("--name", default="local", help="the source's name (default: local)")
    build.add_argument(
        "--valid-days", type=float, default=30.0, help="days until the index is stale (30)"
    )
    verify = actions.add_parser(
        "verify", help="check an index: signature by a pinned key, format, wheels' sha256"
    )
    verify.add_argument("index", type=Path, metavar="INDEX", help="index.json or its folder")
    verify.add_argument("--key", help="accept only this fingerprint")
    serve = actions.add_parser("serve", help="serve DIR over HTTP (a local or team index)")
    serve.add_argument("folder", type=Path, metavar="DIR")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    mirror = actions.add_parser(
        "mirror", help="copy SOURCE's signed index and wheels into DIR for offline use"
    )
    mirror.add_argument("source", metavar="SOURCE", help="URL, file:// URL or folder")
    mirror.add_argument("folder", type=Path, metavar="DIR")
    mirror.add_argument("--key", help="accept only this fingerprint")
    mirror.add_argument(
        "--no-pip-index",
        action="store_true",
        help="take the plugins' dependencies from SOURCE alone, not from the package index",
    )


def run(args: argparse.Namespace, settings: Callable[[], Any]) -> int:
    return int(
        {"build-index": _build, "verify": _verify, "serve": _serve, "mirror": _mirror}[args.action](
            args, settings
        )
    )


def _build(args: argparse.Namespace, settings: Callable[[], Any]) -> int:
    from clustercord.signing import SigningKeys, release_signer
    from clustercord_marketplace.build import build_index

    if not args.folder.is_dir():
        raise UsageError(f"{args.folder} is not a folder")
    armored = os.environ.get("CLUSTERCORD_SIGNING_KEY")
    if armored:
        with release_signer(armored, os.environ.get("CLUSTERCORD_SIGNING_PASSPHRASE")) as signer:
            index = build_index(args.folder, signer, name=args.name, valid_days=args.valid_days)
    else:
        if not args.key:
            raise UsageError("give --key FINGERPRINT (or set CLUSTERCORD_SIGNING_KEY)")
        home = args.gnupg_home or settings().signing_dir
        index = build_index(
            args.folder,
            SigningKeys(home).signer(args.key),
            name=args.name,
            valid_days=args.valid_days,
        )
    versions = sum(len(p.versions) for p in index.plugins.values())
    print(
        f"{args.folder / 'index.json'}: {len(index.plugins)} plugins, {versions} versions, "
        "signed in index.json.asc"
    )
    return 0


def _verify(args: argparse.Namespace, settings: Callable[[], Any]) -> int:
    import hashlib

    from clustercord.plugins.index import SIGNATURE_FILE, iso, verify_index
    from clustercord.plugins.sources import Source
    from clustercord.signing import TrustStore

    path = args.index / "index.json" if args.index.is_dir() else args.index
    try:
        data = path.read_bytes()
        signature = (path.parent / SIGNATURE_FILE).read_bytes()
    except OSError as exc:
        raise UsageError(f"{exc.filename}: {exc.strerror}") from None
    index = verify_index(
        data, signature, TrustStore(settings().trust_dir), label=str(path), key=args.key
    )
    source = Source("checked", str(path.parent))
    problems = []
    for plugin in index.plugins.values():
        for version in plugin.versions:
            wheel = Path(source.resolve(version.wheel))
            if not wheel.exists():
                continue  # a URL, or wheels served elsewhere: nothing to compare here
            if hashlib.sha256(wheel.read_bytes()).hexdigest() != version.sha256:
                problems.append(f"{plugin.name} {version.version}: {wheel.name} differs")
    assert index.signer is not None
    print(
        f"{path}: {index.name}, {len(index.plugins)} plugins, signed by {index.signer.label} "
        f"({index.signer.fingerprint}), valid until {iso(index.valid_until)}"
    )
    for problem in problems:
        print(f"  ✗ {problem}")
    return 1 if problems else 0


def _serve(args: argparse.Namespace, settings: Callable[[], Any]) -> int:
    if not args.folder.is_dir():
        raise UsageError(f"{args.folder} is not a folder")
    handler = functools.partial(
        http.server.SimpleHTTPRequestHandler, directory=str(args.folder.resolve())
    )
    with http.server.ThreadingHTTPServer((args.host, args.port), handler) as server:
        host, port = server.server_address[:2]
        print(f"serving {args.folder} at http://{host}:{port}/ (Ctrl-C stops)", flush=True)
        server.serve_forever()
    return 0


def _mirror(args: argparse.Namespace, settings: Callable[[], Any]) -> int:
    from clustercord.plugins.sources import Source
    from clustercord.signing import TrustStore
    from clustercord_marketplace.mirror import mirror

    source = Source("mirrored", args.source, args.key)
    copied, skipped = asyncio.run(
        mirror(
            source,
            args.folder,
            TrustStore(settings().trust_dir),
            pip_index=not args.no_pip_index,
        )
    )
    print(f"{args.folder}: index and {len(copied)} wheels")
    for line in skipped:
        print(f"  skipped {line}")
    return 0
