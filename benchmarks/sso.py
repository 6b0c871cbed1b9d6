"""The SSO gateway (issue 17): kubectl through ``/plugins/sso/k8s/<cluster>`` against kubectl
straight to the same sandbox, interleaved in the same run.

1. ``kubectl get pods`` of a namespace of 10 pods: p50 ratio, target ≤ 1.2.
2. ``kubectl get pods`` of 5,000 pods: p50 ratio, target ≤ 1.2.
3. A watch event's added delay: one configmap created at a time, seen by a watch through the
   gateway and one straight to the sandbox; p99 of the difference, target < 50 ms.
4. 100 concurrent clients (list requests through the gateway at once): no errors.
5. Revoke to refusal: a session revoked while a client requests in a loop and a watch is
   open; p99 of the time to the first 401 and to the watch's end, target ≤ 2 s.
6. Role loss to refusal: the fake Discord's gateway sends ``GUILD_MEMBER_UPDATE`` without
   the granting role to a real hikari gateway bot; p99 of the time from the event sent to
   the session's first 401 through the gateway, target ≤ 1 s.

The sandbox runs in this process (a thread, its controllers stopped: a fixed set of pods),
as in benchmark 5; kubectl pays its own start-up both ways. Sessions are made with the
plugin's own store (the OAuth sign-in is not what is measured). Alone:
``python benchmarks/sso.py [--quick]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any
from unittest import mock

import aiohttp
from measure import Row, median, met, percentile, skipped

PODS = 5_000
RBAC = """
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: bench-reader}
rules:
- apiGroups: [""]
  resources: [pods, configmaps]
  verbs: [get, list, watch, create]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: bench-team-reads}
subjects:
- {kind: Group, name: bench-team, apiGroup: rbac.authorization.k8s.io}
roleRef: {kind: ClusterRole, name: bench-reader, apiGroup: rbac.authorization.k8s.io}
"""


async def _fill(server: Any) -> None:
    from clustercord_sandbox.objects import WriteOptions

    registry = server.registry
    namespaces = registry.lookup("", "v1", "namespaces")
    pods = registry.lookup("", "v1", "pods")
    for name, count in (("bench", PODS), ("small", 10), ("watched", 0)):
        server.api.create(namespaces, "", {"metadata": {"name": name}}, WriteOptions())
        for i in range(count):
            pod = {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": f"pod-{i:05d}", "namespace": name},
                "spec": {"containers": [{"name": "app", "image": "nginx:1.27.3"}]},
            }
            server.api.create(pods, name, pod, WriteOptions())


async def _kubectl(config: Path, *args: str) -> float:
    start = time.perf_counter()
    process = await asyncio.create_subprocess_exec(
        shutil.which("kubectl") or "kubectl",
        "--kubeconfig",
        str(config),
        *args,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"kubectl {' '.join(args)}: {err.decode()[:300]}")
    return time.perf_counter() - start


class Endpoint:
    """Raw requests to a Kubernetes API (the gateway or the sandbox), with a bearer token."""

    def __init__(self, http: aiohttp.ClientSession, base: str, token: str) -> None:
        self.http, self.base, self.headers = http, base, {"Authorization": f"Bearer {token}"}

    async def status(self, path: str) -> int:
        async with self.http.get(self.base + path, headers=self.headers) as response:
            await response.read()
            return response.status

    async def watch(self, path: str, seen: dict[str, float], done: asyncio.Event) -> None:
        async with self.http.get(
            self.base + path, headers=self.headers, timeout=aiohttp.ClientTimeout(total=None)
        ) as response:
            async for line in response.content:
                name = json.loads(line)["object"]["metadata"]["name"]
                seen[name] = time.perf_counter()
        done.set()


async def run_async(quick: bool, scratch: Path) -> list[Row]:
    from clustercord_builtins.sso.sessions import SsoStore
    from clustercord_builtins.sso.web import kubeconfig
    from clustercord_sandbox.background import BackgroundSandbox
    from clustercord_testing.harness import KernelHarness, TestSigner

    reps, revokes, events = (5, 10, 20) if quick else (15, 30, 60)
    rows: list[Row] = []
    with contextlib.ExitStack() as stack:
        box = BackgroundSandbox()
        server = box.start()
        stack.callback(box.stop)
        box.call(server.controllers.stop())  # a fixed set of pods: nothing to reconcile
        server.controllers = None
        box.call(_fill(server), timeout=300)
        direct = box.write_kubeconfig(scratch / "sso-direct-kubeconfig")
        process = await asyncio.create_subprocess_exec(
            shutil.which("kubectl") or "kubectl",
            "--kubeconfig",
            str(direct),
            "apply",
            "-f",
            "-",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.DEVNULL,
        )
        await process.communicate(RBAC.encode())
        stack.enter_context(mock.patch.dict(os.environ, {"KUBECONFIG": str(direct)}))
        signer = TestSigner()
        stack.callback(signer.cleanup)
        harness = KernelHarness(scratch / "sso-harness", signer, http={"listen": "127.0.0.1:0"})
        stack.callback(harness.close)
        harness.add_builtins(["sso"])
        kernel = await harness.start()
        await kernel.http.start()
        plugin = harness.plugin("sso")
        if plugin.state != "enabled":
            raise RuntimeError(f"the sso plugin is {plugin.state}: {plugin.reason}")
        ctx = plugin.context
        store = SsoStore(ctx.store, ctx.sealer)
        cluster = kernel.kubernetes.registry.list()[0].name

        def session() -> tuple[Any, str, Path]:
            made, token = store.create_session(
                "1", "bench", "0", cluster, ["bench-team"], 3600, "127.0.0.1"
            )
            path = scratch / f"sso-kubeconfig-{made.id}"
            path.write_text(kubeconfig(ctx, made, token))
            return made, token, path

        _, token, through = session()
        await _kubectl(through, "get", "pods", "-n", "small")  # warm-up: the plugin's identity
        await _kubectl(direct, "get", "pods", "-n", "small")

        for label, namespace in (("10 pods", "small"), (f"{PODS:,} pods", "bench")):
            ours, theirs = [], []
            for _ in range(reps):
                ours.append(await _kubectl(through, "get", "pods", "-n", namespace))
                theirs.append(await _kubectl(direct, "get", "pods", "-n", namespace))
            ratio = median(ours) / median(theirs)
            rows.append(
                (
                    f"sso: kubectl get pods ({label}) via the gateway",
                    f"p50 {median(ours) * 1000:.0f} ms",
                    f"straight {median(theirs) * 1000:.0f} ms",
                    f"{ratio:.2f}",
                    f"≤ 1.2 {met(ratio <= 1.2)}",
                )
            )

        admin_token = server.kubeconfig()["users"][0]["user"]["token"]
        sandbox_url = server.kubeconfig()["clusters"][0]["cluster"]["server"]
        # Not verified here (the tests pin the certificate): this measures time, not trust.
        connector = aiohttp.TCPConnector(limit=0, ssl=False)
        async with aiohttp.ClientSession(connector=connector) as http:
            gateway_base = f"{kernel.http.url}/plugins/sso/k8s/{cluster}"
            gateway = Endpoint(http, gateway_base, token)
            straight = Endpoint(http, sandbox_url, admin_token)

            # The gateway's own cost per request, without kubectl (kept-alive connections).
            ours_raw, theirs_raw = [], []
            for _ in range(reps * 10):
                begin = time.perf_counter()
                assert await gateway.status("/api/v1/namespaces/small/pods") == 200
                ours_raw.append(time.perf_counter() - begin)
                begin = time.perf_counter()
                assert await straight.status("/api/v1/namespaces/small/pods") == 200
                theirs_raw.append(time.perf_counter() - begin)
            rows.append(
                (
                    "sso: one list request (10 pods) via the gateway",
                    f"p50 {median(ours_raw) * 1000:.1f} ms",
                    f"straight {median(theirs_raw) * 1000:.1f} ms",
                    f"{median(ours_raw) / median(theirs_raw):.2f}",
                    "-",
                )
            )

            # 3. Watch delay: the same events seen both ways.
            seen_ours: dict[str, float] = {}
            seen_theirs: dict[str, float] = {}
            path = "/api/v1/namespaces/watched/configmaps?watch=true"
            ended = asyncio.Event(), asyncio.Event()
            watchers = [
                asyncio.create_task(gateway.watch(path, seen_ours, ended[0])),
                asyncio.create_task(straight.watch(path, seen_theirs, ended[1])),
            ]
            await asyncio.sleep(0.5)
            delays = []
            for i in range(events):
                name = f"cm-{i}"
                body = {"metadata": {"name": name}}
                async with http.post(
                    f"{sandbox_url}/api/v1/namespaces/watched/configmaps",
                    json=body,
                    headers=straight.headers,
                ) as response:
                    assert response.status == 201, await response.text()
                deadline = time.monotonic() + 5
                while (name not in seen_ours or name not in seen_theirs) and (
                    time.monotonic() < deadline
                ):
                    await asyncio.sleep(0.002)
                if name in seen_ours and name in seen_theirs:
                    delays.append(max(0.0, seen_ours[name] - seen_theirs[name]))
            for task in watchers:
                task.cancel()
            await asyncio.gather(*watchers, return_exceptions=True)
            p99 = percentile(delays, 99) * 1000 if delays else float("inf")
            rows.append(
                (
                    f"sso: watch event added delay ({len(delays)}/{events} events)",
                    f"p99 {p99:.1f} ms",
                    "a watch straight to the sandbox",
                    "-",
                    f"< 50 ms {met(p99 < 50)}",
                )
            )

            # 4. 100 concurrent clients.
            start = time.perf_counter()
            codes = await asyncio.gather(
                *(gateway.status("/api/v1/namespaces/small/pods") for _ in range(100)),
                return_exceptions=True,
            )
            took = time.perf_counter() - start
            errors = sum(1 for c in codes if c != 200)
            rows.append(
                (
                    "sso: 100 concurrent clients via the gateway",
                    f"{errors} errors, {took * 1000:.0f} ms for all",
                    "-",
                    "-",
                    f"0 errors {met(errors == 0)}",
                )
            )

            # 5. Revoke to refusal, a request loop and an open watch.
            to_refusal, to_end = [], []
            for _ in range(revokes):
                made, token, _path = session()
                client = Endpoint(http, gateway_base, token)
                assert await client.status("/api/v1/namespaces/small/pods") == 200
                closed = asyncio.Event()
                watch = asyncio.create_task(client.watch(path, {}, closed))
                await asyncio.sleep(0.05)
                revoked = time.perf_counter()
                store.revoke(made.id, "bench")
                while await client.status("/api/v1/namespaces/small/pods") != 401:
                    pass
                to_refusal.append(time.perf_counter() - revoked)
                try:
                    await asyncio.wait_for(closed.wait(), 5)
                    to_end.append(time.perf_counter() - revoked)
                except TimeoutError:
                    to_end.append(5.0)
                watch.cancel()
                await asyncio.gather(watch, return_exceptions=True)
            worst = max(percentile(to_refusal, 99), percentile(to_end, 99))
            rows.append(
                (
                    f"sso: revoke to refusal ({revokes} sessions)",
                    f"p99 request {percentile(to_refusal, 99) * 1000:.0f} ms, "
                    f"open watch {percentile(to_end, 99) * 1000:.0f} ms",
                    "-",
                    "-",
                    f"≤ 2 s {met(worst <= 2)}",
                )
            )

            # 6. Role loss to refusal: Discord's gateway says the granting role is gone.
            def member_session(user: str, guild: str) -> tuple[Any, str]:
                return store.create_session(  # type: ignore[no-any-return]
                    user, "bench", guild, cluster, ["bench-team"], 3600, "127.0.0.1"
                )

            rows.append(
                await _role_loss(
                    kernel,
                    harness,
                    member_session,
                    lambda token: Endpoint(http, gateway_base, token),
                    revokes,
                )
            )
        await kernel.http.close()
    return rows


ROLE = "200000000000000002"


async def _role_loss(kernel: Any, harness: Any, make: Any, endpoint: Any, rounds: int) -> Row:
    """Role loss to refusal: Discord's member event through a real hikari gateway bot."""
    import hikari

    from clustercord.frontends.discord.app import DiscordFrontend
    from clustercord.frontends.discord.server import gateway_bot
    from clustercord.frontends.discord.settings import DiscordSettings
    from clustercord_testing.fake_discord import FakeDiscord

    async with FakeDiscord() as discord:
        settings = DiscordSettings(
            token=discord.bot_token, api_url=discord.api_url, guilds=(int(discord.guild_id),)
        )
        bot = gateway_bot(settings)
        frontend = DiscordFrontend(kernel, bot, settings)

        async def starting(event: Any) -> None:
            await frontend.start()

        bot.subscribe(hikari.StartingEvent, starting)
        await asyncio.wait_for(bot.start(check_for_updates=False), 10)
        mapped = await harness.run(f"/sso map role:{ROLE} groups:bench-team")
        assert mapped.ok, mapped.text
        took = []
        try:
            for n in range(rounds):
                user = f"5000000000000{n:05d}"
                await discord.update_member(user, [ROLE])
                _, token = make(user, discord.guild_id)
                client = endpoint(token)
                assert await client.status("/api/v1/namespaces/small/pods") == 200
                sent = time.perf_counter()
                await discord.update_member(user, [])
                while await client.status("/api/v1/namespaces/small/pods") != 401:
                    if time.perf_counter() - sent > 5:
                        break
                took.append(time.perf_counter() - sent)
        finally:
            await frontend.stop()
            await bot.close()
    p99 = percentile(took, 99)
    return (
        f"sso: role loss (Discord member event) to refusal ({rounds} sessions)",
        f"p50 {median(took) * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms",
        "-",
        "-",
        f"≤ 1 s {met(p99 <= 1)}",
    )


def run(quick: bool, scratch: Path) -> list[Row]:
    print("\n== 9. The SSO gateway: kubectl through it against straight to the sandbox")
    if shutil.which("kubectl") is None:
        return skipped("sso: gateway", "kubectl is not installed")
    rows = asyncio.run(run_async(quick, scratch))
    for row in rows:
        print("  " + "  |  ".join(row))
    return rows


if __name__ == "__main__":
    import tempfile

    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true")
    arguments = parser.parse_args()
    directory = Path(tempfile.mkdtemp(prefix="ccbench-sso"))
    try:
        run(arguments.quick, directory)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    sys.exit(0)
