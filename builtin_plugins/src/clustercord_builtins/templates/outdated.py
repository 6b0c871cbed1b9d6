"""``/template outdated``: deployed releases whose template has a newer version, and what an
update to it would change.

The changes are read, not guessed: the new version is rendered with the release's own
values (a plan, exactly as ``/template update`` would make it, nothing applied) and compared
with what the release has — its inventory for objects and kinds, the live workloads for
images, its stored values for variables. A new version that cannot be planned with the
release's values (a new required variable, a broken render) says why instead.
"""

from __future__ import annotations

import asyncio
import functools
from dataclasses import dataclass, field
from typing import Any

from packaging.version import InvalidVersion, Version

from clustercord_builtins.templates import catalog
from clustercord_builtins.templates.deployer import Deployer
from clustercord_builtins.templates.inventory import PART_OF, Release
from clustercord_builtins.templates.kinds import (
    DATA_KINDS,
    KINDS,
    by_group_kind,
    describe,
    kind_of,
)
from clustercord_builtins.templates.policy import pod_spec
from clustercord_sdk.errors import CommandError


def is_newer(candidate: str, deployed: str) -> bool:
    """Whether version ``candidate`` comes after ``deployed`` (semantic versions: a
    pre-release sorts before its release); two versions that cannot be compared are newer
    when they differ, so a renamed scheme is still reported."""
    try:
        return Version(candidate) > Version(deployed)
    except InvalidVersion:
        return candidate != deployed


@dataclass
class Changes:
    """What updating one release to its template's latest version would change."""

    release: Release
    latest: str
    variables_added: list[str] = field(default_factory=list)
    variables_removed: list[str] = field(default_factory=list)
    images: list[str] = field(default_factory=list)
    """``StatefulSet/postgres postgres: postgres:16.6 → postgres:17.2``."""
    kinds_added: list[str] = field(default_factory=list)
    kinds_removed: list[str] = field(default_factory=list)
    objects_added: list[str] = field(default_factory=list)
    objects_removed: list[str] = field(default_factory=list)
    problem: str = ""
    """Why the changes could not be worked out (the update would fail the same way)."""

    def summary(self) -> str:
        if self.problem:
            return self.problem
        parts = []
        if self.images:
            parts.append("images: " + "; ".join(self.images))
        if self.variables_added:
            parts.append("new variables: " + ", ".join(self.variables_added))
        if self.variables_removed:
            parts.append("variables gone: " + ", ".join(self.variables_removed))
        if self.kinds_added:
            parts.append("new kinds: " + ", ".join(self.kinds_added))
        if self.kinds_removed:
            parts.append("kinds gone: " + ", ".join(self.kinds_removed))
        if self.objects_added:
            parts.append("new objects: " + ", ".join(self.objects_added))
        if self.objects_removed:
            parts.append("objects removed: " + ", ".join(self.objects_removed))
        return "; ".join(parts) or "no change to images, variables or objects"

    def as_dict(self) -> dict[str, Any]:
        return {
            "deployment": self.release.id,
            "template": self.release.template,
            "deployed": self.release.version,
            "latest": self.latest,
            "variables_added": self.variables_added,
            "variables_removed": self.variables_removed,
            "images": self.images,
            "kinds_added": self.kinds_added,
            "kinds_removed": self.kinds_removed,
            "objects_added": self.objects_added,
            "objects_removed": self.objects_removed,
            "problem": self.problem,
        }


def images_of(objects: list[dict[str, Any]]) -> dict[str, str]:
    """``{"Deployment/web app": "nginx:1.27.3"}`` for every container of every workload."""
    out = {}
    for obj in objects:
        spec, _ = pod_spec(obj)
        for group in ("initContainers", "containers"):
            for container in (spec or {}).get(group) or []:
                out[f"{describe(obj)} {container.get('name')}"] = str(container.get("image"))
    return out


def _group_kinds(refs: list[dict[str, Any]]) -> set[str]:
    return {k.group_kind for r in refs if (k := kind_of(r)) is not None}


async def live_workloads(deployer: Deployer, release: Release) -> list[dict[str, Any]]:
    """The release's workloads as the cluster has them (their images may have been changed
    by hand since the deploy: the comparison is with what runs)."""
    resources = [k.resource for k in KINDS if k.workload]
    listings = await asyncio.gather(
        *(
            deployer.kube.list(
                resource,
                namespace=release.namespace,
                label_selector=f"{PART_OF}={release.set_id}",
                cluster=deployer.cluster,
            )
            for resource in resources
        )
    )
    objects = []
    for resource, items in zip(resources, listings, strict=True):
        kind = next(k for k in KINDS if k.resource == resource)
        objects += [{**o, "apiVersion": kind.api_version, "kind": kind.kind} for o in items]
    return objects


async def changes_for(deployer: Deployer, release: Release, entry: catalog.Entry) -> Changes:
    template = entry.template
    changes = Changes(release, template.version)
    secrets = await deployer.previous_secrets(release)
    had = set(release.values) | set(secrets)
    names = {v.name for v in template.variables}
    changes.variables_added = sorted(names - had)
    changes.variables_removed = sorted(had - names)
    if template.helm_charts:
        changes.problem = "changes not worked out: the new version renders Helm charts"
        return changes
    previous = {k: v for k, v in {**release.values, **secrets}.items() if k in names}
    try:
        plan = await asyncio.to_thread(
            functools.partial(
                deployer.plan,
                entry,
                release.namespace,
                {},
                release=release.release,
                previous=previous,
            )
        )
    except CommandError as error:
        changes.problem = f"the new version cannot be planned with this release's values: {error}"
        return changes
    wanted = [o for o in plan.objects if kind_of(o) is not None]
    now = {f"{m['kind']}/{m['name']}" for m in release.members}
    then = {describe(o) for o in wanted}
    changes.objects_added = sorted(then - now)
    # An update prunes what left the template, except data (claims, CRDs): kept, and said so.
    changes.objects_removed = sorted(
        f"{name} (kept: data)" if name.split("/")[0] in DATA_KINDS else name for name in now - then
    )
    before = _group_kinds(release.members)
    after = _group_kinds(wanted)
    changes.kinds_added = sorted(after - before)
    changes.kinds_removed = sorted(k for k in before - after if by_group_kind(k) is not None)
    old_images = images_of(await live_workloads(deployer, release))
    new_images = images_of(wanted)
    for key in sorted(set(old_images) | set(new_images)):
        old, new = old_images.get(key), new_images.get(key)
        if old != new:
            changes.images.append(f"{key}: {old or '(none)'} → {new or '(removed)'}")
    return changes


async def outdated(deployer: Deployer, store: Any) -> tuple[list[Changes], list[str]]:
    """Every release with a newer template version and its changes; and the releases whose
    template is no longer in the catalog (nothing to update them to)."""
    found, orphans = [], []
    for release, _ in await deployer.releases():
        try:
            entry = catalog.find(store, release.template)
        except CommandError:
            orphans.append(f"{release.id} ({release.template}@{release.version})")
            continue
        if is_newer(entry.template.version, release.version):
            found.append(await changes_for(deployer, release, entry))
    return found, orphans
