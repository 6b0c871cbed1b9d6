"""A plugin that fails verification is refused with its reason, never imported,
and the kernel keeps serving every other plugin."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from clustercord_testing import TestSigner

SIDE_EFFECT = """
import pathlib
pathlib.Path(__file__).with_name("IMPORTED").write_text("yes")
"""


async def _start_with(harness, make_plugin, tamper):
    good = harness.add_plugin(make_plugin("good"))
    bad = harness.add_plugin(make_plugin("bad", init=SIDE_EFFECT))
    tamper(bad)
    await harness.start()
    return good, bad


async def assert_refused(harness, bad, reason_fragment):
    plugin = harness.plugin("bad")
    assert plugin.state == "refused"
    assert reason_fragment in plugin.reason
    assert not (bad / "IMPORTED").exists(), "a refused plugin's code must never run"
    assert (await harness.run("/good")).text == "good ran"
    refused = await harness.run("/bad")
    assert refused.status == "error"
    assert refused.text.startswith("/bad belongs to plugin bad, which is refused: ")


async def test_file_changed_after_signing(clustercord_harness, make_plugin):
    def tamper(folder):
        path = folder / "commands.py"
        path.write_bytes(path.read_bytes().replace(b"ran", b"rAn"))  # one byte

    _, bad = await _start_with(clustercord_harness, make_plugin, tamper)
    await assert_refused(clustercord_harness, bad, "file changed after signing: commands.py")


async def test_file_added_after_signing(clustercord_harness, make_plugin):
    _, bad = await _start_with(
        clustercord_harness, make_plugin, lambda f: (f / "extra.py").write_text("x = 1\n")
    )
    await assert_refused(clustercord_harness, bad, "file not covered by the signature: extra.py")


async def test_missing_signature(clustercord_harness, make_plugin):
    _, bad = await _start_with(
        clustercord_harness, make_plugin, lambda f: (f / "SIGNATURE.asc").unlink()
    )
    await assert_refused(clustercord_harness, bad, "missing signature (SIGNATURE.asc)")


async def test_bad_signature(clustercord_harness, make_plugin):
    def tamper(folder):
        path = folder / "SIGNATURE.asc"
        text = path.read_text()
        digest_line = next(line for line in text.splitlines() if '"commands.py"' in line)
        forged = digest_line.split(": ")[0] + ': "' + "0" * 64 + '",'
        path.write_text(text.replace(digest_line, forged))

    _, bad = await _start_with(clustercord_harness, make_plugin, tamper)
    await assert_refused(clustercord_harness, bad, "bad signature")


async def test_signature_by_untrusted_key(clustercord_harness, make_plugin):
    stranger = TestSigner()
    try:
        _, bad = await _start_with(clustercord_harness, make_plugin, stranger.sign)
        await assert_refused(clustercord_harness, bad, "untrusted key")
        # … and what to do about it.
        assert "`clustercord keys trust FILE` pins" in clustercord_harness.plugin("bad").reason
    finally:
        stranger.cleanup()


async def test_key_in_keyring_but_not_pinned_is_refused(clustercord_harness, make_plugin):
    """gpg calls any signature by a key in the keyring valid; the pin list decides."""
    stranger = TestSigner()
    try:
        trust = clustercord_harness.settings.trust_dir
        from clustercord.signing import TrustStore

        TrustStore(trust).gpg.import_keys(stranger.public_key)  # imported, never pinned
        _, bad = await _start_with(clustercord_harness, make_plugin, stranger.sign)
        await assert_refused(clustercord_harness, bad, "not pinned as trusted")
    finally:
        stranger.cleanup()


async def test_incompatible_api(clustercord_harness, make_plugin):
    harness = clustercord_harness
    harness.add_plugin(make_plugin("good"))
    harness.add_plugin(make_plugin("bad", manifest={"api": ">=2.0"}, init=SIDE_EFFECT))
    await harness.start()
    bad = harness.plugin("bad")
    assert bad.state == "refused"
    assert bad.reason == "incompatible kernel API: the plugin needs >=2.0, this kernel provides 1.0"
    assert (await harness.run("/good")).ok


async def test_invalid_manifest_names_the_path(clustercord_harness, make_plugin):
    harness = clustercord_harness
    folder = harness.add_plugin(make_plugin("bad", init=SIDE_EFFECT))
    data = json.loads((folder / "manifest.json").read_text())
    data["commands"][0]["colour"] = "red"
    (folder / "manifest.json").write_text(json.dumps(data))
    harness.add_plugin(make_plugin("good"))
    await harness.start()
    bad = harness.plugin("bad")
    assert bad.state == "refused"
    assert "commands[0]: unknown field 'colour'" in bad.reason
    assert (await harness.run("/good")).ok


async def test_builtin_with_one_changed_byte_is_the_only_one_refused(clustercord_harness):
    harness = clustercord_harness
    folders = {f.name.rsplit("-", 1)[0]: f for f in harness.add_builtins()}
    target = folders["help"] / "commands.py"
    data = bytearray(target.read_bytes())
    data[-2] ^= 0x01
    target.write_bytes(bytes(data))
    await harness.start()
    states = {name: p.state for name, p in harness.kernel.manager.plugins.items()}
    assert states["help"] == "refused"
    assert set(states) == set(folders)
    assert {name for name, state in states.items() if state == "enabled"} == set(folders) - {"help"}
    assert "file changed after signing: commands.py" in harness.plugin("help").reason
    listed = await harness.run("/plugin list")
    assert listed.ok
    rows = {p["name"]: p for p in listed.reply.data["plugins"]}
    assert rows["help"]["state"] == "refused"
    assert rows["plugins"]["signature"] == "verified"


async def test_verifying_leaves_no_gpg_agent_behind(clustercord_harness, make_plugin):
    """Verification needs public keys only: no daemon outlives the process (a bot restarted
    a hundred times, or a test run, would otherwise collect a gpg-agent per data directory)."""
    await _start_with(clustercord_harness, make_plugin, lambda folder: None)
    assert clustercord_harness.plugin("good").state == "enabled"
    keyring = clustercord_harness.data_dir / "trust" / "keyring"
    socket = subprocess.run(
        ["gpgconf", "--homedir", str(keyring), "--list-dirs", "agent-socket"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert socket and not Path(socket).exists()


async def test_a_sourceless_bytecode_file_is_not_covered_by_the_signature(
    clustercord_harness, make_plugin
):
    def tamper(folder):
        import py_compile

        source = folder.parent / "evil_source.py"
        source.write_text("raise SystemExit('planted code ran')\n")
        py_compile.compile(str(source), cfile=str(folder / "evil.pyc"))

    _, bad = await _start_with(clustercord_harness, make_plugin, tamper)
    await assert_refused(clustercord_harness, bad, "file not covered by the signature: evil.pyc")


async def test_planted_bytecode_cache_does_not_run(clustercord_harness, make_plugin):
    """A ``__pycache__`` entry forged to match the source's time and size would run instead
    of the source under Python's own loader; the kernel compiles the signed source."""
    import importlib.util
    import os
    import py_compile

    folder = clustercord_harness.add_plugin(make_plugin("cached"))
    source = folder / "commands.py"
    evil = "def run(ctx):\n    return 'planted bytecode ran'\n"
    size = source.stat().st_size
    forged = folder.parent / "forged.py"
    forged.write_text(evil.rstrip("\n").ljust(size - 1) + "\n")
    stat = source.stat()
    os.utime(forged, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    py_compile.compile(str(forged), cfile=importlib.util.cache_from_source(str(source)))
    await clustercord_harness.start()
    assert clustercord_harness.plugin("cached").state == "enabled"  # caches are not signed
    assert (await clustercord_harness.run("/cached")).text == "cached ran"
