"""/template outdated: releases whose template has a newer version, and what an update to it
changes, against the sandbox (the changes are read from the live release and a plan)."""

from __future__ import annotations

import pytest

from clustercord_builtins.templates.outdated import is_newer
from tests.templates.test_community import APP, submission, write

pytestmark = pytest.mark.usefixtures("server_side_apply")

ACCOUNT = """apiVersion: v1
kind: ServiceAccount
metadata: {name: whoami}
"""


def version_2():
    app = APP.split("---")[0].replace("traefik/whoami:v1.10.3", "traefik/whoami:v1.11.0")
    return submission(
        "2.0.0",
        [{"name": "app.yaml", "content": app}, {"name": "account.yaml", "content": ACCOUNT}],
        variables=[{"name": "greeting", "type": "string", "default": "hello"}],
    )


@pytest.mark.parametrize(
    ("candidate", "deployed", "newer"),
    [
        ("1.1.0", "1.0.0", True),
        ("1.10.0", "1.9.0", True),  # compared as numbers, not text
        ("1.0.0", "1.0.0", False),
        ("1.0.0", "1.1.0", False),  # the catalog went back: nothing to update to
        ("2.0.0", "2.0.0-rc.1", True),
        ("2.0.0-rc.1", "1.9.9", True),
    ],
)
def test_versions_compare_as_semantic_versions(candidate, deployed, newer):
    assert is_newer(candidate, deployed) is newer


async def test_outdated_lists_what_an_update_would_change(templates, homelab, tmp_path):
    assert (await templates.run(f"/template submit file:{write(tmp_path, submission())}")).ok
    deployed = await templates.run("/template deploy template:whoami namespace:old wait:false")
    assert deployed.ok, deployed.text
    current = await templates.run("/template deploy template:nats namespace:current wait:false")
    assert current.ok, current.text

    none = await templates.run("/template outdated")
    assert none.ok, none.text
    assert none.text == "Every deployment on sandbox runs its template's latest version."
    assert none.reply.data["outdated"] == []

    v2 = write(tmp_path, version_2(), "v2.json")
    assert (await templates.run(f"/template submit file:{v2}")).ok
    found = await templates.run("/template outdated")
    assert found.ok, found.text
    assert found.text.startswith("1 deployments on sandbox have a newer template version")
    (row,) = found.reply.data["outdated"]
    assert row == {
        "deployment": row["deployment"],
        "template": "whoami",
        "deployed": "1.0.0",
        "latest": "2.0.0",
        "variables_added": ["greeting"],
        "variables_removed": [],
        "images": ["Deployment/whoami whoami: traefik/whoami:v1.10.3 → traefik/whoami:v1.11.0"],
        "kinds_added": ["ServiceAccount"],
        "kinds_removed": ["ConfigMap", "PersistentVolumeClaim"],
        "objects_added": ["ServiceAccount/whoami"],
        # The update prunes the ConfigMap and keeps the claim's data.
        "objects_removed": [
            "ConfigMap/whoami-extra",
            "PersistentVolumeClaim/whoami-data (kept: data)",
        ],
        "problem": "",
    }
    (table,) = found.reply.tables
    assert [r[:4] for r in table.rows] == [["old/whoami", "whoami", "1.0.0", "2.0.0"]]
    assert (
        "images: Deployment/whoami whoami: traefik/whoami:v1.10.3 → traefik/whoami:v1.11.0"
        in (table.rows[0][4])
    )
    # Reading changed nothing: the release still runs version 1.
    image = homelab.kubectl(
        "get",
        "deployment",
        "whoami",
        "-n",
        "old",
        "-o",
        "jsonpath={.spec.template.spec.containers[0].image}",
    )
    assert image == "traefik/whoami:v1.10.3"
    assert "configmap/whoami-extra" in homelab.names("old", "configmaps")

    updated = await templates.run("/template update deployment:old/whoami")
    assert updated.ok, updated.text
    after = await templates.run("/template outdated")
    assert after.reply.data["outdated"] == []
    assert after.text == "Every deployment on sandbox runs its template's latest version."

    # A version the release's values cannot satisfy says why, as the update would: the
    # release keeps greeting=hello, version 3 wants capitals.
    v3 = version_2()
    v3["version"] = "3.0.0"
    v3["variables"] = [
        {
            "name": "greeting",
            "type": "string",
            "default": "HELLO",
            "validation": {"pattern": "^[A-Z]+$"},
        }
    ]
    assert (await templates.run(f"/template submit file:{write(tmp_path, v3, 'v3.json')}")).ok
    needy = await templates.run("/template outdated")
    (row,) = needy.reply.data["outdated"]
    assert (row["deployed"], row["latest"]) == ("2.0.0", "3.0.0")
    assert row["problem"].startswith("the new version cannot be planned with this release's")
    assert "variable greeting (string): the deployed value no longer passes" in row["problem"]
    assert "does not match the pattern" in row["problem"]
    assert needy.reply.tables[0].rows[0][4] == row["problem"]

    # An image changed by hand is compared as it runs.
    homelab.kubectl(
        "set", "image", "deployment/whoami", "whoami=traefik/whoami:v1.9.0", "-n", "old"
    )
    v4 = version_2()
    v4["version"] = "3.0.1"
    assert (await templates.run(f"/template submit file:{write(tmp_path, v4, 'v4.json')}")).ok
    by_hand = await templates.run("/template outdated")
    (row,) = by_hand.reply.data["outdated"]
    assert row["images"] == [
        "Deployment/whoami whoami: traefik/whoami:v1.9.0 → traefik/whoami:v1.11.0"
    ]
