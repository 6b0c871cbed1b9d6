"""`/chaos run-experiment file:`: experiment files read strictly (every bad file a clear error
with its place, nothing changed), a steady state checked before, during and after, every fault
of the run rolled back at the end, and at once when the steady state breaks."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from .conftest import VIEWER, cluster_marks, first_pod, images, pod_named, run

PAUSE = "registry.k8s.io/pause:3.10"


def write(tmp_path, text: str | bytes, name: str = "experiment.yaml") -> str:
    path = tmp_path / name
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return str(path)


@pytest.fixture
def health():
    """A local HTTP endpoint whose answer the test sets (200 until told otherwise)."""
    state = {"status": 200}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(state["status"])
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    state["url"] = f"http://127.0.0.1:{server.server_address[1]}/healthz"
    yield state
    server.shutdown()


async def test_a_file_runs_its_steps_and_rolls_every_fault_back(chaos, homelab, tmp_path):
    victim = first_pod(homelab)
    name = victim["metadata"]["name"]
    text = f"""
name: jellyfin survives a failed pod
steady_state:
  - probe: healthy_replicas
    deployment: jellyfin
    namespace: media
    expect: ">= 1"
  - {{probe: field, resource: deployments.apps, name: jellyfin, namespace: media,
     path: "status.conditions[0].status", expect: "== 1"}}
steps:
  - fault: pod-failure
    pod: {name}
    namespace: media
    duration: 5m
  - wait: 1s
  - assert: {{probe: healthy_replicas, deployment: jellyfin, namespace: media, expect: ">= 0"}}
"""
    dry = await run(chaos, f"/chaos run-experiment file:{write(tmp_path, text)} dry_run:true")
    assert dry.ok, dry.text
    assert dry.reply.data["experiment"]["targets"] == [f"media/{name}"]
    assert images(pod_named(homelab, name)) == images(victim)

    result = await run(chaos, f"/chaos run-experiment file:{write(tmp_path, text)}")
    assert result.ok, result.text
    experiment = result.reply.data["experiment"]
    assert experiment["status"] == "pass", experiment["run"]
    assert experiment["faults"] == ["pod-failure"] and len(experiment["experiments"]) == 1
    assert experiment["run"]["rolled_back"] == experiment["experiments"]
    whens = {o["when"] for o in experiment["run"]["observations"]}
    assert {"before", "after step 1", "step 3", "after"} <= whens
    assert images(pod_named(homelab, name)) == images(victim)  # rolled back at the end
    assert cluster_marks(homelab) == ""
    (png,) = result.reply.files  # the embed's chart of the probes, the fault window shaded
    assert result.reply.cards[0].image == png.name == f"{experiment['id']}.png"
    assert png.data.startswith(b"\x89PNG\r\n\x1a\n") and png.data[12:16] == b"IHDR"
    again = await run(chaos, f"/chaos status experiment:{experiment['id']}")
    assert again.reply.data["experiment"]["status"] == "pass"


async def test_a_broken_steady_state_rolls_back_at_once(chaos, homelab, tmp_path, health):
    victim = first_pod(homelab)
    name = victim["metadata"]["name"]
    text = f"""
name: health holds under pod failure
steady_state:
  - {{probe: http, url: "{health["url"]}", expect: "== 200"}}
steps:
  - {{fault: pod-failure, pod: {name}, namespace: media, duration: 5m}}
  - wait: 60s
"""
    task = asyncio.ensure_future(run(chaos, f"/chaos run-experiment file:{write(tmp_path, text)}"))
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and set(images(pod_named(homelab, name)).values()) != {PAUSE}:
        await asyncio.sleep(0.1)
    assert set(images(pod_named(homelab, name)).values()) == {PAUSE}
    health["status"] = 503  # the service breaks
    broke = time.monotonic()
    result = await asyncio.wait_for(task, 20)
    removed = time.monotonic() - broke
    print(f"steady-state violation to every fault removed: {removed:.2f} s")
    assert removed < 3.0  # checked every second during waits, not after the 60 s
    experiment = result.reply.data["experiment"]
    assert experiment["status"] == "fail" and experiment["run"]["auto_rollback"] is True
    assert "the steady state broke after step 2" in experiment["run"]["reason"]
    assert images(pod_named(homelab, name)) == images(victim)


async def test_a_steady_state_that_does_not_hold_first_injects_nothing(chaos, homelab, tmp_path):
    victim = first_pod(homelab)
    name = victim["metadata"]["name"]
    text = f"""
name: needs five replicas
steady_state: [{{probe: healthy_replicas, deployment: jellyfin, namespace: media, expect: ">= 5"}}]
steps: [{{fault: kill-pod, pod: {name}, namespace: media}}]
"""
    result = await run(chaos, f"/chaos run-experiment file:{write(tmp_path, text)}")
    assert result.reply.data["experiment"]["status"] == "not run"
    assert "does not hold before the experiment" in result.reply.data["experiment"]["run"]["reason"]
    assert pod_named(homelab, name) is not None
    assert (await run(chaos, "/chaos list")).reply.data["experiments"] == []


async def test_a_probe_target_the_user_may_not_read_stops_the_run_before_anything(
    chaos, homelab, tmp_path
):
    # The checks during a run read as the plugin; the first one reads as the user, so a
    # target they may not read (the nephew reads only media) ends the run before any fault.
    victim = first_pod(homelab)
    name = victim["metadata"]["name"]
    text = f"""
name: peeks at monitoring
steady_state:
  - {{probe: healthy_replicas, deployment: grafana, namespace: monitoring, expect: ">= 0"}}
steps: [{{fault: pod-failure, pod: {name}, namespace: media, duration: 1m}}]
"""
    result = await run(chaos, f"/chaos run-experiment file:{write(tmp_path, text)}", user=VIEWER)
    assert result.reply.data["experiment"]["status"] == "not run", result.text
    assert images(pod_named(homelab, name)) == images(victim)
    assert cluster_marks(homelab) == ""


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("name: x\nsteps: [", "is not YAML at line"),
        (b"\xff\xfe\x00", "is not UTF-8"),
        ("name: x\nsteps:\n" + "  - wait: 1s\n" * 60, "at most 50"),
        ("[" * 1000 + "]" * 1000, "nests deeper than 10 levels"),
        ("name: x\nsteps: [{fault: pod-failur, pod: a}]", "did you mean 'pod-failure'"),
        ("name: x\nsteps: [{fault: kill-pod, pod: a, podd: b}]", "steps[0].podd: unknown key"),
        ("name: x\nsteps: [{fault: pod-failure, pod: a}]", "steps[0].duration: required"),
        ("name: x\nsteps: [{fault: pod-failure, pod: a, duration: -5m}]", "is negative"),
        (
            "name: x\nsteps: [{fault: pod-failure, pod: a, duration: 999h}]",
            "longer than the maximum",
        ),
        ("name: x\nsteps: [{wait: 5x}]", "'5x' is not a duration"),
        ("name: x\nsteps: [{explode: now}]", "exactly one of fault:, wait: or assert:"),
        (
            "name: x\nsteps: [{assert: {probe: healthy_replicas, deployment: d, "
            "expect: \"__import__('os').system('id')\"}}]",
            "only min, max, abs may be called",
        ),
        ("name: x\nsteps: [{assert: {probe: promql, expect: '> 1'}}]", "unknown probe 'promql'"),
        (
            "name: x\nsteps: [{assert: {probe: http, url: 'file:///etc/passwd', "
            "expect: '== 200'}}]",
            "http:// or https://",
        ),
        ("- just\n- a list\n", "a mapping with name and steps"),
        (
            "name: x\nsteps: [{fault: kill-pod, pod: a, selector: app=a}]",
            "pod: or selector:, not both",
        ),
        (
            "name: x\nsteps: [{fault: drain-node, node: a, selector: app=a}]",
            "steps[0].selector: unknown key",
        ),
        (
            "name: x\nsteps: [{assert: {probe: http, "
            "url: 'http://169.254.169.254/latest/meta-data/', expect: '== 200'}}]",
            "link-local",
        ),
        (
            "name: x\nsteps: [{assert: {probe: http, "
            "url: 'http://metadata.google.internal/computeMetadata/v1/', expect: '== 200'}}]",
            "cloud metadata endpoint",
        ),
    ],
)
async def test_bad_files_are_clear_errors_and_change_nothing(
    chaos, homelab, tmp_path, content, message
):
    before = homelab.kubectl("get", "pods", "-A", "-o", "yaml").stdout
    result = await run(chaos, f"/chaos run-experiment file:{write(tmp_path, content)}")
    assert not result.ok and message in result.text, result.text
    assert "experiment.yaml" in result.text
    assert homelab.kubectl("get", "pods", "-A", "-o", "yaml").stdout == before


async def test_a_ten_megabyte_file_is_refused_unread(chaos, homelab, tmp_path):
    result = await run(chaos, f"/chaos run-experiment file:{write(tmp_path, b'#' * 10_000_000)}")
    assert not result.ok and "an experiment file has at most 65,536" in result.text


async def test_a_scheduled_experiment_runs_after_each_approval_with_its_owners_rights(
    chaos, homelab, tmp_path
):
    from .conftest import ADMIN

    victim = first_pod(homelab)
    name = victim["metadata"]["name"]
    # A selector, not a name: next week's run finds the pod whatever it is called then.
    text = (
        "name: weekly gameday\nsteps: [{fault: kill-pod, namespace: media, "
        "selector: app.kubernetes.io/name=jellyfin}]\n"
    )
    bad = await run(chaos, f"/chaos schedule file:{write(tmp_path, text)} cron:'61 * * * *'")
    assert not bad.ok and "cron:" in bad.text
    made = await run(chaos, f"/chaos schedule file:{write(tmp_path, text)} cron:'0 10 * * 3'")
    assert made.ok, made.text
    schedule_id = made.reply.data["schedule"]["id"]
    assert (await run(chaos, "/chaos config schedules")).reply.data["schedules"] == [schedule_id]

    job = chaos.kernel.scheduler.get(f"chaos-{schedule_id}")
    assert job is not None and job.schedule == "0 10 * * 3"
    await chaos.kernel.run_job(job)  # the cron fires: an approval is asked, nothing runs yet
    assert pod_named(homelab, name) is not None
    pending = (await run(chaos, "/approval list", user=ADMIN)).reply.data["pending"]
    assert len(pending) == 1
    assert (await run(chaos, f"/approval approve id:{pending[0]}", user=ADMIN)).ok
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and pod_named(homelab, name) is not None:
        await asyncio.sleep(0.2)
    assert pod_named(homelab, name) is None  # the approved run killed the pod
    deadline = time.monotonic() + 20
    history: list = []
    while time.monotonic() < deadline:
        history = (await run(chaos, "/chaos list")).reply.data["experiments"]
        if history and history[0]["status"] == "ended":
            break
        await asyncio.sleep(0.2)
    assert [e["status"] for e in history] == ["ended"]

    assert (await run(chaos, f"/chaos config unschedule id:{schedule_id}")).ok
    assert chaos.kernel.scheduler.get(f"chaos-{schedule_id}") is None


async def test_a_brief_blip_within_the_failure_threshold_does_not_end_the_run(
    chaos, homelab, tmp_path, health
):
    victim = first_pod(homelab)
    name = victim["metadata"]["name"]
    text = f"""
name: tolerates one slow answer
failure_threshold: 4
steady_state:
  - {{probe: http, url: "{health["url"]}", expect: "== 200"}}
steps:
  - {{fault: pod-failure, pod: {name}, namespace: media, duration: 5m}}
  - wait: 4s
"""
    task = asyncio.ensure_future(run(chaos, f"/chaos run-experiment file:{write(tmp_path, text)}"))
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and set(images(pod_named(homelab, name)).values()) != {PAUSE}:
        await asyncio.sleep(0.1)
    health["status"] = 503
    await asyncio.sleep(1.0)
    health["status"] = 200
    result = await asyncio.wait_for(task, 30)
    experiment = result.reply.data["experiment"]
    failed = [o for o in experiment["run"]["observations"] if not o["ok"]]
    assert failed and experiment["status"] == "pass", experiment["run"]
    assert images(pod_named(homelab, name)) == images(victim)


async def test_a_selector_picks_a_running_pod_when_the_step_runs(chaos, homelab, tmp_path):
    victim = first_pod(homelab)
    name = victim["metadata"]["name"]
    text = (
        "name: any jellyfin pod\nsteps:\n"
        "  - {fault: pod-failure, namespace: media, selector: app.kubernetes.io/name=jellyfin, "
        "duration: 1m}\n"
    )
    dry = await run(chaos, f"/chaos run-experiment file:{write(tmp_path, text)} dry_run:true")
    assert dry.ok and dry.reply.data["experiment"]["targets"] == [f"media/{name}"], dry.text
    result = await run(chaos, f"/chaos run-experiment file:{write(tmp_path, text)}")
    assert result.reply.data["experiment"]["status"] == "pass", result.text
    assert result.reply.data["experiment"]["run"]["steps"][0]["pod"] == name
    none = text.replace("name=jellyfin", "name=nothing")
    missing = await run(chaos, f"/chaos run-experiment file:{write(tmp_path, none)}")
    assert missing.reply.data["experiment"]["status"] == "fail"
    assert (
        "no running pod in media matches selector"
        in missing.reply.data["experiment"]["run"]["reason"]
    )


async def test_a_chaos_toolkit_experiment_runs_as_its_own_format(chaos, homelab, tmp_path, health):
    victim = first_pod(homelab)
    name = victim["metadata"]["name"]
    experiment = {
        "version": "1.0.0",
        "title": "Jellyfin comes back after losing its pod",
        "steady-state-hypothesis": {
            "title": "it answers",
            "probes": [{"type": "probe", "name": "health", "tolerance": 200,
                        "provider": {"type": "http", "url": health["url"]}}],
        },
        "method": [
            {"type": "action", "name": "terminate",
             "provider": {"type": "python", "module": "chaosk8s.pod.actions",
                          "func": "terminate_pods",
                          "arguments": {"label_selector": "app.kubernetes.io/name=jellyfin",
                                        "ns": "media"}},
             "pauses": {"after": 1}},
        ],
        "rollbacks": [],
    }  # fmt: skip
    path = write(tmp_path, json.dumps(experiment), "experiment.json")
    result = await run(chaos, f"/chaos run-experiment file:{path}")
    assert result.ok, result.text
    summary = result.reply.data["experiment"]
    assert summary["status"] == "pass" and summary["faults"] == ["kill-pod"], summary["run"]
    assert summary["name"] == "Jellyfin comes back after losing its pod"
    assert pod_named(homelab, name) is None  # the pod was killed, its replacement Ready

    experiment["method"][0]["provider"] = {
        "type": "python", "module": "os", "func": "system", "arguments": {"command": "id"}
    }  # fmt: skip
    refused = await run(
        chaos, f"/chaos run-experiment file:{write(tmp_path, json.dumps(experiment), 'x.json')}"
    )
    assert not refused.ok and "os.system is not supported" in refused.text


async def test_runs_watching_different_deployments_share_lists_and_see_their_own(
    chaos, homelab, tmp_path
):
    """Concurrent runs, each with a steady state on its own Deployment of one namespace: read
    with shared LISTs of that namespace (as the plugin), each run still sees its own object."""
    from clustercord_builtins.chaos import plans

    names = [f"probe-{i}" for i in range(6)]
    homelab.apply(
        "".join(
            "---\napiVersion: apps/v1\nkind: Deployment\n"
            f"metadata: {{name: {n}, namespace: media}}\n"
            f"spec: {{replicas: 0, selector: {{matchLabels: {{app: {n}}}}}, template: "
            f"{{metadata: {{labels: {{app: {n}}}}}, spec: {{containers: "
            f"[{{name: c, image: registry.k8s.io/pause:3.10}}]}}}}}}\n"
            for n in names
        )
    )
    first_pod(homelab)  # jellyfin's one replica Ready
    files = [
        write(
            tmp_path,
            f"name: watch {n}\nsteady_state:\n"
            f"  - {{probe: healthy_replicas, deployment: {n}, namespace: media, "
            f"expect: '{'>= 1' if n == 'jellyfin' else '== 0'}'}}\nsteps:\n  - wait: 3s\n",
            f"{n}.yaml",
        )
        for n in [*names, "jellyfin"]
    ]
    lists = plans.SHARED_READS.lists
    results = await asyncio.gather(*(run(chaos, f"/chaos run-experiment file:{f}") for f in files))
    for result in results:
        assert result.ok, result.text
        run_ = result.reply.data["experiment"]["run"]
        assert run_["verdict"] == "pass", run_  # jellyfin read as 1, the others as 0
        assert len(run_["observations"]) >= 4
    assert plans.SHARED_READS.lists > lists  # the checks during the waits were LISTs
