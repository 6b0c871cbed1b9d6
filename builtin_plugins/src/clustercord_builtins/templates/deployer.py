"""Deploy, update and delete a template's objects with server-side apply.

The order of a deploy is what makes it safe to retry and impossible to half-finish:
variables, render and policy (nothing touched yet); the cluster's requirements and the
namespace's ownership (read only); a server-side dry run of every object (admission
runs, nothing persists); the inventory Secret; then each object, applied as the field
manager ``clustercord``. When an apply fails midway, everything this deploy created is
deleted again and the reason is kept in the plugin's history. Deploy, update and delete
of one deployment never overlap, even from two replicas (a Lease: ``lock.py``).
"""

from __future__ import annotations

import asyncio
import difflib
import functools
import itertools
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import yaml

from clustercord_builtins.templates import policy, requirements
from clustercord_builtins.templates.catalog import Entry
from clustercord_builtins.templates.inventory import (
    PART_OF,
    Release,
    applyset_id,
    label_members,
    member_ref,
    parent_name,
    read_values_secret,
    values_name,
    values_secret,
)
from clustercord_builtins.templates.kinds import (
    DATA_KINDS,
    NAMESPACED,
    apply_order,
    describe,
    kind_of,
    namespaced,
)
from clustercord_builtins.templates.limits import RenderLimits
from clustercord_builtins.templates.lock import LEASES, expired, held, holder_dead, lock_name
from clustercord_builtins.templates.render import MANAGED_BY, MANAGER, Rendered, render_manifests
from clustercord_builtins.templates.template import TemplateError
from clustercord_builtins.templates.validation import checks
from clustercord_builtins.templates.variables import Values, VariableError, resolve
from clustercord_sdk.errors import CommandError

FIELD_MANAGER = "clustercord"
HISTORY_TABLE = "history"
STUCK = {"deploying": "install", "applying": "upgrade"}
"""What a release's last revision says while an operation runs (and the action it was), which
it keeps when the process running it is killed: ``reconcile`` marks those ``interrupted``."""
INTERRUPTED = "interrupted"
Progress = Callable[[float, float, str], Awaitable[None]]
# Objects every namespace has that nobody deploys (the real server creates them).
_SYSTEM = {("ServiceAccount", "default"), ("ConfigMap", "kube-root-ca.crt")}
_VOLATILE = ("resourceVersion", "managedFields", "generation", "uid", "creationTimestamp")


async def _no_progress(current: float, total: float, label: str) -> None:
    return None


@dataclass
class Plan:
    """A rendered deployment, checked but not yet applied."""

    entry: Entry
    release: str
    namespace: str
    cluster: str
    values: Values
    rendered: Rendered
    report: policy.Report
    objects: list[dict[str, Any]] = field(default_factory=list)

    @property
    def set_id(self) -> str:
        return applyset_id(self.release, self.namespace)


@dataclass
class Outcome:
    release: Release
    applied: list[str]
    pruned: list[str] = field(default_factory=list)
    diff: str = ""
    generated: dict[str, str] = field(default_factory=dict)


class Deployer:
    """One user's deploy, update or delete on one cluster, through the SDK's Kubernetes."""

    def __init__(
        self,
        kube: Any,
        cluster: str,
        *,
        store: Any = None,
        by: str = "console",
        progress: Progress | None = None,
        render_limits: RenderLimits | None = None,
    ) -> None:
        self.kube = kube
        # Community templates render in a bounded child process; curated ones in-process.
        self.render_limits = render_limits or RenderLimits()
        self.cluster = cluster
        self.store = store
        self.by = by
        self.progress = progress or _no_progress

    # -- planning (nothing written) ------------------------------------------------------
    def limits_for(self, entry: Entry) -> RenderLimits | None:
        """The render limits of ``entry``: none for the curated catalog we ship and test."""
        return None if entry.source == "curated" else self.render_limits

    def plan(
        self,
        entry: Entry,
        namespace: str,
        given: dict[str, Any],
        *,
        release: str | None = None,
        previous: dict[str, Any] | None = None,
        helm_allowed: bool = False,
    ) -> Plan:
        """Variables, render and policy: nothing touched yet. The policy runs with the render
        (in the bounded child for a community template). ``helm_allowed``: the caller checked
        that the user may make helm run."""
        template = entry.template
        release = release or template.name
        try:
            values = resolve(template, given, previous=previous)
            rendered = render_manifests(
                template,
                values.values,
                release=release,
                namespace=namespace,
                limits=self.limits_for(entry),
                helm_allowed=helm_allowed,
                check=checks(template),
            )
        except (VariableError, TemplateError) as error:
            raise CommandError(f"{template.name}: {error}") from None
        report: policy.Report = rendered.report
        if report.errors:
            lines = "\n".join(f"- {e}" for e in report.errors[:10])
            raise CommandError(f"{template.name} breaks the security policy:\n{lines}")
        objects = [dict(o) for o in rendered.objects]
        if values.secret:
            objects.append(values_secret(release, namespace, values.secrets()))
        label_members(objects, applyset_id(release, namespace))
        return Plan(entry, release, namespace, self.cluster, values, rendered, report, objects)

    async def check_cluster(self, plan: Plan) -> None:
        """Refuse, before anything is created, a cluster that lacks what the template needs."""
        missing = await requirements.unmet(
            self.kube,
            self.cluster,
            plan.entry.template,
            plan.rendered.objects,
            plan.report.estimate,
            plan.values.values,
        )
        if missing:
            lines = "\n".join(f"- {m}" for m in missing)
            raise CommandError(
                f"cluster {self.cluster} does not meet the requirements of "
                f"{plan.entry.template.name}; nothing was created. Missing:\n{lines}"
            )

    async def existing(self, namespace: str) -> dict[tuple[str, str], dict[str, Any]]:
        """Every object of a kind templates create, in ``namespace``, by (kind, name)."""
        listings = await asyncio.gather(
            *(
                self.kube.list(k.resource, namespace=namespace, cluster=self.cluster)
                for k in NAMESPACED
            )
        )
        found = {}
        for kind, objects in zip(NAMESPACED, listings, strict=True):
            for obj in objects:
                obj.setdefault("kind", kind.kind)
                obj.setdefault("apiVersion", kind.api_version)
                found[(kind.kind, obj["metadata"]["name"])] = obj
        return found

    async def cluster_wide(
        self, objects: list[dict[str, Any]]
    ) -> dict[tuple[str, str], dict[str, Any]]:
        """The cluster-wide objects of ``objects`` (an operator's CRDs, ClusterRoles) that
        exist already, by (kind, name): a fresh namespace says nothing about them."""
        wanted = [(kind_of(o), o["metadata"]["name"]) for o in objects if not namespaced(o)]
        listings = await asyncio.gather(
            *(
                self.kube.list(
                    kind.resource, field_selector=f"metadata.name={name}", cluster=self.cluster
                )
                for kind, name in wanted
                if kind is not None
            )
        )
        found = {}
        for (kind, name), items in zip(wanted, listings, strict=True):
            for obj in items:
                obj.setdefault("kind", kind.kind)  # type: ignore[union-attr]
                obj.setdefault("apiVersion", kind.api_version)  # type: ignore[union-attr]
                found[(obj["kind"], name)] = obj
        return found

    def foreign(self, existing: dict[tuple[str, str], dict[str, Any]], plan: Plan) -> list[str]:
        """Objects in the namespace that this deployment may not take over: anything not
        managed by ClusterCord, and ClusterCord objects of another deployment in our way."""
        wanted = {(o["kind"], o["metadata"]["name"]) for o in plan.objects}
        wanted.add(("Secret", parent_name(plan.release)))
        problems = []
        for (kind, name), obj in sorted(existing.items()):
            meta = obj.get("metadata") or {}
            labels = meta.get("labels") or {}
            if (kind, name) in _SYSTEM or meta.get("ownerReferences"):
                continue
            if obj.get("type") == "kubernetes.io/service-account-token":
                continue
            if labels.get(PART_OF) == plan.set_id or (
                labels.get("applyset.kubernetes.io/id") == plan.set_id
            ):
                continue
            if labels.get(MANAGED_BY) != MANAGER:
                problems.append(f"{kind}/{name} (not managed by ClusterCord)")
            elif (kind, name) in wanted:
                problems.append(f"{kind}/{name} (belongs to another ClusterCord deployment)")
        return problems

    async def _namespace_exists(self, namespace: str) -> bool:
        found = await self.kube.list(
            "namespaces", field_selector=f"metadata.name={namespace}", cluster=self.cluster
        )
        return bool(found)

    async def _namespace(self, namespace: str, *, exists: bool) -> bool:
        """Create the namespace when missing; ``True`` when this call created it."""
        if exists:
            return False
        await self.kube.create(
            "namespaces",
            {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": namespace, "labels": {MANAGED_BY: MANAGER}},
            },
            cluster=self.cluster,
        )
        return True

    async def _apply(self, obj: dict[str, Any], *, dry_run: bool = False) -> dict[str, Any]:
        kind = kind_of(obj)
        if kind is None:  # the policy refuses these first; kept as a guard
            raise CommandError(f"{describe(obj)}: not a kind templates may create")
        return await self.kube.apply(  # type: ignore[no-any-return]
            kind.resource,
            obj,
            field_manager=FIELD_MANAGER,
            namespace=obj["metadata"].get("namespace"),
            cluster=self.cluster,
            dry_run=dry_run,
        )

    async def _delete(self, ref: dict[str, str], namespace: str) -> bool:
        kind = kind_of(ref)
        if kind is None:
            return False
        try:
            await self.kube.delete(
                kind.resource,
                ref["name"],
                namespace=namespace if kind.namespaced else None,
                cluster=self.cluster,
            )
        except CommandError as error:
            if str(error).startswith("not found"):
                return False
            raise
        return True

    async def dry_run(self, objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Server-side dry run of every object; the server's answers (for diffs)."""
        # Concurrent: a dry run persists nothing, so the order of the calls cannot matter.
        answers = await asyncio.gather(
            *(self._apply(obj, dry_run=True) for obj in objects), return_exceptions=True
        )
        for obj, answer in zip(objects, answers, strict=True):
            if isinstance(answer, CommandError):
                raise CommandError(
                    f"the server refused {describe(obj)} in a dry run: {answer}"
                ) from None
            if isinstance(answer, BaseException):
                raise answer
        return answers  # type: ignore[return-value]

    async def apply_all(
        self, ordered: list[dict[str, Any]], done: Callable[[dict[str, Any]], Awaitable[None]]
    ) -> tuple[dict[str, Any], CommandError] | None:
        """Apply ``ordered`` group by group (what others refer to first), each group's objects
        concurrently; ``done`` is called for each applied object. Returns the first failure,
        after its group's other applies have finished, or ``None``."""
        for _, group in itertools.groupby(ordered, key=lambda o: getattr(kind_of(o), "order", 99)):
            batch = list(group)
            answers = await asyncio.gather(
                *(self._apply(obj) for obj in batch), return_exceptions=True
            )
            failure = None
            for obj, answer in zip(batch, answers, strict=True):
                if isinstance(answer, CommandError):
                    failure = failure or (obj, answer)
                elif isinstance(answer, BaseException):
                    raise answer
                else:
                    await done(obj)
            if failure is not None:
                return failure
        return None

    # -- deploy ------------------------------------------------------------------------------
    async def deploy(self, plan: Plan) -> Outcome:
        """Check, dry-run, record and apply ``plan``; roll back what it created on failure."""
        await self.check_cluster(plan)
        fresh = not await self._namespace_exists(plan.namespace)
        # A namespace that does not exist yet holds nothing to take over.
        existing = {} if fresh else await self.existing(plan.namespace)
        existing.update(await self.cluster_wide(plan.objects))
        interrupted = self._installed(existing, plan)
        foreign = self.foreign(existing, plan)
        if foreign:
            raise CommandError(
                f"namespace {plan.namespace} holds objects this deployment does not own, and "
                "ClusterCord never takes over silently; nothing was created:\n- "
                + "\n- ".join(foreign[:10])
            )
        ordered = apply_order(plan.objects)
        total = len(ordered) + 2
        await self.progress(0, total, "checking with a server-side dry run")
        created_namespace = await self._namespace(plan.namespace, exists=not fresh)
        async with held(self.kube, self.cluster, plan.namespace, plan.release, self.by):
            if interrupted is not None:
                # Read again under the lock: what we saw may have finished meanwhile.
                again = await self.existing(plan.namespace)
                interrupted = self._installed(again, plan)
                if interrupted is not None:
                    created_namespace = created_namespace or interrupted.created_namespace
                if interrupted is not None and interrupted.status == "deploying":
                    self._history(
                        interrupted,
                        "install",
                        "interrupted",
                        reason="the deploy that left it 'deploying' died; deployed again",
                    )
            return await self._install(plan, ordered, total, created_namespace)

    def _installed(
        self, existing: dict[tuple[str, str], dict[str, Any]], plan: Plan
    ) -> Release | None:
        """The release a killed deploy left ``deploying`` here (to deploy again), ``None``
        when there is none; refused when the release is deployed (that is an update)."""
        parent = existing.get(("Secret", parent_name(plan.release)))
        if parent is None:
            return None
        release = Release.from_secret(parent)
        if release.status in ("deploying", INTERRUPTED) and release.revision <= 1:
            # Only a process that died mid-install leaves this: its Lease is taken over when
            # its holder is known dead (lock.py), and the install runs again over what it
            # applied (the same objects, labelled with this deployment's applyset).
            return release
        raise CommandError(
            f"{plan.release} is already deployed in namespace {plan.namespace}: use "
            "/template update (nothing was changed)"
        )

    async def _install(
        self, plan: Plan, ordered: list[dict[str, Any]], total: int, created_namespace: bool
    ) -> Outcome:
        try:
            await self.dry_run(ordered)
        except CommandError:
            if created_namespace:
                await self.kube.delete("namespaces", plan.namespace, cluster=self.cluster)
            raise
        release = Release(
            release=plan.release,
            namespace=plan.namespace,
            template=plan.entry.template.name,
            version=plan.entry.template.version,
            members=[member_ref(o) for o in ordered],
            values=plan.values.public(),
            created_namespace=created_namespace,
            source=plan.entry.source,
        )
        release.record("install", "deploying", self.by, digest=plan.rendered.digest())
        parent = release.to_secret()
        await self._apply(parent)
        await self.progress(1, total, "inventory recorded")
        applied: list[dict[str, Any]] = []

        async def done(obj: dict[str, Any]) -> None:
            applied.append(obj)
            await self.progress(len(applied) + 1, total, f"applied {describe(obj)}")

        failure = await self.apply_all(ordered, done)
        if failure is not None:
            await self._roll_back(release, applied, created_namespace, *failure)
        release.revisions[-1]["status"] = "deployed"
        await self._apply(release.to_secret())
        await self.progress(total, total, "deployed")
        self._history(release, "install", "deployed", objects=len(applied))
        return Outcome(
            release,
            [describe(o) for o in applied],
            generated={
                k: v for k, v in plan.values.secrets().items() if k in plan.values.generated
            },
        )

    async def _roll_back(
        self,
        release: Release,
        applied: list[dict[str, Any]],
        created_namespace: bool,
        failed: dict[str, Any],
        error: CommandError,
    ) -> None:
        """Delete what this deploy created (newest first), record why, and raise."""
        removed = []
        for obj in reversed(applied):
            if await self._delete(member_ref(obj), release.namespace):
                removed.append(describe(obj))
        await self._delete(
            {"apiVersion": "v1", "kind": "Secret", "name": parent_name(release.release)},
            release.namespace,
        )
        removed_namespace = created_namespace and await self._remove_namespace_if_empty(
            release.namespace
        )
        reason = f"applying {describe(failed)} failed: {error}"
        self._history(release, "install", "rolled-back", reason=reason, removed=removed)
        raise CommandError(
            f"deploy of {release.template} into {release.namespace} failed and was rolled back. "
            f"{reason}. Removed {len(removed)} objects it had created"
            + (" and the namespace it created" if removed_namespace else "")
            + "."
        )

    async def _remove_namespace_if_empty(self, namespace: str) -> bool:
        """Delete a namespace this plugin created, unless someone else's objects are in it."""
        remaining = await self.existing(namespace)
        if any(key not in _SYSTEM for key in remaining):
            return False
        await self.kube.delete("namespaces", namespace, cluster=self.cluster)
        return True

    def _history(self, release: Release, action: str, status: str, **details: Any) -> None:
        if self.store is None:
            return
        self.store.table(HISTORY_TABLE).insert(
            {
                "at": time.time(),
                "cluster": self.cluster,
                "deployment": release.id,
                "namespace": release.namespace,
                "release": release.release,
                "template": f"{release.template}@{release.version}",
                "action": action,
                "status": status,
                "by": self.by,
                "details": details,
            },
            alter=True,
        )

    # -- at start ----------------------------------------------------------------------------
    async def reconcile(self) -> list[tuple[Release, str]]:
        """Mark ``interrupted`` the releases a killed process left mid-operation on this
        cluster, and release their Lease; returns each with the reason.

        A release is left alone while its Lease's holder may be alive (this machine's live
        process, or another machine's before the Lease expires): only a holder known dead
        (``lock.holder_dead``), an expired Lease, or no Lease at all (nobody is working on
        it) counts. The state is then changed under the Lease, taken over as a deploy would,
        after reading the release again: an operation that finished meanwhile is kept.
        """
        done = []
        for release, _ in await self.releases():
            if release.status not in STUCK:
                continue
            leases = await self.kube.list(
                LEASES,
                namespace=release.namespace,
                field_selector=f"metadata.name={lock_name(release.release)}",
                cluster=self.cluster,
            )
            if not leases:
                why = "no process holds its lock"
            elif (dead := holder_dead(leases[0])) is not None:
                why = dead
            elif expired(leases[0], datetime.now(UTC)):
                why = "its lock expired"
            else:
                continue  # its holder may still be working on it
            try:
                async with held(
                    self.kube, self.cluster, release.namespace, release.release, self.by
                ):
                    found = await self.kube.list(
                        "secrets",
                        namespace=release.namespace,
                        field_selector=f"metadata.name={parent_name(release.release)}",
                        cluster=self.cluster,
                    )
                    current = Release.from_secret(found[0]) if found else None
                    if current is None or current.status not in STUCK:
                        continue  # finished (or deleted) meanwhile
                    action = STUCK[current.status]
                    reason = f"the {action} that left it {current.status!r} died: {why}"
                    current.revisions[-1].update(status=INTERRUPTED, reason=reason)
                    await self._apply(current.to_secret())
                    self._history(current, action, INTERRUPTED, reason=reason)
                    done.append((current, reason))
            except CommandError:
                continue  # taken by an operation that just started: it will take it over
        return done

    # -- reading back ------------------------------------------------------------------------
    async def releases(self, namespace: str | None = None) -> list[tuple[Release, dict[str, Any]]]:
        secrets = await self.kube.list(
            "secrets",
            namespace=namespace,
            all_namespaces=namespace is None,
            label_selector="clustercord.dev/deployment",
            cluster=self.cluster,
        )
        out = []
        for secret in secrets:
            if secret.get("type") == "clustercord.dev/release.v1":
                out.append((Release.from_secret(secret), secret))
        return sorted(out, key=lambda pair: (pair[0].namespace, pair[0].release))

    async def find(self, deployment: str) -> Release:
        """A deployment by id (``3f9a1c2e``), ``namespace/release`` or the release name
        ``/template list-deployed`` shows (``redis``) when only one namespace has it; a
        name in several namespaces is answered with the choices, never guessed."""
        wanted = deployment.strip()
        releases = [release for release, _ in await self.releases()]
        for release in releases:
            if wanted in (release.id, f"{release.namespace}/{release.release}"):
                return release
        named = [release for release in releases if release.release == wanted]
        if len(named) == 1:
            return named[0]
        if named:
            choices = ", ".join(f"{r.namespace}/{r.release} ({r.id})" for r in named)
            raise CommandError(
                f"{len(named)} deployments are named {wanted!r} on cluster {self.cluster}: "
                f"{choices}; name one as namespace/release or by its id"
            )
        raise CommandError(
            f"no deployment {wanted!r} on cluster {self.cluster} (see /template list-deployed)"
        )

    async def previous_secrets(self, release: Release) -> dict[str, str]:
        found = await self.kube.list(
            "secrets",
            namespace=release.namespace,
            field_selector=f"metadata.name={values_name(release.release)}",
            cluster=self.cluster,
        )
        return read_values_secret(found[0]) if found else {}

    # -- update ------------------------------------------------------------------------------
    async def update(
        self, release: Release, entry: Entry, given: dict[str, Any], *, helm_allowed: bool = False
    ) -> Outcome:
        async with held(self.kube, self.cluster, release.namespace, release.release, self.by):
            return await self._update(release, entry, given, helm_allowed=helm_allowed)

    async def _update(
        self, release: Release, entry: Entry, given: dict[str, Any], *, helm_allowed: bool
    ) -> Outcome:
        previous = {**release.values, **await self.previous_secrets(release)}
        # In a thread: a community template's render may take up to its limit (seconds),
        # and the event loop serves everyone else meanwhile.
        plan = await asyncio.to_thread(
            functools.partial(
                self.plan,
                entry,
                release.namespace,
                given,
                release=release.release,
                previous=previous,
                helm_allowed=helm_allowed,
            )
        )
        await self.check_cluster(plan)
        existing = await self.existing(release.namespace)
        existing.update(await self.cluster_wide(plan.objects))
        foreign = self.foreign(existing, plan)
        if foreign:
            raise CommandError(
                f"namespace {release.namespace} holds objects in this deployment's way; nothing "
                "was changed:\n- " + "\n- ".join(foreign[:10])
            )
        ordered = apply_order(plan.objects)
        answers = await self.dry_run(ordered)
        diff = render_diff(ordered, answers, existing)
        wanted = {(m["kind"], m["name"]) for m in map(member_ref, ordered)}
        gone = [m for m in release.members if (m["kind"], m["name"]) not in wanted]
        keep = [m for m in gone if m["kind"] in DATA_KINDS]
        prune = [m for m in gone if m["kind"] not in DATA_KINDS]
        release.version = entry.template.version
        release.values = plan.values.public()
        release.members = [member_ref(o) for o in ordered]
        release.retained = [
            r for r in release.retained + keep if (r["kind"], r["name"]) not in wanted
        ]
        release.record("upgrade", "applying", self.by, digest=plan.rendered.digest())
        await self._apply(release.to_secret())
        total = len(ordered) + len(prune) + 1
        applied: list[dict[str, Any]] = []

        async def done(obj: dict[str, Any]) -> None:
            applied.append(obj)
            await self.progress(len(applied), total, f"applied {describe(obj)}")

        failure = await self.apply_all(ordered, done)
        if failure is not None:  # nothing is deleted: the previous revision's objects stay
            obj, error = failure
            release.revisions[-1].update(status="failed", reason=f"{describe(obj)}: {error}")
            await self._apply(release.to_secret())
            self._history(release, "upgrade", "failed", reason=f"{describe(obj)}: {error}")
            raise CommandError(
                f"update of {release.release} stopped at {describe(obj)}: {error}. The objects "
                "applied before it keep their new state; run /template update again to retry."
            )
        pruned = []
        for ref in reversed(apply_order(prune)):  # type: ignore[arg-type]
            if await self._delete(ref, release.namespace):
                pruned.append(f"{ref['kind']}/{ref['name']}")
        release.revisions[-1].update(status="deployed", pruned=pruned)
        await self._apply(release.to_secret())
        await self.progress(total, total, "updated")
        self._history(release, "upgrade", "deployed", pruned=pruned)
        return Outcome(release, [describe(o) for o in ordered], pruned, diff)

    # -- delete ------------------------------------------------------------------------------
    async def delete(self, release: Release, *, delete_data: bool) -> tuple[list[str], list[str]]:
        """Delete every member (claims only with ``delete_data``); returns (deleted, kept)."""
        async with held(self.kube, self.cluster, release.namespace, release.release, self.by):
            return await self._delete_members(release, delete_data=delete_data)

    async def _delete_members(
        self, release: Release, *, delete_data: bool
    ) -> tuple[list[str], list[str]]:
        members = release.members + release.retained

        def label(ref: dict[str, str]) -> str:
            return f"{ref['kind']}/{ref['name']}"

        keep = [r for r in members if r["kind"] in DATA_KINDS and not delete_data]
        doomed = [r for r in members if r not in keep]
        # Concurrent: owners go, and the garbage collector removes what they own either way.
        gone = await asyncio.gather(*(self._delete(r, release.namespace) for r in doomed))
        deleted = [label(r) for r, was in zip(doomed, gone, strict=True) if was]
        kept = [label(r) for r in keep]
        await self.progress(len(doomed), len(doomed) + 1, f"deleted {len(deleted)} objects")
        await self._delete(
            {"apiVersion": "v1", "kind": "Secret", "name": parent_name(release.release)},
            release.namespace,
        )
        if (
            delete_data
            and release.created_namespace
            and await self._remove_namespace_if_empty(release.namespace)
        ):
            deleted.append(f"Namespace/{release.namespace}")
        self._history(release, "delete", "deleted", deleted=deleted, kept=kept)
        return deleted, kept


def _comparable(obj: dict[str, Any]) -> dict[str, Any]:
    clean = {k: v for k, v in obj.items() if k != "status"}
    meta = {k: v for k, v in (obj.get("metadata") or {}).items() if k not in _VOLATILE}
    clean["metadata"] = meta
    if obj.get("kind") == "Secret":  # a diff is shown in chat: keys only, never values
        for part in ("data", "stringData"):
            if part in clean:
                clean[part] = {key: "<redacted>" for key in clean[part]}
    return clean


def render_diff(
    objects: list[dict[str, Any]],
    answers: list[dict[str, Any]],
    existing: dict[tuple[str, str], dict[str, Any]],
) -> str:
    """A unified diff of each object now against what the dry run says it would become."""
    chunks = []
    for obj, answer in zip(objects, answers, strict=True):
        key = (obj["kind"], obj["metadata"]["name"])
        before = existing.get(key)
        old = yaml.safe_dump(_comparable(before), sort_keys=True) if before else ""
        new = yaml.safe_dump(_comparable(answer), sort_keys=True)
        if old == new:
            continue
        label = describe(obj)
        chunks.extend(
            difflib.unified_diff(
                old.splitlines(keepends=True),
                new.splitlines(keepends=True),
                f"{label} (live)" if before else "/dev/null",
                f"{label} (new)",
            )
        )
    return "".join(chunks)
