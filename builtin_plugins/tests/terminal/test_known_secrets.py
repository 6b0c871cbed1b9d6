"""Known-secret masking: which Secrets a pod's container references, and their values
masked wherever they appear in its session, bare or base64-encoded."""

from __future__ import annotations

import base64

from clustercord_builtins.terminal.known_secrets import enabled, forms, load, referenced
from clustercord_sdk.errors import PermissionDenied

from .conftest import recorder

POD = {
    "spec": {
        "containers": [
            {
                "name": "app",
                "env": [
                    {"name": "PLAIN", "value": "x"},
                    {
                        "name": "DB",
                        "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}},
                    },
                    {"name": "CM", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "k"}}},
                ],
                "envFrom": [{"secretRef": {"name": "api-keys"}}, {"configMapRef": {"name": "c"}}],
                "volumeMounts": [{"name": "tls", "mountPath": "/tls"}, {"name": "both"}],
            },
            {"name": "sidecar", "envFrom": [{"secretRef": {"name": "sidecar-only"}}]},
        ],
        "volumes": [
            {"name": "tls", "secret": {"secretName": "tls", "items": [{"key": "tls.key"}]}},
            {"name": "both", "projected": {"sources": [{"secret": {"name": "proj"}}]}},
            {"name": "unmounted", "secret": {"secretName": "not-mounted"}},
        ],
    }
}


def test_the_secrets_a_container_references_with_the_keys_it_reads():
    assert referenced(POD, "app") == {
        "db": {"password"},
        "api-keys": None,  # every key
        "tls": {"tls.key"},
        "proj": None,
    }
    assert referenced(POD, "sidecar") == {"sidecar-only": None}
    assert referenced({"spec": {}}, None) == {}


def test_masking_is_opt_in_per_cluster():
    assert not enabled("", "prod") and not enabled(None, "prod")
    assert enabled("staging, prod", "prod") and not enabled("staging", "prod")
    assert enabled("*", "anything")


def test_a_known_value_is_masked_bare_encoded_and_typed():
    value = "plainwords-in-a-row"  # nothing a rule would take for a secret
    encoded = base64.b64encode(value.encode()).decode()
    rec = recorder(known_secrets=forms(value))
    rec.input(f"echo {value}\n")
    rec.output(f"{value}\n{encoded}\nthe value: {value[:10]}\n".encode())
    recording = rec.finish(0)
    everything = "".join(d for _, _, d in recording.events) + " ".join(recording.commands)
    assert value not in everything and encoded.rstrip("=") not in everything
    assert "the value: plainwords" in everything  # a part of it is not the value
    assert recording.commands == ["echo ************"]


def test_short_or_multi_line_values_mask_only_what_is_safe_to():
    assert forms("admin") == ["admin", "YWRtaW4"]  # the recorder ignores both: too short
    rec = recorder(known_secrets=forms("admin"))
    rec.output(b"admin logged in\n")
    assert "admin logged in" in "".join(d for _, _, d in rec.finish(0).events)
    lines = forms("first-line-of-key\nsecond-line-of-key\n")
    assert "first-line-of-key" in lines and "second-line-of-key" in lines


class _Cluster:
    """Answers ``get`` as the kernel's service does: a Secret the user may read, a
    PermissionDenied (the SubjectAccessReview said no) for the others."""

    def __init__(self, readable: dict[str, dict]) -> None:
        self.readable = readable
        self.asked: list[str] = []

    async def get(self, resource, name, *, namespace, cluster):
        self.asked.append(f"{resource}/{name}")
        if name not in self.readable:
            raise PermissionDenied(f"you may not get secrets/{name} in {namespace}")
        return self.readable[name]


async def test_only_referenced_secrets_are_read_and_denied_ones_are_named():
    db = {"data": {"password": base64.b64encode(b"db-pass-value-1").decode(), "other": "eA=="}}
    cluster = _Cluster({"db": db})
    known = await load(cluster, POD, {"container": "app", "namespace": "n", "cluster": "c"})
    assert sorted(cluster.asked) == [
        "secrets/api-keys",
        "secrets/db",
        "secrets/proj",
        "secrets/tls",
    ]
    assert "db-pass-value-1" in known.values and "x" not in known.values  # only the key read
    assert known.read == ["db"] and known.unreadable == ["api-keys", "proj", "tls"]
    assert "not readable to you, so not masked: api-keys, proj, tls" in known.note()
