"""The kernel harness behind the ``clustercord_harness`` fixture."""

from __future__ import annotations

import itertools
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from clustercord_sdk.reply import Confirmation, Modal, Reply

_counter = itertools.count(1)


class TestSigner:
    """A throwaway Ed25519 key in a temporary GnuPG home (never a committed key)."""

    __test__ = False  # not a pytest test class

    def __init__(self) -> None:
        from clustercord.signing import SigningKeys

        # GnuPG's agent socket path must stay short: keep the home directly under /tmp.
        self.home = Path(tempfile.mkdtemp(prefix="ccgpg"))
        self.keys = SigningKeys(self.home)
        self.fingerprint = self.keys.create("ClusterCord test key", "test@clustercord.invalid")
        self.public_key = self.keys.export_public(self.fingerprint)

    def sign(self, folder: Path) -> None:
        from clustercord.signing import sign_plugin_folder
        from clustercord_sdk.manifest import MANIFEST_FILE, load_manifest

        manifest = load_manifest(folder / MANIFEST_FILE)
        sign_plugin_folder(folder, dict(manifest.raw), self.keys.signer(self.fingerprint))

    def cleanup(self) -> None:
        shutil.rmtree(self.home, ignore_errors=True)


@dataclass
class RunResult:
    """What a command produced: the final reply, what was sent before it, the outcome."""

    status: str
    reply: Reply
    sent: list[Reply] = field(default_factory=list)
    asked: list[Confirmation] = field(default_factory=list)
    exit_code: int = 0
    forms: list[Modal] = field(default_factory=list)
    """The forms the command asked to fill in, in order (answered from ``run(forms=…)``)."""

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def text(self) -> str:
        return self.reply.text or ""


class KernelHarness:
    """A kernel with its own data directory, trusting only the test signer."""

    def __init__(
        self, data_dir: Path, signer: TestSigner, *, isolated: bool | None = None, **settings: Any
    ) -> None:
        """``isolated=True``: the kernel's own tiers, as in production: builtins added with
        ``add_builtins`` run in-process, every other plugin in a process of its own. By
        default (``None``) only plugins added with ``add_plugin(isolated=True)`` are isolated
        (the test key is trusted as a release key, and plugins signed by one may run
        in-process), unless ``CLUSTERCORD_ISOLATION`` says otherwise (``signer``, ``all``)."""
        import os

        from clustercord.config import load_settings

        self.data_dir = data_dir
        self.signer = signer
        env = {"CLUSTERCORD_DATA_DIR": str(data_dir)}
        if isolated is None:
            env["CLUSTERCORD_ISOLATION"] = os.environ.get("CLUSTERCORD_ISOLATION", "keys")
        else:
            env["CLUSTERCORD_ISOLATION"] = "signer" if isolated else "keys"
        self.settings = load_settings(env=env, **settings)
        self.sources: list[Any] = []
        self.kernel: Any = None
        self._plugins_dir = data_dir / "installed-plugins"
        self._trust()

    def _trust(self) -> None:
        from clustercord.signing import TrustStore

        TrustStore(self.settings.trust_dir).trust(
            self.signer.public_key, label="test key", kind="release"
        )

    def add_plugin(
        self,
        folder: Path,
        *,
        sign: bool = True,
        builtin: bool = False,
        copy: bool = True,
        isolated: bool = False,
    ) -> Path:
        """Install the plugin in ``folder`` (copied, then signed); returns the installed folder.
        ``builtin``: installed as one of the kernel's builtins (signed by the test key, which
        is trusted as a release key), so it is granted what it declares. ``isolated``: it runs
        in a process of its own, as a third-party plugin does."""
        from clustercord.plugins.discovery import BUILTIN_DISTRIBUTION, PluginSource

        folder = Path(folder)
        name = folder.name
        if copy:
            target = self._plugins_dir / f"{name}-{next(_counter)}"
            while target.exists():  # a harness of another process (a bot restarted) made it
                target = self._plugins_dir / f"{name}-{next(_counter)}"
            shutil.copytree(
                folder, target, ignore=shutil.ignore_patterns("__pycache__", "SIGNATURE.asc")
            )
            folder = target
        if sign:
            self.signer.sign(folder)
        module = f"cc_test_{folder.name.replace('-', '_')}_{next(_counter)}"
        entry_point = _manifest_name(folder)
        if isolated:
            self.settings = replace(self.settings, isolate=self.settings.isolate | {entry_point})
        if builtin:  # a builtin of this test's kernel, as if it shipped in its list
            from clustercord.plugins.discovery import BUILTIN_PLUGINS

            names = self.settings.builtin_plugins or BUILTIN_PLUGINS
            self.settings = replace(self.settings, builtin_plugins=names | {entry_point})
        self.sources.append(
            PluginSource(
                entry_point=entry_point,
                module=module,
                folder=folder,
                distribution=BUILTIN_DISTRIBUTION if builtin else "test-plugins",
                distribution_version="0",
            )
        )
        return folder

    def add_builtins(self, names: Iterable[str] | None = None) -> list[Path]:
        """Install copies of ClusterCord's builtin plugins, signed by the test key."""
        from clustercord.plugins.discovery import BUILTIN_DISTRIBUTION, discover

        added = []
        for source in discover():
            if (
                source.distribution == BUILTIN_DISTRIBUTION
                and source.folder is not None
                and (names is None or source.entry_point in names)
            ):
                added.append(self.add_plugin(source.folder, builtin=True))
        return added

    async def start(self) -> Any:
        from clustercord.kernel import Kernel

        self.kernel = await Kernel(self.settings, sources=self.sources).start()
        return self.kernel

    async def restart(self, **settings: Any) -> Any:
        """A new kernel on the same data directory: what survives a restart."""
        self.close()
        if settings:
            self.settings = replace(self.settings, **settings)
        return await self.start()

    def plugin(self, name: str) -> Any:
        return self.kernel.manager.plugins[name]

    async def run(
        self,
        line: str,
        *,
        user: str = "console",
        roles: Iterable[str] = (),
        yes: bool = True,
        frontend: str = "console",
        forms: Iterable[dict[str, str]] = (),
    ) -> RunResult:
        """Run a command line as ``user`` and capture every reply.

        It goes through the kernel's console front end (:class:`ConsoleFrontend`), as
        ``clustercord run`` does. Each form (modal) the command asks for is answered, like
        console prompts, with the next dict of ``forms`` (input name → text); with none
        left it is abandoned.
        """
        from clustercord.frontends.console import ConsoleFrontend

        recorder = _Recorder(iter(forms))
        console = ConsoleFrontend(
            self.kernel, recorder, user_id=user, roles=roles, yes=yes, frontend=frontend
        )
        outcome = await console.run_line(line)
        return RunResult(
            outcome.status,
            outcome.reply,
            recorder.sent,
            recorder.asked,
            outcome.exit_code,
            recorder.filled,
        )

    def close(self) -> None:
        if self.kernel is not None:
            self.kernel.close()
            self.kernel = None


class _Recorder:
    """The harness's console surface: keeps what a terminal would have shown."""

    def __init__(self, answers: Iterator[dict[str, str]]) -> None:
        self.answers = answers
        self.sent: list[Reply] = []
        self.asked: list[Confirmation] = []
        self.filled: list[Modal] = []

    def render(self, reply: Reply) -> None:
        self.sent.append(reply)

    async def ask(self, confirmation: Confirmation, assume_yes: bool) -> bool:
        self.asked.append(confirmation)
        return assume_yes

    async def fill(self, modal: Modal) -> dict[str, str] | None:
        self.filled.append(modal)
        return next(self.answers, None)


def _manifest_name(folder: Path) -> str:
    import json

    try:
        return str(json.loads((folder / "manifest.json").read_text("utf-8"))["name"])
    except (OSError, ValueError, KeyError):
        return folder.name
