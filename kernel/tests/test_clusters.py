"""The cluster registry: kubeconfig contexts, uploads encrypted at rest, bad input."""

from __future__ import annotations

import json
import re
import stat

import pytest
import yaml

from clustercord.kubernetes.clusters import ClusterRegistry
from clustercord.secretbox import SecretBox
from clustercord.storage import Database
from clustercord_sdk.errors import CommandError, UsageError

TOKEN = "sandbox-token-0123456789abcdef"


def kubeconfig(name="home", server="https://10.0.0.1:6443", namespace=None, user=None, **extra):
    context = {"cluster": name, "user": f"{name}-admin"}
    if namespace:
        context["namespace"] = namespace
    return yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "current-context": name,
            "clusters": [{"name": name, "cluster": {"server": server, **extra}}],
            "users": [{"name": f"{name}-admin", "user": user or {"token": TOKEN}}],
            "contexts": [{"name": name, "context": context}],
        }
    )


@pytest.fixture
def database(tmp_path):
    db = Database(tmp_path / "clustercord.db")
    yield db
    db.close()


def registry(database, tmp_path, **env):
    return ClusterRegistry(
        database,
        SecretBox.from_settings(tmp_path, env={}),
        env={"HOME": str(tmp_path / "home"), **env},
    )


def test_every_context_of_every_kubeconfig_file(database, tmp_path):
    first, second = tmp_path / "a.yaml", tmp_path / "b.yaml"
    first.write_text(kubeconfig("prod", namespace="web"))
    second.write_text(kubeconfig("lab", server="https://192.0.2.7:6443"))
    clusters = registry(database, tmp_path, KUBECONFIG=f"{first}:{second}").list()
    assert [(c.name, c.server, c.namespace) for c in clusters] == [
        ("lab", "https://192.0.2.7:6443", "default"),
        ("prod", "https://10.0.0.1:6443", "web"),
    ]


def test_a_broken_kubeconfig_file_is_reported_not_fatal(database, tmp_path):
    broken, good = tmp_path / "broken.yaml", tmp_path / "good.yaml"
    broken.write_text("clusters: [unclosed")
    good.write_text(kubeconfig("lab"))
    reg = registry(database, tmp_path, KUBECONFIG=f"{broken}:{good}")
    assert [c.name for c in reg.list()] == ["lab"]
    assert reg.problems == [f"{broken}: not valid YAML at line 1"]


def test_uploaded_kubeconfig_is_encrypted_and_survives_restart(database, tmp_path):
    reg = registry(database, tmp_path)
    added = reg.add("homelab", kubeconfig(), by="42")
    assert added.source == "uploaded by 42"
    raw = (tmp_path / "clustercord.db").read_bytes() + b"".join(
        p.read_bytes() for p in tmp_path.glob("clustercord.db-*")
    )
    assert TOKEN.encode() not in raw and b"10.0.0.1" not in raw
    assert stat.S_IMODE((tmp_path / "secret.key").stat().st_mode) == 0o600

    again = registry(database, tmp_path)
    assert again.get("homelab").server == "https://10.0.0.1:6443"
    assert again.kubeconfig("homelab")["users"][0]["user"]["token"] == TOKEN


def test_a_wrong_key_is_a_clear_error(database, tmp_path):
    registry(database, tmp_path).add("homelab", kubeconfig(), by="42")
    other = ClusterRegistry(
        database,
        SecretBox.from_settings(tmp_path, env={"CLUSTERCORD_SECRET_KEY": "another passphrase"}),
        env={"HOME": "/nonexistent"},
    )
    assert other.list() == []
    assert "cannot be decrypted" in other.problems[0]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not yaml", "not valid YAML"),
        ("- a\n- b\n", "a kubeconfig is a YAML mapping"),
        (kubeconfig(server="not-a-url"), "server 'not-a-url' is not a URL"),
        (
            kubeconfig(user={"exec": {"command": "rm", "args": ["-rf", "/"]}}),
            "users[home-admin].exec is refused in an uploaded kubeconfig",
        ),
        (kubeconfig(user={"auth-provider": {"name": "gcp"}}), "auth-provider is refused"),
        (
            kubeconfig(**{"certificate-authority": "/etc/shadow"}),
            "clusters[home].certificate-authority names a file on the bot's host",
        ),
        (
            yaml.safe_dump({"kind": "Config", "clusters": [], "users": [], "contexts": []}),
            "no contexts",
        ),
        (kubeconfig().replace("user: home-admin", "user: nobody"), "user 'nobody' is not defined"),
    ],
)
def test_a_malformed_upload_is_refused_and_nothing_is_stored(database, tmp_path, text, message):
    reg = registry(database, tmp_path)
    with pytest.raises(UsageError, match=message.replace("[", r"\[").replace("]", r"\]")):
        reg.add("homelab", text, by="42")
    assert list(database.db["_clusters"].rows) == []
    assert reg.list() == []


def test_names_are_not_silently_replaced(database, tmp_path):
    path = tmp_path / "a.yaml"
    path.write_text(kubeconfig("prod"))
    reg = registry(database, tmp_path, KUBECONFIG=str(path))
    with pytest.raises(UsageError, match="a cluster named 'prod' exists"):
        reg.add("prod", kubeconfig("prod"), by="42")
    with pytest.raises(CommandError, match="remove it there"):
        reg.remove("prod")


def test_per_user_defaults_are_stored(database, tmp_path):
    reg = registry(database, tmp_path)
    reg.add("one", kubeconfig("one"), by="1")
    reg.add("two", kubeconfig("two", namespace="media"), by="1")
    assert reg.default_for("7") == (None, None)  # two clusters: no guess
    reg.set_default("7", "two")
    assert registry(database, tmp_path).default_for("7") == ("two", "media")
    with pytest.raises(CommandError, match="no cluster named 'three'"):
        reg.set_default("7", "three")


# -- duplicate names: the entry checked is the entry stored ----------------------------------
EXEC = {"exec": {"apiVersion": "client.authentication.k8s.io/v1", "command": "sh"}}


def two_users_same_name() -> str:
    """The attack: the first ``admin`` runs a program, the second is harmless."""
    document = yaml.safe_load(kubeconfig())
    document["users"] = [
        {"name": "home-admin", "user": EXEC},
        {"name": "home-admin", "user": {"token": TOKEN}},
    ]
    return yaml.safe_dump(document)


def duplicated(key: str) -> str:
    document = yaml.safe_load(kubeconfig())
    document[key].append(document[key][0])
    return yaml.safe_dump(document)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (two_users_same_name(), "users[1]: a second user named 'home-admin'"),
        (duplicated("clusters"), "clusters[1]: a second cluster named 'home'"),
        (duplicated("contexts"), "contexts[1]: a second context named 'home'"),
    ],
)
def test_duplicate_names_are_refused_and_nothing_changes(database, tmp_path, text, message):
    reg = registry(database, tmp_path)
    reg.add("kept", kubeconfig("kept"), by="42")
    with pytest.raises(UsageError, match=re.escape(message)):
        reg.add("homelab", text, by="42")
    assert [row["name"] for row in database.db["_clusters"].rows] == ["kept"]
    assert [c.name for c in reg.list()] == ["kept"]
    assert [c.name for c in registry(database, tmp_path).list()] == ["kept"]


def test_a_duplicate_in_a_host_kubeconfig_is_reported_not_guessed(database, tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(two_users_same_name())
    reg = registry(database, tmp_path, KUBECONFIG=str(path))
    assert reg.list() == []
    assert reg.problems == [
        f"{path}: users[1]: a second user named 'home-admin'; each user name must be unique"
    ]


def test_only_the_checked_context_is_stored(database, tmp_path):
    document = yaml.safe_load(kubeconfig("home"))
    other = yaml.safe_load(kubeconfig("other", server="https://192.0.2.9:6443"))
    for key in ("clusters", "users", "contexts"):
        document[key] += other[key]
    reg = registry(database, tmp_path)
    reg.add("homelab", yaml.safe_dump(document), by="42")
    stored = json.loads(reg.secrets.open(database.db["_clusters"].get("homelab")["kubeconfig"]))
    assert stored["users"] == [{"name": "home-admin", "user": {"token": TOKEN}}]
    assert [c["name"] for c in stored["clusters"]] == ["home"]
    assert [c["name"] for c in stored["contexts"]] == ["home"]
    assert reg.kubeconfig("homelab") == stored


def test_a_stored_upload_that_cannot_be_read_can_be_removed_and_added_again(database, tmp_path):
    """A row stored before duplicates were refused (the exec user kept, the harmless one
    checked): it must not be invisible and stuck, nor make re-adding a raw IntegrityError."""
    box = registry(database, tmp_path).secrets
    database.db["_clusters"].insert(
        {
            "name": "homelab",
            "kubeconfig": box.seal(json.dumps(yaml.safe_load(two_users_same_name()))),
            "added_by": "42",
            "added_at": 0.0,
        }
    )
    reg = registry(database, tmp_path)
    assert reg.list() == []
    assert reg.problems == [
        "uploaded cluster homelab: homelab: users[1]: a second user named 'home-admin'; "
        "each user name must be unique"
    ]
    with pytest.raises(UsageError, match="'homelab' is stored but cannot be used") as refused:
        reg.add("homelab", kubeconfig(), by="42")
    assert "a second user named 'home-admin'" in str(refused.value)
    assert "/cluster remove homelab" in str(refused.value)

    reg.remove("homelab")
    assert list(database.db["_clusters"].rows) == [] and reg.problems == []
    reg.add("homelab", kubeconfig(), by="42")
    assert [c.name for c in registry(database, tmp_path).list()] == ["homelab"]


def test_re_adding_a_name_is_a_clear_error_even_when_stored_meanwhile(
    database, tmp_path, monkeypatch
):
    reg = registry(database, tmp_path)
    reg.add("homelab", kubeconfig(), by="42")
    with pytest.raises(UsageError, match="a cluster named 'homelab' exists"):
        reg.add("homelab", kubeconfig(), by="42")
    stale = registry(database, tmp_path)
    registry(database, tmp_path).remove("homelab")
    registry(database, tmp_path).add("homelab", kubeconfig(), by="7")  # another process
    stale._clusters.pop("homelab")  # this one did not see it yet
    with pytest.raises(UsageError, match="a cluster named 'homelab' is already stored"):
        stale.add("homelab", kubeconfig(), by="42")
    # Stored between the check and the insert: still a clear error, not an IntegrityError.
    monkeypatch.setattr(stale, "_stored", lambda name: False)
    with pytest.raises(UsageError, match="a cluster named 'homelab' is already stored"):
        stale.add("homelab", kubeconfig(), by="42")
    assert [c.name for c in reg.list()] == ["homelab"]
