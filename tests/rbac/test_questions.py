"""who-can, can-i and the matrix through the kernel, against the homelab sandbox."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from clustercord_testing.site import signed_builtins_site


async def test_who_can_lists_subjects_and_the_bindings_that_grant(rbac):
    result = await rbac.run("/rbac who-can verb:create resource:deployments namespace:home")
    assert result.ok, result.text
    subjects = result.reply.data["subjects"]
    assert {"kind": "ServiceAccount", "name": "ci", "namespace": "home"} in subjects
    assert {"kind": "User", "name": "admin", "namespace": ""} in subjects
    assert {"kind": "Group", "name": "system:masters", "namespace": ""} in subjects
    # family only views media: it may not create anything, anywhere
    assert all(s["name"] != "family" for s in subjects)
    ci = [b for b in result.reply.data["bindings"] if b["name"] == "ci-edit"]
    assert ci == [
        {
            "kind": "RoleBinding",
            "name": "ci-edit",
            "namespace": "home",
            "role": {"kind": "ClusterRole", "name": "edit"},
            "subjects": [{"kind": "ServiceAccount", "name": "ci", "namespace": "home"}],
        }
    ]
    assert result.reply.data["request"]["group"] == "apps"  # deployments resolved to apps


async def test_who_can_keeps_rolebindings_in_their_namespace(rbac):
    media = await rbac.run("/rbac who-can verb:create resource:deployments namespace:media")
    assert all(s["name"] != "ci" for s in media.reply.data["subjects"])
    view = await rbac.run("/rbac who-can verb:list resource:pods namespace:media")
    assert {"kind": "Group", "name": "family", "namespace": ""} in view.reply.data["subjects"]


async def test_who_can_subresources_are_not_covered_by_their_resource(rbac):
    logs = await rbac.run("/rbac who-can verb:get resource:pods subresource:log namespace:media")
    names = {s["name"] for s in logs.reply.data["subjects"]}
    assert "family" in names  # view grants pods/log explicitly
    exec_ = await rbac.run("/rbac who-can verb:create resource:pods/exec namespace:media")
    assert "family" not in {s["name"] for s in exec_.reply.data["subjects"]}


async def test_can_i_answers_with_the_deciding_binding(rbac):
    yes = await rbac.run(
        "/rbac can-i subject:sa:home/ci verb:update resource:deployments.apps namespace:home"
    )
    assert yes.ok and yes.reply.data["allowed"] is True
    assert yes.reply.data["binding"]["name"] == "ci-edit"
    assert "ci-edit" in yes.text and yes.text.startswith("✅ yes")
    no = await rbac.run("/rbac can-i subject:sa:home/ci verb:get resource:secrets namespace:media")
    assert no.ok and no.reply.data["allowed"] is False
    assert "no RBAC policy matched" in no.text
    prom = await rbac.run("/rbac can-i subject:sa:monitoring/prometheus verb:list resource:nodes")
    assert prom.reply.data["allowed"] is True


async def test_can_i_groups_and_unknown_subjects(rbac):
    group = await rbac.run(
        "/rbac can-i subject:group:family verb:list resource:pods namespace:media"
    )
    assert group.reply.data["allowed"] is True and group.reply.data["subject_known"] is True
    typo = await rbac.run("/rbac can-i subject:user:amdin verb:list resource:pods namespace:media")
    assert typo.ok and typo.reply.data["allowed"] is False
    assert typo.reply.data["subject_known"] is False and "No binding names user:amdin" in typo.text


async def test_bad_subjects_and_resources_get_a_clear_error(rbac):
    bad = await rbac.run("/rbac can-i subject:robot:x verb:get resource:pods")
    assert bad.status != "ok" and "unknown kind 'robot'" in bad.text
    sa = await rbac.run("/rbac can-i subject:sa:ci verb:get resource:pods")
    assert "sa:NAMESPACE/NAME" in sa.text
    typo = await rbac.run("/rbac who-can verb:get resource:podz")
    assert typo.status != "ok" and "unknown resource 'podz'" in typo.text and "pods" in typo.text
    chat = await rbac.run("/rbac can-i subject:@111111111111111111 verb:get resource:pods")
    assert chat.status != "ok" and "not mapped to a Kubernetes identity" in chat.text


async def test_discord_users_resolve_through_the_identity_mapping(clustercord_harness, homelab):
    from dataclasses import replace

    harness = clustercord_harness
    identity = {
        "users": {"111111111111111111": {"user": "grandma", "groups": ["family"]}},
        "roles": {"333": {"groups": ["system:serviceaccounts:home"]}},
    }
    harness.settings = replace(harness.settings, identity=identity)
    harness.add_builtins(["rbac"])
    await harness.start()
    mention = await harness.run(
        "/rbac can-i subject:<@111111111111111111> verb:list resource:pods namespace:media"
    )
    assert mention.ok and mention.reply.data["allowed"] is True  # through the family group
    assert mention.reply.data["subject"]["name"] == "grandma"
    assert "@111111111111111111 (user:grandma)" in mention.text
    elsewhere = await harness.run(
        "/rbac can-i subject:@111111111111111111 verb:list resource:pods namespace:home"
    )
    assert elsewhere.reply.data["allowed"] is False


async def test_matrix_shows_crud_read_and_nothing(rbac):
    result = await rbac.run("/rbac matrix namespace:home")
    assert result.ok, result.text
    rows = {r["label"]: r["cells"] for r in result.reply.data["rows"]}
    assert rows["sa:home/ci"]["pods"] == "CRUD"
    assert rows["sa:home/ci"]["deployments.apps"] == "CRUD"
    assert rows["sa:home/ci"]["secrets"] == "CRUD"  # edit may write secrets
    assert rows["user:admin"]["roles.rbac.authorization.k8s.io"] == "CRUD"
    assert rows["sa:home/ci"]["roles.rbac.authorization.k8s.io"] == ""  # edit cannot touch RBAC
    assert not any(label.startswith("user:system:") for label in rows)  # Kubernetes' own
    chosen = await rbac.run("/rbac matrix namespace:media subjects:group:family,sa:home/ci")
    rows = {r["label"]: r["cells"] for r in chosen.reply.data["rows"]}
    assert rows["group:family"]["pods"] == "Read"
    assert rows["group:family"]["secrets"] == ""  # view never reads secrets
    assert rows["sa:home/ci"]["pods"] == ""
    table = chosen.reply.tables[0]
    assert table.rows[0][1] == "✅ Read" and table.rows[0][3] == "❌"


def test_cli_json_prints_subjects_and_allowed(homelab, tmp_path, clustercord_signer):
    """``clustercord run --json`` against the sandbox: the shapes scripts rely on."""
    env = {
        **os.environ,
        "PYTHONPATH": str(tmp_path / "site"),
        "CLUSTERCORD_DATA_DIR": str(tmp_path / "data"),
        "KUBECONFIG": str(homelab.kubeconfig),
    }
    signed_builtins_site(tmp_path / "site", clustercord_signer)
    key = tmp_path / "test.asc"
    key.write_text(clustercord_signer.public_key)
    cli(env, "keys", "trust", str(key), "--label", "test key", "--kind", "release")
    who = json.loads(cli(env, "run", "--json", "/rbac who-can verb:list resource:nodes").stdout)
    assert {"kind": "ServiceAccount", "name": "prometheus", "namespace": "monitoring"} in who[
        "data"
    ]["subjects"]
    assert {b["name"] for b in who["data"]["bindings"]} >= {"prometheus", "admin-cluster-admin"}
    audit = json.loads(cli(env, "run", "--json", "/rbac audit").stdout)["data"]
    assert {"summary", "groups", "page", "pages", "cursor"} <= set(audit)
    assert "findings" not in audit and audit["page"] == 1
    assert audit["cursor"] == {"page": 2, "command": "/rbac audit page:2"}
    can = cli(env, "run", "--json", "/rbac can-i subject:group:family verb:delete resource:pods")
    assert json.loads(can.stdout)["data"]["allowed"] is False
    bad = cli(env, "run", "/rbac can-i subject:nobody verb:get resource:pods", check=False)
    assert bad.returncode == 2 and "expected user:NAME" in bad.stdout + bad.stderr


def cli(env, *args, check=True):
    main = "import sys; from clustercord.cli import main; sys.exit(main())"
    command = [sys.executable, "-c", main]
    result = subprocess.run([*command, *args], env=env, capture_output=True, text=True, timeout=60)
    assert not check or result.returncode == 0, result.stderr
    return result


async def test_a_large_matrix_comes_in_pages(rbac):
    """Only the page shown is computed; page:N (or ▶) asks for the next one."""
    many = ",".join(f"user:u{i}" for i in range(23)) + ",user:admin"
    result = await rbac.run(f"/rbac matrix namespace:media subjects:{many}")
    assert result.ok and not result.reply.pages
    assert result.reply.data["pages"] == 2 and result.reply.data["subjects"] == 24
    assert len(result.reply.tables[0].rows) == len(result.reply.data["rows"]) == 20
    assert f"next: /rbac matrix namespace:media subjects:{many} page:2" in result.text
    second = await rbac.run(f"/rbac matrix namespace:media subjects:{many} page:2")
    assert len(second.reply.tables[0].rows) == 4
    assert second.reply.tables[0].rows[-1][:2] == ["user:admin", "✅ CRUD"]
    assert second.reply.buttons[1].disabled and not second.reply.buttons[0].disabled


async def test_the_next_matrix_page_line_types_back_with_spaces_in_a_value(rbac):
    """``subjects:"user:a, user:b"`` as typed: the ``next:`` line quotes it again, so the
    console reads one option (unquoted, ``user:b`` would be a stray word)."""
    many = ", ".join(f"user:u{i}" for i in range(23)) + ", user:admin"
    first = await rbac.run(f'/rbac matrix namespace:media subjects:"{many}"')
    line = f'/rbac matrix namespace:media subjects:"{many}" page:2'
    assert f"next: {line}" in first.text
    second = await rbac.run(line)
    assert second.ok and second.reply.data["page"] == 2 and len(second.reply.data["rows"]) == 4
