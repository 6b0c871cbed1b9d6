"""A plugin installed from a distribution is checked against the distribution's RECORD: the
files the signature lists are the files the installer wrote (issue 14, "signatures cover
what runs"). Each test installs a signed plugin into a site folder with a real
``*.dist-info`` (METADATA, entry_points.txt, RECORD) and lets discovery find it there, as it
finds installed plugins."""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from clustercord.plugins.discovery import discover
from clustercord_testing.site import signed_builtins_site

_counter = itertools.count()


def record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
    return f"sha256={digest.decode()}"


def install(harness, source: Path, site: Path, *, record: bool = True, edit=None) -> Path:
    """``source`` signed and installed into ``site`` as package ``<pkg>.hello`` of
    distribution ``cc-record-N``; ``edit(lines)`` may change RECORD's lines before they are
    written. Returns the installed plugin folder."""
    folder = write_distribution(harness.signer, source, site, record=record, edit=edit)
    harness.sources.extend(discover(path=[str(site)]))
    return folder


def write_distribution(signer, source: Path, site: Path, *, record: bool = True, edit=None):
    """What :func:`install` writes into ``site`` (the plugin signed by ``signer``)."""
    n = next(_counter)
    package = f"cc_record_{n}"
    folder = site / package / "hello"
    shutil.copytree(source, folder, ignore=shutil.ignore_patterns("__pycache__"))
    (site / package / "__init__.py").write_text("")
    signer.sign(folder)
    info = site / f"cc_record_{n}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: cc-record-{n}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[clustercord.plugins]\nhello = {package}.hello\n")
    lines = []
    if record:
        for path in sorted((site / package).rglob("*")):
            if path.is_file():
                relative = path.relative_to(site).as_posix()
                lines.append(f"{relative},{record_hash(path.read_bytes())},{path.stat().st_size}")
    for name in ("METADATA", "entry_points.txt"):
        lines.append(f"{info.name}/{name},{record_hash((info / name).read_bytes())},")
    lines.append(f"{info.name}/RECORD,,")
    if edit is not None:
        lines = edit(lines)
    (info / "RECORD").write_text("\n".join(lines) + "\n")
    return folder


async def test_a_plugin_whose_record_matches_is_enabled(clustercord_harness, make_plugin, tmp_path):
    folder = install(clustercord_harness, make_plugin("hello"), tmp_path / "site")
    source = clustercord_harness.sources[-1]
    assert source.folder == folder
    assert {path for path, _, _ in source.record} >= {"commands.py", "SIGNATURE.asc"}
    await clustercord_harness.start()
    plugin = clustercord_harness.plugin("hello")
    assert plugin.state == "enabled", plugin.reason
    assert (await clustercord_harness.run("/hello")).reply.text == "hello ran"


async def test_a_file_whose_record_hash_differs_is_refused(
    clustercord_harness, make_plugin, tmp_path
):
    # The signed folder was swapped after the installer wrote it (or RECORD was): the
    # signature alone cannot tell, RECORD can.
    def edit(lines):
        return [
            f"{line.split(',')[0]},{record_hash(b'what the wheel held')},19"
            if line.split(",")[0].endswith("/hello/commands.py")
            else line
            for line in lines
        ]

    install(clustercord_harness, make_plugin("hello"), tmp_path / "site", edit=edit)
    await clustercord_harness.start()
    plugin = clustercord_harness.plugin("hello")
    assert plugin.state == "refused"
    assert plugin.reason == "installed files differ from the distribution's RECORD: commands.py"
    assert plugin.module is None  # never imported


async def test_a_signed_file_missing_from_record_is_refused(
    clustercord_harness, make_plugin, tmp_path
):
    def edit(lines):
        return [line for line in lines if not line.split(",")[0].endswith("/hello/commands.py")]

    install(clustercord_harness, make_plugin("hello"), tmp_path / "site", edit=edit)
    await clustercord_harness.start()
    plugin = clustercord_harness.plugin("hello")
    assert plugin.state == "refused"
    assert plugin.reason == (
        "installed files differ from the distribution's RECORD: commands.py (not listed)"
    )


async def test_code_record_lists_but_the_signature_lacks_is_refused(
    clustercord_harness, make_plugin, tmp_path
):
    # The wheel shipped a module the signature does not cover (deleted from disk so that the
    # signature check itself passes): the installed plugin is not what was distributed.
    def edit(lines):
        package = lines[0].split("/")[0]
        return [*lines, f"{package}/hello/backdoor.py,{record_hash(b'import os')},9"]

    install(clustercord_harness, make_plugin("hello"), tmp_path / "site", edit=edit)
    await clustercord_harness.start()
    plugin = clustercord_harness.plugin("hello")
    assert plugin.state == "refused"
    assert plugin.reason == (
        "the distribution's RECORD lists code the signature does not cover: backdoor.py"
    )


async def test_bytecode_caches_in_record_are_not_compared(
    clustercord_harness, make_plugin, tmp_path
):
    # pip lists the .pyc it compiled at install time; the kernel never reads them.
    def edit(lines):
        package = lines[0].split("/")[0]
        cache = f"{package}/hello/__pycache__/commands.cpython-312.pyc"
        return [*lines, f"{cache},{record_hash(b'bytecode')},8"]

    install(clustercord_harness, make_plugin("hello"), tmp_path / "site", edit=edit)
    await clustercord_harness.start()
    assert clustercord_harness.plugin("hello").state == "enabled"


async def test_an_editable_install_without_record_entries_is_unaffected(
    clustercord_harness, make_plugin, tmp_path
):
    # An editable install's RECORD lists its .pth and dist-info, nothing under the folder.
    install(clustercord_harness, make_plugin("hello"), tmp_path / "site", record=False)
    assert clustercord_harness.sources[-1].record == ()
    await clustercord_harness.start()
    assert clustercord_harness.plugin("hello").state == "enabled"


def test_plugins_verify_runs_the_record_check(tmp_path, clustercord_signer, make_plugin):
    """``clustercord plugins verify`` (the command line, real discovery) refuses what loading
    refuses: a distribution whose RECORD disagrees with the signed files fails verify, with
    the reason, and exits non-zero; the same plugin with an honest RECORD verifies."""
    site = tmp_path / "site"
    signed_builtins_site(site, clustercord_signer)
    env = {**os.environ, "PYTHONPATH": str(site), "CLUSTERCORD_DATA_DIR": str(tmp_path / "data")}
    key = tmp_path / "release.asc"
    key.write_text(clustercord_signer.public_key)
    trusted = _cli(env, "keys", "trust", str(key), "--label", "release", "--kind", "release")
    assert trusted.returncode == 0, trusted.stderr
    source = make_plugin("hello")
    honest_folder = write_distribution(clustercord_signer, source, site)
    honest = _cli(env, "plugins", "verify", "--json")
    assert honest.returncode == 0, honest.stderr
    states = {p["name"]: p["state"] for p in json.loads(honest.stdout)["plugins"]}
    assert states["hello"] != "refused", states

    # The same files, a second distribution whose RECORD lists code the signature lacks
    # (the wheel shipped a module the signature does not cover).
    def edit(lines):
        package = lines[0].split("/")[0]
        return [*lines, f"{package}/hello/backdoor.py,{record_hash(b'import os')},9"]

    package = honest_folder.parent  # the honest one goes; its tampered twin comes
    shutil.rmtree(package)
    shutil.rmtree(site / f"{package.name}-1.0.dist-info")
    write_distribution(clustercord_signer, source, site, edit=edit)
    tampered = _cli(env, "plugins", "verify")
    assert tampered.returncode == 1, tampered.stdout + tampered.stderr
    assert (
        "refused: hello: the distribution's RECORD lists code the signature does not cover: "
        "backdoor.py"
    ) in tampered.stderr, tampered.stderr


def _cli(env, *args):
    command = "import sys; from clustercord.cli import main; sys.exit(main())"
    return subprocess.run(
        [sys.executable, "-c", command, *args], env=env, capture_output=True, text=True, timeout=120
    )
