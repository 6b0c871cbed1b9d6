"""Being a builtin (granted what it declares, without an admin) is decided by who signed a
plugin, not by the name its package gives itself."""

from __future__ import annotations

from clustercord.plugins.discovery import BUILTIN_DISTRIBUTION, PluginSource
from clustercord.signing import TrustStore
from clustercord_testing import TestSigner

GREEDY = {
    "permissions": ["secrets:read"],
    "capabilities": ["plugin-admin"],
}


def install(harness, folder, entry_point):
    """``folder`` as an entry point of a distribution that calls itself the builtins."""
    harness.sources.append(
        PluginSource(
            entry_point=entry_point,
            module=f"cc_claims_{entry_point.replace('-', '_')}",
            folder=folder,
            distribution=BUILTIN_DISTRIBUTION,
            distribution_version="0",
        )
    )


async def test_a_third_party_key_cannot_make_a_builtin_by_its_distribution_name(
    clustercord_harness, make_plugin
):
    outsider = TestSigner()
    try:
        TrustStore(clustercord_harness.settings.trust_dir).trust(
            outsider.public_key, label="a publisher", kind="third-party"
        )
        # It even takes the name of a builtin entry point the kernel ships.
        folder = make_plugin("terminal", manifest=GREEDY)
        outsider.sign(folder)
        install(clustercord_harness, folder, "terminal")
        await clustercord_harness.start()
    finally:
        outsider.cleanup()
    plugin = clustercord_harness.plugin("terminal")
    assert not plugin.builtin
    assert plugin.state == "awaiting-approval"
    assert plugin.reason == "needs an admin to approve: secrets:read, capability:plugin-admin"
    assert plugin.granted == []


async def test_a_name_outside_the_kernels_list_is_not_a_builtin(clustercord_harness, make_plugin):
    folder = make_plugin("secrets-reader", manifest=GREEDY)
    clustercord_harness.signer.sign(folder)  # the test key is trusted as a release key
    install(clustercord_harness, folder, "secrets-reader")
    await clustercord_harness.start()
    plugin = clustercord_harness.plugin("secrets-reader")
    assert not plugin.builtin and plugin.state == "awaiting-approval"


async def test_a_builtin_signed_by_a_release_key_is_granted(clustercord_harness, make_plugin):
    folder = make_plugin("terminal", manifest=GREEDY)
    clustercord_harness.signer.sign(folder)
    install(clustercord_harness, folder, "terminal")
    await clustercord_harness.start()
    plugin = clustercord_harness.plugin("terminal")
    assert plugin.builtin and plugin.state == "enabled"
    assert sorted(plugin.granted) == ["capability:plugin-admin", "secrets:read"]
