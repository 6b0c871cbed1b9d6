"""A plugin in the isolated tier works through the same SDK interfaces: commands (text,
progress, confirmations), hooks, its store, Kubernetes as its own identity; and it runs in a
process of its own, as another user when the kernel is root, with nothing of the kernel's."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from clustercord.isolation.stub import IsolatedPackage
from clustercord_sdk import Event

from .conftest import commands

WORKER = {
    "manifest": {
        **commands("count", "steps", "ask", "whoami"),
        "hooks": [{"event": "pod:start"}],
        "config": {"word": {"type": "string", "default": "counted"}},
    },
    "init": """
        @hookimpl
        def on_enable(ctx):
            ctx.store.set("enabled", True)

        @hookimpl
        async def on_event(event, ctx):
            ctx.store.set("last", f"{event.namespace}/{event.name}")
            ctx.log.warning("saw %s", event.name)

        @hookimpl
        def check_access(invocation, command):
            return False if invocation.user_id == "intruder" else None
    """,
    "modules": {
        "commands": """
            import os
            from clustercord_sdk import Reply, Progress

            def count(ctx):
                n = ctx.store.get("n", 0) + 1
                ctx.store.set("n", n)
                return Reply(text=f"{ctx.config['word']} {n}", data={"n": n})

            async def steps(ctx):
                for done in range(1, 4):
                    yield Reply(progress=Progress(done, 3, "working"))
                yield f"done in {os.getpid()}"

            async def ask(ctx):
                await ctx.progress(1, 2, "asking")
                return "yes" if await ctx.confirm("sure?") else "no"

            def whoami(ctx):
                return f"{os.getpid()} {os.getuid()} {ctx.invocation.user_id}"
        """
    },
}


@pytest.fixture
async def kernel(clustercord_harness, isolated_plugin):
    isolated_plugin("worker", **WORKER)
    return await clustercord_harness.start()


async def test_commands_hooks_and_store_in_a_process_of_its_own(clustercord_harness, kernel):
    plugin = clustercord_harness.plugin("worker")
    assert plugin.state == "enabled", plugin.reason
    assert isinstance(plugin.module, IsolatedPackage)
    process = kernel.isolation.process("worker")
    assert process is not None and process.pid != os.getpid()

    assert plugin.context.store.get("enabled") is True  # on_enable ran in the child
    first = await clustercord_harness.run("/count")
    second = await clustercord_harness.run("/count")
    assert (first.text, second.text) == ("counted 1", "counted 2")
    assert second.reply.data == {"n": 2}
    # The store is the kernel's: what the child wrote is there, and survives its process.
    assert plugin.context.store.get("n") == 2
    process.kill()
    third = await clustercord_harness.run("/count")
    assert third.text == "counted 3", third.text

    streamed = await clustercord_harness.run("/steps")
    assert [r.progress.current for r in streamed.sent if r.progress] == [1, 2, 3]
    child_pid = int(streamed.text.split()[-1])
    # The pid as the process sees it (in bwrap's pid namespace, not the host's).
    worker = kernel.isolation.process("worker")
    assert worker is not None and child_pid == worker.info["pid"]
    assert worker.pid != os.getpid()

    asked = await clustercord_harness.run("/ask")
    assert asked.text == "yes" and [c.prompt for c in asked.asked] == ["sure?"]
    assert any(r.progress and r.progress.label == "asking" for r in asked.sent)

    await kernel.events.publish(Event("pod:start", namespace="games", name="mc-0"))
    assert plugin.context.store.get("last") == "games/mc-0"


async def test_config_changes_reach_the_process(clustercord_harness, kernel):
    await kernel.manager.set_config("worker", "word", "tallied", by="test")
    assert (await clustercord_harness.run("/count")).text == "tallied 1"


async def test_its_check_access_hook_decides_and_it_runs_as_its_own_uid(
    clustercord_harness, kernel
):
    vetoed = await clustercord_harness.run("/count", user="intruder")
    assert vetoed.status == "denied"
    assert vetoed.text == "plugin worker does not allow /count here", vetoed.text
    whoami = await clustercord_harness.run("/whoami", user="console")
    pid, uid, user = whoami.text.split()
    assert user == "console" and int(pid) != os.getpid()
    if kernel.isolation.dropping:
        assert int(uid) == kernel.isolation.user("worker")[0] != 0


async def test_release_signed_builtins_stay_in_process_and_others_do_not(
    clustercord_signer, tmp_path, make_plugin
):
    from clustercord_testing.harness import KernelHarness

    harness = KernelHarness(tmp_path / "signer-data", clustercord_signer, isolation="signer")
    try:
        harness.add_builtins(["help"])
        harness.add_plugin(make_plugin("thirdparty"))
        # Calling itself a builtin is not enough: it is not in the builtin distribution.
        harness.add_plugin(make_plugin("templates", manifest=commands("tpl")))
        await harness.start()
        assert not isinstance(harness.plugin("help").module, IsolatedPackage)
        assert isinstance(harness.plugin("thirdparty").module, IsolatedPackage)
        assert isinstance(harness.plugin("templates").module, IsolatedPackage)
        assert (await harness.run("/thirdparty")).text == "thirdparty ran"
        assert "thirdparty" in json.dumps((await harness.run("/help")).reply.to_dict())
    finally:
        harness.close()


PEEK = {
    "manifest": {
        **commands(
            "peek",
            options=[{"name": "path", "type": "string", "description": "a file"}],
        )
    },
    "modules": {
        "commands": """
            import gc, json, os, sys

            def peek(ctx):
                def read(path):
                    try:
                        with open(path, "rb") as handle:
                            return f"read {len(handle.read())} bytes"
                    except OSError as exc:
                        return type(exc).__name__
                kernel_types = sorted({
                    type(o).__name__ for o in gc.get_objects()
                    if type(o).__name__ in (
                        "Kernel", "KubernetesService", "PluginKubernetes", "Database",
                        "PluginStore", "SecretBox", "ClusterRegistry", "TrustStore",
                    )
                })
                return json.dumps({
                    "env": dict(os.environ),
                    "cwd": os.getcwd(),
                    "uid": os.getuid(),
                    "fds": {
                        fd: os.readlink(f"/proc/self/fd/{fd}")
                        for fd in os.listdir("/proc/self/fd")
                        if os.path.exists(f"/proc/self/fd/{fd}")
                    },
                    "reads": {p: read(p) for p in ctx.options["path"].split(",")},
                    "parent_environ": read(f"/proc/{os.getppid()}/environ"),
                    "kernel_types": kernel_types,
                    "kernel_modules": sorted(
                        m for m in sys.modules
                        if m.startswith("clustercord.") and not m.startswith(
                            ("clustercord.isolation", "clustercord.plugins")
                        )
                    ),
                    "wrote_home": open("mine.txt", "w").write("x"),
                })
        """
    },
}


async def test_environment_is_scrubbed_and_the_kernel_out_of_reach(
    clustercord_harness, isolated_plugin, monkeypatch
):
    from clustercord.secretbox import SecretBox

    monkeypatch.setenv("KUBECONFIG", "/somewhere/kubeconfig")
    monkeypatch.setenv("DISCORD_TOKEN", "not-for-plugins")
    monkeypatch.setenv("CLUSTERCORD_SIGNING_KEY", "not-for-plugins")
    isolated_plugin("peek", **PEEK)
    kernel = await clustercord_harness.start()
    SecretBox.from_settings(kernel.settings.data_dir)  # creates secret.key
    secret = kernel.settings.data_dir / "secret.key"
    assert secret.is_file()

    database = kernel.settings.database_path
    kubeconfig = kernel.settings.data_dir.parent / "kubeconfig"
    kubeconfig.write_text("users: [{name: admin, user: {token: sekrit}}]\n")
    kubeconfig.chmod(0o600)
    paths = [secret, database, kubeconfig]
    ran = await clustercord_harness.run(f"/peek path:{','.join(map(str, paths))}")
    assert ran.ok, ran.text
    seen = json.loads(ran.text)
    home = kernel.settings.data_dir / "plugins" / "peek"
    allowed = {"PATH", "HOME", "TMPDIR", "LANG", "LC_ALL", "MALLOC_ARENA_MAX", "PWD"}
    assert set(seen["env"]) <= allowed, seen["env"]  # PWD: bwrap's, its own directory
    assert seen["env"].get("PWD", str(home)) == str(home)
    assert seen["env"]["HOME"] == str(home) and seen["cwd"] == str(home)
    assert (home / "mine.txt").read_text() == "x"  # its own directory is writable
    # Nothing of the kernel's: its standard streams and the protocol's pipes (three pipes in
    # all: fd 1 and 2 share the one to the kernel's log), /dev/null on fd 0, the event loop's
    # own descriptors, and the sys.path directories it keeps open after dropping privileges.
    targets = seen["fds"].values()
    assert seen["fds"]["0"] == "/dev/null"
    assert len({t for t in targets if t.startswith("pipe:")}) == 3, seen["fds"]
    files = [t for t in targets if t.startswith("/") and t != "/dev/null"]
    assert all(os.path.isdir(t) for t in files), files  # no file of the kernel's
    assert not any(t.startswith(str(kernel.settings.data_dir)) for t in files), files
    assert seen["kernel_types"] == []
    assert seen["kernel_modules"] == []
    view = kernel.isolation.view
    if view is not None and view.bwrap is not None:
        # Its own file view: the keys, the database and the kubeconfig are not there at all,
        # nor the kernel's process (a pid namespace of its own).
        assert seen["reads"] == {str(p): "FileNotFoundError" for p in paths}
        assert seen["parent_environ"] in ("FileNotFoundError", "PermissionError")
        return
    if os.geteuid() == 0 and not kernel.isolation.dropping:
        pytest.skip("running as root with no unprivileged user: file permissions do not hold")
    assert seen["reads"] == {str(p): "PermissionError" for p in paths}
    assert seen["parent_environ"] == "PermissionError"
    assert seen["uid"] != os.geteuid() or os.geteuid() != 0


INSPECTOR = {
    "manifest": {
        "permissions": ["pods:read", "selfsubjectreviews.authentication.k8s.io:create"],
        **commands("whoami", "secrets"),
    },
    "modules": {
        "commands": """
            async def whoami(ctx):
                review = await ctx.kubernetes.create(
                    "selfsubjectreviews.authentication.k8s.io",
                    {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"},
                )
                pods = await ctx.kubernetes.list("pods", namespace="default")
                clusters = [c.name for c in ctx.kubernetes.clusters()]
                who = review["status"]["userInfo"]["username"]
                return f"{who} saw {len(pods)} pods on {clusters}"

            async def secrets(ctx):
                await ctx.kubernetes.list("secrets", namespace="default")
        """
    },
}


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
async def test_kubernetes_through_the_kernel_as_its_own_identity(
    clustercord_harness, isolated_plugin, sandbox_cluster
):
    cluster = sandbox_cluster("empty", min_token_seconds=60)
    cluster.apply(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "web-0", "namespace": "default"},
                "spec": {"containers": [{"name": "web", "image": "nginx"}]},
            }
        )
    )
    clustercord_harness.add_builtins(["plugins"])
    isolated_plugin("inspector", **INSPECTOR)
    kernel = await clustercord_harness.start()
    assert clustercord_harness.plugin("inspector").state == "awaiting-approval"
    approved = await clustercord_harness.run("/plugin permissions name:inspector approve:true")
    assert approved.ok, approved.text
    await kernel.kubernetes.plugin_identities.settle()

    ran = await clustercord_harness.run("/whoami")
    assert ran.text == (
        "system:serviceaccount:clustercord-system:plugin-inspector saw 1 pods on ['sandbox']"
    ), ran.text
    refused = await clustercord_harness.run("/secrets")
    assert refused.status in ("denied", "error") and "secrets" in refused.text, refused.text
    assert "plugin inspector failed" not in refused.text  # an answer, not a crash


FLOWS = {
    "manifest": commands("menu"),
    "init": """
        @hookimpl
        def on_enable(ctx):
            ctx.scheduler.every("1h", "jobs:tick", job_id="tick", payload={"source": "nas"})

        @hookimpl
        def on_approval_decided(approval, ctx):
            ctx.store.set("decided", [approval.action, approval.status])
    """,
    "modules": {
        "commands": """
            from clustercord_sdk import Button, Reply

            def menu(ctx):
                approval = ctx.plugin.approvals.request(
                    "reboot", "reboot the NAS", requested_by=ctx.user_id
                )
                ctx.plugin.audit.record("menu shown", actor=ctx.user_id, details={"n": 1})
                return Reply(
                    text=f"pick ({approval.status})",
                    buttons=[Button("Go", action="actions:press", value="nas")],
                )
        """,
        "actions": """
            from clustercord_sdk import Reply

            async def press(ctx, value, values):
                await ctx.plugin.notifier.notify(Reply(text=f"pressed {value}"))
                return f"pressed {value} by {ctx.user_id}"
        """,
        "jobs": """
            def tick(job, ctx):
                ctx.store.set("ticked", job.payload["source"])
        """,
    },
}


async def test_components_jobs_approvals_and_notifications(clustercord_harness, isolated_plugin):
    from clustercord_sdk import Invocation

    isolated_plugin("flows", **FLOWS)
    kernel = await clustercord_harness.start()
    plugin = clustercord_harness.plugin("flows")
    assert plugin.state == "enabled", plugin.reason
    (scheduled,) = kernel.scheduler.for_plugin("flows").jobs()
    assert scheduled.handler == "jobs:tick"

    menu = await clustercord_harness.run("/menu")
    assert menu.text == "pick (pending)", menu.text
    assert menu.reply.buttons[0].action == "actions:press"

    async def send(reply):
        return None

    async def ask(confirmation):
        return True

    pressed = await kernel.door.action(
        Invocation(user_id="console", command=("menu",)),
        plugin="flows",
        action="actions:press",
        value="nas",
        send=send,
        ask=ask,
    )
    assert pressed.status == "ok" and pressed.reply.text == "pressed nas by console"

    await kernel.run_job(scheduled)
    assert plugin.context.store.get("ticked") == "nas"

    (approval,) = kernel.approvals.for_plugin("flows").pending()
    kernel.approvals.decide(approval.id, True, by="admin")
    await kernel.deliver_decisions()
    assert plugin.context.store.get("decided") == ["reboot", "approved"]


async def test_disable_enable_and_restart_of_the_kernel(clustercord_harness, kernel):
    first = kernel.isolation.process("worker")
    await kernel.manager.disable("worker", by="test")
    assert kernel.isolation.process("worker") is None
    assert first.proc.wait(timeout=5) is not None  # its process is gone
    assert (await clustercord_harness.run("/count")).status == "error"
    await kernel.manager.enable("worker", by="test")
    assert (await clustercord_harness.run("/count")).text == "counted 1"
    second = kernel.isolation.process("worker")
    assert second.pid != first.pid

    kernel = await clustercord_harness.restart()  # the old kernel's processes end with it
    assert second.proc.wait(timeout=5) is not None
    assert (await clustercord_harness.run("/count")).text == "counted 2"
