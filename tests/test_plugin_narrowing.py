"""A plugin narrows a permission it declares to named objects (``ctx.kubernetes.narrow``): the
kernel stores it, compiles it as ``resourceNames`` into the plugin's ClusterRole on every
cluster, keeps it across restarts and re-provisioning, and refuses what RBAC cannot narrow or
the manifest does not declare. Checked with the real kubectl against the sandbox API server,
whose authorizer evaluates ``resourceNames`` (the SDK's rbac rules), impersonation included.
The plugin runs isolated, as a marketplace plugin does: the call crosses the plugin's pipe."""

from __future__ import annotations

import asyncio
import json
import shutil

import pytest

from clustercord_sdk.errors import PermissionDenied, UsageError
from clustercord_sdk.permissions import compile_rules, parse_permission

pytestmark = pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")

ACCOUNT = "system:serviceaccount:clustercord-system:plugin-narrower"
ROLE = "clustercord:plugin:narrower"
PERMISSIONS = [
    "users:impersonate",
    "groups:impersonate",
    "configmaps:create",
    "configmaps:get",
    "pods:read",
]
NARROWER = {
    "manifest": {
        "permissions": PERMISSIONS,
        "commands": [
            {
                "name": "narrower",
                "description": "narrow its own rights",
                "subcommands": [
                    {
                        "name": "set",
                        "description": "narrow a permission",
                        "handler": "commands:narrow",
                        "options": [
                            {
                                "name": "permission",
                                "type": "string",
                                "description": "the permission",
                                "required": True,
                            },
                            {
                                "name": "names",
                                "type": "string",
                                "description": "comma-separated; none: no name; lift: lift it",
                            },
                        ],
                    },
                    {"name": "pods", "description": "count pods", "handler": "commands:pods"},
                ],
            }
        ],
    },
    "modules": {
        "commands": """
            async def narrow(ctx):
                given = ctx.options.get("names") or "none"
                names = None if given == "lift" else [n for n in given.split(",") if n != "none"]
                answer = await ctx.kubernetes.narrow(ctx.options["permission"], names)
                return json.dumps(answer, sort_keys=True)

            async def pods(ctx):
                return str(len(await ctx.kubernetes.list("pods", namespace="default")))
        """,
    },
}


@pytest.fixture
def cluster(sandbox_cluster):
    return sandbox_cluster("empty")


@pytest.fixture
async def harness(clustercord_harness, make_plugin, cluster):
    clustercord_harness.add_builtins(["plugins"])
    modules = {"commands": "import json\n" + _dedent(NARROWER["modules"]["commands"])}
    clustercord_harness.add_plugin(
        make_plugin("narrower", manifest=NARROWER["manifest"], modules=modules),
        isolated=True,  # in a process of its own: narrow() crosses its pipe
    )
    await clustercord_harness.start()
    approved = await clustercord_harness.run("/plugin permissions name:narrower approve:true")
    assert approved.ok, approved.text
    await clustercord_harness.kernel.plugin_identities.settle()
    return clustercord_harness


def _dedent(code: str) -> str:
    import textwrap

    return textwrap.dedent(code)


def can(cluster, verb: str, what: str) -> bool:
    """``kubectl auth can-i`` as the plugin's ServiceAccount: the API server's own answer."""
    answer = cluster.kubectl("auth", "can-i", verb, what, f"--as={ACCOUNT}", check=False)
    assert answer.stdout.strip() in ("yes", "no"), answer.stderr
    return answer.stdout.strip() == "yes"


def rules(cluster) -> list[dict]:
    return json.loads(cluster.kubectl("get", "clusterrole", ROLE, "-o", "json").stdout)["rules"]


async def narrow(harness, permission: str, names: str | None = None) -> dict:
    line = f"/narrower set permission:{permission}" + (f" names:{names}" if names else "")
    answer = await harness.run(line)
    assert answer.ok, answer.text
    return json.loads(answer.text)


async def test_impersonation_narrowed_to_the_named_groups_on_the_cluster(harness, cluster):
    # As declared: any group, system:masters included (what this feature ends).
    assert can(cluster, "impersonate", "groups/anyone")
    assert can(cluster, "impersonate", "groups/system:masters")

    answer = await narrow(harness, "groups:impersonate", "dev-team,ops")
    assert answer == {
        "changed": True,
        "clusters": {"sandbox": "ok"},
        "names": ["dev-team", "ops"],
        "permission": "groups:impersonate",
    }
    assert can(cluster, "impersonate", "groups/dev-team")
    assert can(cluster, "impersonate", "groups/ops")
    assert not can(cluster, "impersonate", "groups/anyone")
    assert not can(cluster, "impersonate", "groups/system:masters")
    # The rest of what it declared is untouched; users stay as declared.
    assert can(cluster, "impersonate", "users/discord:1")
    assert can(cluster, "get", "configmaps/x") and can(cluster, "create", "configmaps")
    assert {
        "apiGroups": [""],
        "resources": ["groups"],
        "verbs": ["impersonate"],
        "resourceNames": ["dev-team", "ops"],
    } in rules(cluster)

    # The same again changes nothing; a new name is granted at once.
    assert (await narrow(harness, "groups:impersonate", "ops,dev-team"))["changed"] is False
    await narrow(harness, "groups:impersonate", "dev-team,ops,qa")
    assert can(cluster, "impersonate", "groups/qa")

    # No name: no rule at all (an empty resourceNames would grant every name).
    answer = await narrow(harness, "groups:impersonate", "none")
    assert answer["names"] == [] and answer["clusters"] == {"sandbox": "ok"}
    assert not can(cluster, "impersonate", "groups/dev-team")
    assert not any("groups" in rule["resources"] for rule in rules(cluster))

    # Lifted: as declared again.
    assert (await narrow(harness, "groups:impersonate", "lift"))["names"] is None
    assert can(cluster, "impersonate", "groups/anyone")
    assert rules(cluster) == compile_rules(PERMISSIONS)


async def test_what_cannot_be_narrowed_is_refused_and_changes_nothing(harness, cluster):
    await narrow(harness, "groups:impersonate", "dev-team")
    before = rules(cluster)
    refusals = {
        # Not declared: a plugin narrows, it never adds a right.
        "secrets:get": "plugin narrower does not declare secrets:get",
        "groups:get": "plugin narrower does not declare groups:get",
        # Declared, but RBAC never restricts these verbs by name.
        "configmaps:create": "cannot be limited to names",
        "pods:read": "cannot be limited to names",
        "pods": "is not a permission",
    }
    for permission, why in refusals.items():
        answer = await harness.run(f"/narrower set permission:{permission} names:a")
        assert not answer.ok and why in answer.text, (permission, answer.text)
    # The kernel never lets a plugin impersonate system: users or groups, so neither by name.
    answer = await harness.run("/narrower set permission:groups:impersonate names:system:masters")
    assert not answer.ok and "may never impersonate 'system:masters'" in answer.text
    assert rules(cluster) == before
    assert harness.kernel.plugin_identities.narrowings.of("narrower") == {
        "groups:impersonate": ["dev-team"]
    }


async def test_the_narrowing_survives_a_restart_and_every_reprovisioning(harness, cluster):
    await narrow(harness, "groups:impersonate", "dev-team")
    await harness.restart()
    # Gone by hand: the next use provisions the identity again, from the stored narrowing.
    cluster.kubectl("delete", "clusterrole", ROLE)
    ran = await harness.run("/narrower pods")
    assert ran.text == "0", ran.text
    assert can(cluster, "impersonate", "groups/dev-team")
    assert not can(cluster, "impersonate", "groups/system:masters")
    assert not can(cluster, "impersonate", "groups/anyone")

    # Disable (role deleted) and enable (role provisioned again): still narrowed.
    assert (await harness.run("/plugin disable name:narrower")).ok
    assert (await harness.run("/plugin enable name:narrower")).ok
    await harness.kernel.plugin_identities.settle()
    assert can(cluster, "impersonate", "groups/dev-team")
    assert not can(cluster, "impersonate", "groups/anyone")

    # A rule widened by hand is put back to the narrowing at the next provisioning (a 401).
    wide = [*rules(cluster), {"apiGroups": [""], "resources": ["groups"], "verbs": ["*"]}]
    cluster.kubectl("patch", "clusterrole", ROLE, "--type=merge", "-p", json.dumps({"rules": wide}))
    assert can(cluster, "impersonate", "groups/anyone")
    harness.kernel.plugin_identities.invalidate("sandbox", "narrower")
    assert (await harness.run("/narrower pods")).ok
    assert not can(cluster, "impersonate", "groups/anyone")


def test_compiled_rules_with_names():
    groups, bind = (
        parse_permission("groups:impersonate"),
        parse_permission("clusterroles.rbac.authorization.k8s.io:bind"),
    )
    compiled = compile_rules(["pods:read", groups, bind], {groups: ["b", "a", "a"], bind: ["view"]})
    assert compiled == [
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]},
        {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["clusterroles"],
         "verbs": ["bind"], "resourceNames": ["view"]},
        {"apiGroups": [""], "resources": ["groups"], "verbs": ["impersonate"],
         "resourceNames": ["a", "b"]},
    ]  # fmt: skip
    # Narrowed to nothing: no rule, never an empty resourceNames (which means every name).
    assert compile_rules([groups], {groups: []}) == []
    with pytest.raises(ValueError, match="cannot narrow"):
        compile_rules(["pods:list"], {parse_permission("pods:list"): ["a"]})


async def test_hostile_narrowing_input_is_refused_and_stores_nothing(harness, cluster):
    plugin = harness.plugin("narrower")
    # In a process of its own: its narrow() crosses the pipe (the other tests' commands).
    assert harness.kernel.isolation.isolates(plugin)
    kubernetes = plugin.context.kubernetes  # the kernel's side of the pipe
    hostile = [
        (("groups:impersonate", "dev-team"), UsageError, "a list of names"),
        (("groups:impersonate", ["a"] * 501), UsageError, "at most 500 names"),
        (("groups:impersonate", ["dev\nteam"]), UsageError, "control characters"),
        (("groups:impersonate", [""]), UsageError, "is not a name"),
        (("groups:impersonate", ["x" * 254]), UsageError, "is not a name"),
        (("groups:impersonate", [7]), UsageError, "is not a name"),
        (("users:impersonate", ["system:admin"]), PermissionDenied, "may never impersonate"),
        ((["groups:impersonate"], ["a"]), UsageError, "is a string"),
        (("configmaps:*", ["a"]), UsageError, "cannot be limited to names"),
        (("configmaps:write", ["a"]), UsageError, "cannot be limited to names"),
    ]
    for args, error, why in hostile:
        with pytest.raises(error, match=why):
            await kubernetes.narrow(*args)
    with pytest.raises(UsageError, match="wait is true or false"):
        await kubernetes.narrow("groups:impersonate", ["a"], wait="no")
    assert harness.kernel.plugin_identities.narrowings.of("narrower") == {}
    assert rules(cluster) == compile_rules(PERMISSIONS)


async def test_two_narrowings_at_once_both_hold(harness, cluster):
    kubernetes = harness.plugin("narrower").context.kubernetes
    await asyncio.gather(
        kubernetes.narrow("groups:impersonate", ["dev-team"]),
        kubernetes.narrow("configmaps:get", ["settings"]),
    )
    assert harness.kernel.plugin_identities.narrowings.of("narrower") == {
        "configmaps:get": ["settings"],
        "groups:impersonate": ["dev-team"],
    }
    assert can(cluster, "get", "configmaps/settings") and not can(cluster, "get", "configmaps/x")
    assert can(cluster, "impersonate", "groups/dev-team")
    assert not can(cluster, "impersonate", "groups/ops")


async def test_a_cluster_that_fails_during_the_narrowing_gets_it_at_its_next_use(
    harness, cluster, monkeypatch
):
    """The narrowing is stored before the clusters are updated: a cluster that fails then
    (down, a kill at the worst moment) is named with why, and the next provisioning there
    (the plugin's next call) applies the stored narrowing, never the manifest's wider rule."""
    identities = harness.kernel.plugin_identities
    real = identities.service.request

    def down(cluster_name, method, path, **kwargs):
        if method == "PUT" and "clusterroles" in path:
            raise ConnectionError("connection refused")
        return real(cluster_name, method, path, **kwargs)

    monkeypatch.setattr(identities.service, "request", down)
    answer = await narrow(harness, "groups:impersonate", "dev-team")
    assert answer["changed"] is True
    assert answer["clusters"] == {"sandbox": "connection refused"}
    assert can(cluster, "impersonate", "groups/anyone")  # not applied there yet

    monkeypatch.setattr(identities.service, "request", real)
    assert (await harness.run("/narrower pods")).ok
    assert can(cluster, "impersonate", "groups/dev-team")
    assert not can(cluster, "impersonate", "groups/anyone")


async def test_a_narrowing_in_the_background_is_applied_before_the_kernel_closes(
    harness, cluster, caplog
):
    """A plugin narrows from a hook without waiting (SSO at each /sso map); a one-shot
    ``clustercord run`` then closes the kernel at once. The narrowing still reaches the
    cluster: closing under it failed on a closed database and left it for the next start."""
    kernel = harness.kernel
    permissions = kernel.manager.plugins["narrower"].manifest.permissions
    answer = await kernel.plugin_identities.narrow(
        "narrower", permissions, "groups:impersonate", ["dev-team"], wait=False
    )
    assert answer["clusters"] == {"sandbox": "pending"}
    await kernel.aclose()
    harness.kernel = None  # closed: the harness has nothing left to close
    assert "not applied yet" not in caplog.text
    assert can(cluster, "impersonate", "groups/dev-team")
    assert not can(cluster, "impersonate", "groups/anyone")
