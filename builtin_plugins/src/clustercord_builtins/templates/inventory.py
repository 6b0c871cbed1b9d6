"""What a deployment owns, recorded in the cluster as an ApplySet (KEP-3659).

Each deployment has a parent Secret of type ``clustercord.dev/release.v1`` in its namespace,
labelled ``applyset.kubernetes.io/id`` and annotated with the tooling and the group-kinds it
contains; every member carries ``applyset.kubernetes.io/part-of`` and
``app.kubernetes.io/managed-by: clustercord``. The Secret holds the template and version, the
members, the non-secret variables and the last ten revisions, so ``list-deployed``,
``update`` and ``delete`` work after a restart and from any replica. Secret variables live in
a second Secret (a member) so an update keeps the same passwords.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from dataclasses import dataclass, field
from typing import Any

from clustercord_builtins.templates.kinds import kind_of
from clustercord_builtins.templates.render import MANAGED_BY, MANAGER

APPLYSET_ID = "applyset.kubernetes.io/id"
PART_OF = "applyset.kubernetes.io/part-of"
TOOLING = "applyset.kubernetes.io/tooling"
CONTAINS = "applyset.kubernetes.io/contains-group-kinds"
TOOLING_VALUE = "clustercord/v1"
DEPLOYMENT_LABEL = "clustercord.dev/deployment"
RELEASE_TYPE = "clustercord.dev/release.v1"
HISTORY_MAX = 10


def parent_name(release: str) -> str:
    return f"clustercord-release-{release}"


def values_name(release: str) -> str:
    return f"clustercord-values-{release}"


def applyset_id(release: str, namespace: str) -> str:
    """KEP-3659: ``applyset-<base64url(sha256(<name>.<namespace>.<kind>.<group>))>-v1``."""
    digest = hashlib.sha256(f"{parent_name(release)}.{namespace}.Secret.".encode()).digest()
    return f"applyset-{base64.urlsafe_b64encode(digest).decode().rstrip('=')}-v1"


def deployment_id(release: str, namespace: str) -> str:
    """The short id users type (``/template delete deployment:3f9a1c2e``)."""
    return hashlib.sha256(f"{namespace}/{release}".encode()).hexdigest()[:8]


def member_ref(obj: dict[str, Any]) -> dict[str, str]:
    return {"apiVersion": obj["apiVersion"], "kind": obj["kind"], "name": obj["metadata"]["name"]}


def label_members(objects: list[dict[str, Any]], set_id: str) -> None:
    for obj in objects:
        obj["metadata"].setdefault("labels", {})[PART_OF] = set_id


@dataclass
class Release:
    """The parsed inventory of one deployment."""

    release: str
    namespace: str
    template: str
    version: str
    members: list[dict[str, str]] = field(default_factory=list)
    retained: list[dict[str, str]] = field(default_factory=list)
    """Claims that left the template in an update: kept, deleted only with delete_data."""
    values: dict[str, Any] = field(default_factory=dict)
    revisions: list[dict[str, Any]] = field(default_factory=list)
    created_namespace: bool = False
    source: str = "curated"

    @property
    def id(self) -> str:
        return deployment_id(self.release, self.namespace)

    @property
    def set_id(self) -> str:
        return applyset_id(self.release, self.namespace)

    @property
    def revision(self) -> int:
        return int(self.revisions[-1]["revision"]) if self.revisions else 0

    @property
    def status(self) -> str:
        return str(self.revisions[-1]["status"]) if self.revisions else "unknown"

    def record(self, action: str, status: str, by: str, **details: Any) -> None:
        self.revisions.append(
            {
                "revision": self.revision + 1 if action != "status" else self.revision,
                "action": action,
                "status": status,
                "template_version": self.version,
                "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "by": by,
                **details,
            }
        )
        self.revisions = self.revisions[-HISTORY_MAX:]

    def to_secret(self) -> dict[str, Any]:
        group_kinds = sorted(
            {k.group_kind for m in self.members + self.retained if (k := kind_of(m)) is not None}
        )
        payload = {
            "release": self.release,
            "namespace": self.namespace,
            "template": self.template,
            "version": self.version,
            "members": self.members,
            "retained": self.retained,
            "values": self.values,
            "revisions": self.revisions,
            "created_namespace": self.created_namespace,
            "source": self.source,
        }
        return {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": RELEASE_TYPE,
            "metadata": {
                "name": parent_name(self.release),
                "namespace": self.namespace,
                "labels": {
                    APPLYSET_ID: self.set_id,
                    MANAGED_BY: MANAGER,
                    DEPLOYMENT_LABEL: self.id,
                    "app.kubernetes.io/instance": self.release,
                    "clustercord.dev/template": self.template,
                },
                "annotations": {
                    TOOLING: TOOLING_VALUE,
                    CONTAINS: ",".join(group_kinds),
                    "clustercord.dev/template-version": f"{self.template}@{self.version}",
                },
            },
            "data": {"release": base64.b64encode(json.dumps(payload).encode()).decode()},
        }

    @classmethod
    def from_secret(cls, secret: dict[str, Any]) -> Release:
        raw = base64.b64decode((secret.get("data") or {}).get("release", "")).decode()
        data = json.loads(raw)
        return cls(
            release=data["release"],
            namespace=data["namespace"],
            template=data["template"],
            version=data["version"],
            members=data.get("members", []),
            retained=data.get("retained", []),
            values=data.get("values", {}),
            revisions=data.get("revisions", []),
            created_namespace=data.get("created_namespace", False),
            source=data.get("source", "curated"),
        )


def values_secret(release: str, namespace: str, secrets: dict[str, str]) -> dict[str, Any]:
    """The deployment's secret variables (generated or given), as a member Secret."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": values_name(release),
            "namespace": namespace,
            "labels": {MANAGED_BY: MANAGER, "app.kubernetes.io/instance": release},
        },
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in sorted(secrets.items())},
    }


def read_values_secret(secret: dict[str, Any]) -> dict[str, str]:
    return {k: base64.b64decode(v).decode() for k, v in ((secret.get("data") or {}).items())}
