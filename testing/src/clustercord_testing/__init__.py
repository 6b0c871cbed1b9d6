"""Test a plugin in a few lines: a real kernel in a temporary data directory.

::

    async def test_hello(clustercord_harness, tmp_path):
        harness = clustercord_harness
        harness.add_plugin(Path(__file__).parent.parent / "src" / "my_plugin")
        await harness.start()
        result = await harness.run("/hello name:world")
        assert result.ok and "world" in result.reply.text

The harness signs your plugin with a throwaway key in a temporary GnuPG home and
trusts only that key, so the plugin goes through the same verification, grant and
guard as in production. It needs ``gpg`` installed.
"""

from clustercord_testing.harness import KernelHarness, RunResult, TestSigner

__version__ = "0.1.0"
__all__ = ["KernelHarness", "RunResult", "TestSigner", "__version__"]
