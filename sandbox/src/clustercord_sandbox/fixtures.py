"""Starting states for the sandbox: `empty`, `homelab`, and a YAML file of objects.

Fixtures go through `ObjectAPI` like any client, so their objects are validated and get uids,
resourceVersions and defaults exactly as if kubectl had created them. The data files live in
`data/` next to this module (the bootstrap RBAC policy is Kubernetes' own), so a fixture never
depends on anything outside the installed package.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import yaml

from .auth import bootstrap_objects
from .controllers import default_node_status
from .objects import ObjectAPI, WriteOptions

SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
DATA = Path(__file__).parent / "data"
# Creation order: what others refer to (namespaces, classes, roles) before what refers to it.
_KIND_ORDER = {
    "Namespace": 0,
    "StorageClass": 1,
    "Node": 1,
    "ClusterRole": 2,
    "Role": 2,
    "ServiceAccount": 2,
}

Obj = dict[str, Any]


class FixtureError(ValueError):
    """A fixture that cannot be loaded (unknown name, unreadable file, unknown kind)."""


def objects_from_yaml(text: str) -> list[Obj]:
    objects: list[Obj] = []
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml keeps `empty` fast
    for doc in yaml.load_all(text, Loader=loader):
        if doc is None:
            continue
        if not isinstance(doc, dict):
            raise FixtureError(f"a YAML document is not an object: {doc!r}")
        if doc.get("kind", "").endswith("List") and isinstance(doc.get("items"), list):
            objects.extend(doc["items"])
        else:
            objects.append(doc)
    return objects


@functools.cache
def _data_file(name: str) -> tuple[Obj, ...]:
    """A packaged YAML file, parsed once per process (callers get copies)."""
    objects = objects_from_yaml((DATA / name).read_text())
    for obj in objects:  # the published policy carries `creationTimestamp: null`
        (obj.get("metadata") or {}).pop("creationTimestamp", None)
    return tuple(objects)


def _packaged(*names: str) -> list[Obj]:
    return [copy.deepcopy(obj) for name in names for obj in _data_file(name)]


def empty() -> list[Obj]:
    """What a fresh cluster has: the system namespaces and the bootstrap RBAC policy."""
    namespaces = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n}}
        for n in SYSTEM_NAMESPACES
    ]
    return namespaces + bootstrap_objects()


def _node(name: str, ip: str, arch: str, cpu: str, memory: str, index: int, control: bool) -> Obj:
    """A node as its kubelet registers it, with a Ready status and a podCIDR of its own."""
    labels = {
        "beta.kubernetes.io/arch": arch,
        "beta.kubernetes.io/os": "linux",
        "kubernetes.io/arch": arch,
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
    }
    if control:
        labels["node-role.kubernetes.io/control-plane"] = ""
        labels["node.kubernetes.io/exclude-from-external-load-balancers"] = ""
    os_image = "Ubuntu 24.04.1 LTS" if arch == "amd64" else "Debian GNU/Linux 12 (bookworm)"
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": labels,
            "annotations": {"node.alpha.kubernetes.io/ttl": "0"},
        },
        "spec": {"podCIDR": f"10.244.{index}.0/24", "podCIDRs": [f"10.244.{index}.0/24"]},
        "status": default_node_status(name, ip, arch, cpu, memory, os_image),
    }


def homelab_nodes() -> list[Obj]:
    """`nas` (the amd64 control plane, which also runs workloads) and two Raspberry Pis."""
    return [
        _node("nas", "192.168.1.10", "amd64", "8", "32Gi", 0, control=True),
        _node("pi-1", "192.168.1.11", "arm64", "4", "8Gi", 1, control=False),
        _node("pi-2", "192.168.1.12", "arm64", "4", "8Gi", 2, control=False),
    ]


def homelab() -> list[Obj]:
    """A small home cluster: media, games, monitoring and home automation, with RBAC."""
    return empty() + homelab_nodes() + _packaged("homelab.yaml")


# Named fixtures, as `clustercord sandbox --fixture NAME` knows them.
NAMED: dict[str, Callable[[], list[Obj]]] = {"empty": empty, "homelab": homelab}


def resolve(fixture: str) -> list[Obj]:
    """The objects of a named fixture, or of a YAML file (on top of `empty`)."""
    if fixture in NAMED:
        return NAMED[fixture]()
    path = Path(fixture)
    if not path.is_file():
        raise FixtureError(
            f"no fixture named {fixture!r} and no such file (known: {', '.join(NAMED)})"
        )
    return empty() + objects_from_yaml(path.read_text())


def load(api: ObjectAPI, objects: Iterable[Obj]) -> int:
    """Creates the objects in dependency order; returns how many were created.

    A `status` in the fixture is written through the status subresource after the create
    (which, as on the real server, ignores it): that is how nodes arrive Ready.
    """
    ordered = sorted(objects, key=lambda o: _KIND_ORDER.get(o.get("kind", ""), 3))
    count = 0
    for obj in ordered:
        rt = api.registry.by_kind(obj.get("apiVersion", ""), obj.get("kind", ""))
        if rt is None:
            raise FixtureError(
                f"the sandbox does not serve {obj.get('apiVersion')}/{obj.get('kind')}"
            )
        meta = obj.get("metadata") or {}
        namespace = (meta.get("namespace") or "default") if rt.namespaced else ""
        if api.store.get(rt.group, rt.plural, namespace, meta.get("name", "")):
            continue  # already there (e.g. a namespace the file repeats)
        created = api.create(rt, namespace, obj, WriteOptions(field_validation="Strict"))
        if obj.get("status") and "status" in rt.subresources:
            created["status"] = obj["status"]
            api.update(
                rt, namespace, created["metadata"]["name"], created, WriteOptions(), "status"
            )
        count += 1
    return count
