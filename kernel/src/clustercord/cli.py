"""``clustercord``: the command line (README.md, "Command line").

Exit codes: 0 success, 1 a command error (with a clear message), 2 a usage error.
Heavy libraries are imported inside the subcommands that need them, so that
``clustercord run`` starts fast.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from clustercord import __version__
from clustercord_sdk.errors import ClusterCordError, UsageError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="clustercord",
        description="ClusterCord: Kubernetes chat-ops for Discord, with signed plugins.",
    )
    parser.add_argument("--version", action="version", version=f"clustercord {__version__}")
    parser.add_argument(
        "--log-format",
        choices=("text", "json"),
        default=os.environ.get("CLUSTERCORD_LOG_FORMAT", "text"),
        help="log lines for a person (text) or one JSON object a line (json); secrets masked",
    )
    parser.add_argument(
        "--log-level",
        choices=("debug", "info", "warning", "error"),
        default=os.environ.get("CLUSTERCORD_LOG_LEVEL", "warning"),
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run one command through the console front end")
    run.add_argument("line", help='the command, e.g. "/plugin list" or "/help command:plugin"')
    run.add_argument("--cluster", help="cluster to act on")
    run.add_argument(
        "--as",
        dest="as_user",
        metavar="USER_ID",
        help="act as this Discord user id (access policy applies)",
    )
    run.add_argument("--roles", default="", help="comma-separated Discord role ids of that user")
    run.add_argument("--json", action="store_true", help="print the Reply as JSON")
    run.add_argument("--yes", action="store_true", help="answer confirmations with yes")
    _sandbox_options(run, "for this command")

    console = sub.add_parser("console", help="interactive console (history and completion)")
    console.add_argument("--as", dest="as_user", metavar="USER_ID")
    console.add_argument("--roles", default="")
    console.add_argument("--yes", action="store_true")
    _sandbox_options(console, "and connect the console to it")

    plugins = sub.add_parser("plugins", help="installed plugins and their verification")
    plugins_sub = plugins.add_subparsers(dest="action", required=True)
    for name, text in (
        ("list", "every plugin, its state and signature"),
        ("verify", "verify every plugin; exit 1 if any is refused"),
    ):
        p = plugins_sub.add_parser(name, help=text)
        p.add_argument("--json", action="store_true")

    keys = sub.add_parser("keys", help="signing keys and the trusted-key store")
    keys_sub = keys.add_subparsers(dest="action", required=True)
    create = keys_sub.add_parser("create", help="create a signing key")
    create.add_argument("--name", required=True)
    create.add_argument("--email")
    create.add_argument("--trust", action="store_true", help="also trust it on this installation")
    keys_sub.add_parser("list", help="signing keys and trusted keys")
    trust = keys_sub.add_parser("trust", help="trust a public key file (pins its fingerprint)")
    trust.add_argument("file", type=Path)
    trust.add_argument("--label", required=True)
    trust.add_argument("--kind", choices=["release", "third-party", "dev"], default="third-party")
    untrust = keys_sub.add_parser("untrust", help="stop trusting a key")
    untrust.add_argument("fingerprint")
    export = keys_sub.add_parser("export", help="print a signing key's public key")
    export.add_argument("fingerprint")
    sign = keys_sub.add_parser(
        "sign", help="sign plugin folders (with CLUSTERCORD_SIGNING_KEY when set: a release build)"
    )
    sign.add_argument("folders", nargs="*", type=Path)
    sign.add_argument("--builtins", action="store_true", help="sign every builtin plugin")
    sign.add_argument("--key", help="fingerprint of a local signing key")
    dev = keys_sub.add_parser(
        "dev-setup", help="create and trust a development key, sign the builtin plugins"
    )
    dev.add_argument("--quiet", action="store_true")
    forget = keys_sub.add_parser(
        "forget-sealed",
        help="the data key is lost for good: delete what was sealed with it (uploaded "
        "clusters, undelivered credentials, sealed plugin data), so a new key can be made",
    )
    forget.add_argument("--yes", action="store_true", help="really delete it")

    sandbox_cli = _sandbox_cli()
    if sandbox_cli is not None:
        sandbox_cli.add_parser(sub)
    marketplace_cli = _marketplace_cli()
    if marketplace_cli is not None:
        marketplace_cli.add_parser(sub)

    audit = sub.add_parser("audit", help="the tamper-evident audit log")
    audit_sub = audit.add_subparsers(dest="action", required=True)
    exp = audit_sub.add_parser("export", help="write the log as JSON lines")
    exp.add_argument("--output", "-o", type=Path, help="file (default: standard output)")
    exp.add_argument("--since", type=int, default=0, help="only entries after this sequence number")
    check = audit_sub.add_parser(
        "verify", help="check the keyed chain and its head; exit 1 if it was tampered with"
    )
    check.add_argument(
        "--anchor",
        metavar="LINE",
        help="a line printed by `clustercord audit anchor`: the log must still hold that head",
    )
    check.add_argument(
        "--strict",
        action="store_true",
        help="exit 1 on warnings too (a command started with no result recorded)",
    )
    audit_sub.add_parser(
        "anchor", help="print the current head (seq, MAC, time) as one line to keep elsewhere"
    )

    from clustercord.frontends.discord import cli as discord_cli

    discord_cli.add_parsers(sub)
    from clustercord import backup_cli

    backup_cli.add_parser(sub)
    return parser


def _sandbox_options(parser: argparse.ArgumentParser, purpose: str) -> None:
    parser.add_argument(
        "--sandbox",
        metavar="FIXTURE",
        help=f"start an embedded sandbox cluster (homelab, empty or a YAML file) {purpose}",
    )
    parser.add_argument(
        "--unsafe-host-exec",
        action="store_true",
        help="with --sandbox: run pods' commands on this machine, unisolated (exec, terminals)",
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from clustercord import logs

    logs.configure(args.log_format, args.log_level)
    handler = {
        "sandbox": _sandbox,
        "marketplace": _marketplace,
        "run": _run,
        "console": _console,
        "plugins": _plugins,
        "keys": _keys,
        "audit": _audit,
        "serve": _discord,
        "discord": _discord,
        "backup": _backup,
    }[args.command]
    try:
        return int(handler(args) or 0)
    except UsageError as exc:
        print(f"clustercord: error: {exc}", file=sys.stderr)
        return 2
    except ClusterCordError as exc:
        print(f"clustercord: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


# -- shared --------------------------------------------------------------------------
def _settings() -> Any:
    from clustercord.config import load_settings

    return load_settings()


async def _kernel() -> Any:
    from clustercord.kernel import Kernel

    return await Kernel(_settings()).start()


def _frontend(kernel: Any, renderer: Any, args: argparse.Namespace, **kwargs: Any) -> Any:
    """The console front end for ``run`` and ``console``, acting as ``--as`` with ``--roles``."""
    from clustercord.frontends.console import ConsoleFrontend

    kernel.conversations.register("console", renderer.open_conversation)
    return ConsoleFrontend(
        kernel,
        renderer,
        user_id=args.as_user,
        roles=args.roles.split(","),
        cluster=getattr(args, "cluster", None),
        yes=args.yes,
        **kwargs,
    )


# -- run / console -------------------------------------------------------------------
def _run(args: argparse.Namespace) -> int:
    from clustercord.frontends.commandline import parse_command_line

    path, options = parse_command_line(args.line)
    with _with_sandbox(args.sandbox, args.unsafe_host_exec):
        return asyncio.run(_run_async(args, path, options))


async def _run_async(
    args: argparse.Namespace, path: tuple[str, ...], options: dict[str, str]
) -> int:
    from rich.console import Console

    from clustercord.frontends.console import ConsoleRenderer, reply_to_json

    kernel = await _kernel()
    try:
        renderer = ConsoleRenderer(Console(stderr=args.json), kernel.settings.output_dir)
        # With --json, stdout carries only the final reply's JSON: interim replies are dropped.
        console = _frontend(kernel, renderer, args, interim=not args.json)
        outcome = await console.run(path, options)
        if args.json:
            print(reply_to_json(outcome.reply))
        else:
            console.show(outcome.reply)
        return int(outcome.exit_code)
    finally:
        await kernel.aclose()


def _console(args: argparse.Namespace) -> int:
    with _with_sandbox(args.sandbox, args.unsafe_host_exec):
        return asyncio.run(_console_async(args))


@contextlib.contextmanager
def _with_sandbox(fixture: str | None, host_exec: bool = False) -> Iterator[None]:
    """Run a sandbox cluster beside the kernel and point ``KUBECONFIG`` at it (first).
    Its pods' commands run in namespaces of their own; where the machine cannot make them,
    the sandbox refuses exec and this says so (``host_exec``: on the host, unisolated)."""
    if fixture is None:
        yield
        return
    if _sandbox_cli() is None:
        raise UsageError("--sandbox needs the sandbox: pip install 'clustercord[sandbox]'")
    from clustercord_sandbox.background import BackgroundSandbox
    from clustercord_sandbox.fixtures import FixtureError

    try:
        box = BackgroundSandbox(fixture=fixture, host_exec=host_exec)
        box.start()  # it warns when its pods' commands cannot be isolated, or are not
    except FixtureError as exc:
        raise UsageError(f"--sandbox {fixture}: {exc}") from None
    try:
        path = box.write_kubeconfig(_settings().data_dir / "sandbox" / "console-kubeconfig")
        previous = os.environ.get("KUBECONFIG")
        os.environ["KUBECONFIG"] = os.pathsep.join(filter(None, [str(path), previous]))
        try:
            yield
        finally:
            if previous is None:
                os.environ.pop("KUBECONFIG", None)
            else:
                os.environ["KUBECONFIG"] = previous
    finally:
        box.stop()


async def _console_async(args: argparse.Namespace) -> int:
    from rich.console import Console

    from clustercord.frontends.commandline import parse_command_line
    from clustercord.frontends.console import ConsoleRenderer
    from clustercord.frontends.repl import run_repl
    from clustercord.kernel import KernelPluginAdmin

    kernel = await _kernel()
    console = Console()
    renderer = ConsoleRenderer(console, kernel.settings.output_dir)
    frontend = _frontend(kernel, renderer, args)
    admin = KernelPluginAdmin(kernel)

    async def dispatch_line(line: str) -> None:
        try:
            path, options = parse_command_line(line)
        except UsageError as exc:
            console.print(f"[red]Error:[/red] {exc}", highlight=False)
            return
        outcome = await frontend.run(path, options)
        frontend.show(outcome.reply)

    console.print(
        "[bold]ClusterCord console[/bold] — /help lists commands, Tab completes, Ctrl-D quits."
    )
    stop = asyncio.Event()
    background = asyncio.create_task(kernel.run_background(stop))
    try:
        await run_repl(
            dispatch_line,
            admin.commands,
            kernel.settings.data_dir / "console_history",
            console,
            piped=None if sys.stdin.isatty() else sys.stdin,
        )
    finally:
        stop.set()
        await background
        await kernel.aclose()
    return 0


# -- plugins ---------------------------------------------------------------------------
def _plugins(args: argparse.Namespace) -> int:
    async def collect() -> tuple[list[Any], dict[str, str]]:
        from clustercord.kernel import KernelPluginAdmin

        kernel = await _kernel()
        try:
            return KernelPluginAdmin(kernel).list(), kernel.isolation.status()
        finally:
            await kernel.aclose()

    infos, isolation = asyncio.run(collect())
    refused = [i for i in infos if i.state == "refused"]
    if args.json:
        from clustercord.kernel import info_dict

        listed = {"plugins": [info_dict(i) for i in infos], "isolation": isolation}
        print(json.dumps(listed, indent=2))
    else:
        from rich.console import Console
        from rich.table import Table

        table = Table(
            title=f"{len(infos)} plugins",
            caption="Isolated plugins: " + "; ".join(isolation.values()),
        )
        for column in ("Plugin", "Version", "State", "Signature", "Permissions", "Reason"):
            table.add_column(column)
        for i in infos:
            table.add_row(
                i.name,
                i.version,
                i.state,
                i.signature,
                ", ".join(i.permissions + [f"capability:{c}" for c in i.capabilities]) or "none",
                i.reason or "",
            )
        Console().print(table)
    if args.action == "verify":
        for info in refused:  # whole, whatever the table's width cut
            print(f"refused: {info.name}: {info.reason}", file=sys.stderr)
    return 1 if args.action == "verify" and refused else 0


# -- keys ------------------------------------------------------------------------------
def _keys(args: argparse.Namespace) -> int:
    from clustercord.signing import SigningError, SigningKeys, TrustStore

    settings = _settings()
    keys = SigningKeys(settings.signing_dir)
    trust = TrustStore(settings.trust_dir)
    try:
        if args.action == "create":
            fingerprint = keys.create(args.name, args.email)
            if args.trust:
                trust.trust(keys.export_public(fingerprint), label=args.name, kind="release")
            print(fingerprint)
        elif args.action == "list":
            print("Signing keys (private, this machine):")
            for key in keys.secret_keys():
                print(f"  {key['fingerprint']}  {', '.join(key['uids'])}")
            print("Trusted keys (pinned):")
            for trusted in trust.keys().values():
                print(f"  {trusted.fingerprint}  {trusted.kind:12} {trusted.label}")
        elif args.action == "trust":
            try:
                text = args.file.read_text("utf-8")
            except OSError as exc:
                raise UsageError(f"{args.file}: {exc.strerror}") from None
            print(trust.trust(text, label=args.label, kind=args.kind))
        elif args.action == "untrust":
            if not trust.untrust(args.fingerprint):
                raise UsageError(f"no single trusted key matches {args.fingerprint!r}")
        elif args.action == "export":
            print(keys.export_public(args.fingerprint), end="")
        elif args.action == "sign":
            return _sign(args, keys)
        elif args.action == "dev-setup":
            return _dev_setup(args, keys, trust)
        elif args.action == "forget-sealed":
            return _forget_sealed(settings, confirmed=args.yes)
    except SigningError as exc:
        print(f"clustercord: {exc}", file=sys.stderr)
        return 1
    return 0


def _forget_sealed(settings: Any, *, confirmed: bool) -> int:
    """Only for a data key that is lost for good: the kernel refuses to start over sealed
    data it cannot read, and never makes a new key over it on its own."""
    from clustercord.secretbox import forget_sealed, sealed_inventory
    from clustercord.storage import Database

    database = Database(settings.database_path)
    try:
        lost = sealed_inventory(database)
        if not lost:
            print("nothing sealed is stored: there is nothing to forget")
            return 0
        if not confirmed:
            print("this deletes, for good: " + "; ".join(lost))
            print("restore the key from a backup instead if you can; else run again with --yes")
            return 1
        forget_sealed(database)
        print("deleted: " + "; ".join(lost) + ". The next start makes a new data key.")
        return 0
    finally:
        database.close()


DEV_KEY_NAME = "ClusterCord development key"


def _dev_setup(args: argparse.Namespace, keys: Any, trust: Any) -> int:
    """Make this installation's development key (once), trust it, sign the builtins.

    The private key never leaves the data directory; a fresh clone gets its own.
    """
    record = keys.path / "dev-fingerprint"
    fingerprint = record.read_text().strip() if record.exists() else None
    if fingerprint and not any(k["fingerprint"] == fingerprint for k in keys.secret_keys()):
        fingerprint = None
    if fingerprint is None:
        fingerprint = keys.create(DEV_KEY_NAME, comment="dev")
        record.write_text(fingerprint + "\n")
    if fingerprint not in trust.keys():  # noqa: SIM118 - TrustStore.keys() is a method
        trust.trust(
            keys.export_public(fingerprint), label="development key (this machine)", kind="dev"
        )
    signed = _sign_builtins(keys.signer(fingerprint))
    if not args.quiet:
        print(f"Development key {fingerprint} trusted; signed: {', '.join(signed)}")
    return 0


def _sign(args: argparse.Namespace, keys: Any) -> int:
    from clustercord.signing import release_signer

    armored = os.environ.get("CLUSTERCORD_SIGNING_KEY")
    if armored:
        with release_signer(armored, os.environ.get("CLUSTERCORD_SIGNING_PASSPHRASE")) as signer:
            signed = _sign_targets(args, signer)
    else:
        fingerprint = args.key
        if fingerprint is None:
            record = keys.path / "dev-fingerprint"
            if not record.exists():
                raise UsageError(
                    "no --key given and no development key (clustercord keys dev-setup)"
                )
            fingerprint = record.read_text().strip()
        signed = _sign_targets(args, keys.signer(fingerprint))
    print(f"signed: {', '.join(signed) or 'nothing'}")
    return 0


def _sign_targets(args: argparse.Namespace, signer: Any) -> list[str]:
    from clustercord.signing import sign_plugin_folder
    from clustercord_sdk.manifest import MANIFEST_FILE, load_manifest

    signed = _sign_builtins(signer) if args.builtins else []
    for folder in args.folders:
        manifest = load_manifest(folder / MANIFEST_FILE)
        sign_plugin_folder(folder, dict(manifest.raw), signer)
        signed.append(manifest.name)
    if not signed:
        raise UsageError("nothing to sign: give plugin folders or --builtins")
    return signed


def _sign_builtins(signer: Any) -> list[str]:
    from clustercord.plugins.discovery import discover
    from clustercord.signing import sign_plugin_folder
    from clustercord_sdk.manifest import MANIFEST_FILE, load_manifest

    signed = []
    for source in discover():
        if source.claims_builtin and source.folder is not None:
            manifest = load_manifest(source.folder / MANIFEST_FILE)
            sign_plugin_folder(source.folder, dict(manifest.raw), signer)
            signed.append(manifest.name)
    return signed


# -- sandbox ----------------------------------------------------------------------------
# The sandbox is a distribution of its own (clustercord-sandbox), an optional extra of the
# kernel: this command line is the only place the kernel reaches it.
def _sandbox_cli() -> Any:
    """The sandbox's command-line module, or None when the sandbox is not installed."""
    try:
        from clustercord_sandbox import cli
    except ImportError:
        return None
    return cli


def _sandbox(args: argparse.Namespace) -> int:
    return int(_sandbox_cli().run(args, _settings().data_dir))


# -- marketplace --------------------------------------------------------------------------
# The publisher tools are a distribution of their own (clustercord-marketplace), an optional
# extra: this command line is the only place the kernel reaches them.
def _marketplace_cli() -> Any:
    """The marketplace tools' command-line module, or None when they are not installed."""
    try:
        from clustercord_marketplace import cli
    except ImportError:
        return None
    return cli


def _marketplace(args: argparse.Namespace) -> int:
    return int(_marketplace_cli().run(args, _settings))


# -- discord ---------------------------------------------------------------------------
def _discord(args: argparse.Namespace) -> int:
    from clustercord.frontends.discord import cli as discord_cli

    return discord_cli.run(args, _settings)


# -- audit -----------------------------------------------------------------------------
def _backup(args: argparse.Namespace) -> int:
    from clustercord import backup_cli

    return backup_cli.run(args, _settings())


def _audit(args: argparse.Namespace) -> int:
    from clustercord.services.audit import AuditLog, format_anchor, parse_anchor
    from clustercord.storage import Database

    anchor = None
    if getattr(args, "anchor", None):
        try:
            anchor = parse_anchor(args.anchor)
        except ValueError as exc:
            raise UsageError(f"--anchor: {exc}") from None
    settings = _settings()
    database = Database(settings.database_path)
    log: AuditLog | None = None
    try:
        log = AuditLog(database, create_key=False)  # never makes a key: verify reports it
        if args.action == "export":
            if args.output:
                with open(args.output, "w", encoding="utf-8") as stream:
                    count = log.export(stream, since_seq=args.since)
                print(f"exported {count} entries to {args.output}", file=sys.stderr)
            else:
                log.export(sys.stdout, since_seq=args.since)
            return 0
        result = log.verify(anchor=anchor)
        if not result.ok:
            print(f"audit log TAMPERED ({len(result.problems)} problems):", file=sys.stderr)
            for problem in result.problems[:50]:
                print(f"  {problem}", file=sys.stderr)
            if len(result.problems) > 50:
                print(f"  … and {len(result.problems) - 50} more", file=sys.stderr)
            if args.action == "anchor":
                print("no anchor printed: the log does not verify", file=sys.stderr)
            return 1
        if args.action == "anchor":
            print(format_anchor(log.head()))
            return 0
        for warning in result.warnings:
            print(f"warning: {warning}")
        print(
            f"audit log intact: {result.count} entries, head seq {result.last_seq} "
            f"{result.head}" + (", the anchor matches" if anchor is not None else "")
        )
        return 1 if args.strict and result.warnings else 0
    finally:
        if log is not None:
            log.close()
        database.close()


if __name__ == "__main__":
    sys.exit(main())
