"""Known-secret masking, as CI systems mask their secret variables: the values of the
Secrets a pod references are masked wherever they show up in its session, bare or
base64-encoded, with nothing around them to recognise them by.

Opt-in per cluster (the plugin's ``known_secret_clusters`` setting). The plugin declares
``secrets:get``; the SDK's permission grammar has no ``resourceNames``, so the limit to the
referenced names is enforced here (only the names the pod's spec references are read, never
a list) and by the kernel's SubjectAccessReview of each read against the invoking user's own
Kubernetes identity: a user who may not read a Secret gets no masking from it (the session
says so) rather than a way to read it through the plugin. The values stay in memory, in the
redactor, for the session only.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from clustercord_sdk.errors import CommandError

MAX_VALUE = 64 * 1024
"""Bytes of a Secret's value read at most (a bundle of certificates is not a password)."""


def enabled(setting: str | None, cluster: str) -> bool:
    """Whether ``known_secret_clusters`` (comma-separated names, ``*`` for all) names
    ``cluster``."""
    names = {n.strip() for n in (setting or "").split(",") if n.strip()}
    return "*" in names or cluster in names


def referenced(pod: dict[str, Any], container: str | None) -> dict[str, set[str] | None]:
    """The Secrets ``container`` of ``pod`` reads, by name: the keys it reads (``None``: all
    of them) through env ``secretKeyRef``, ``envFrom`` ``secretRef``, and mounted ``secret``
    or ``projected`` volumes."""
    spec = pod.get("spec") or {}
    wanted: dict[str, set[str] | None] = {}

    def add(name: Any, key: Any = None) -> None:
        if not isinstance(name, str) or not name:
            return
        if key is None:
            wanted[name] = None
        elif wanted.get(name, set()) is not None:
            wanted.setdefault(name, set()).add(str(key))  # type: ignore[union-attr]

    containers = [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]
    chosen = [c for c in containers if c.get("name") == container] or containers[:1]
    mounted: set[str] = set()
    for c in chosen:
        for env in c.get("env") or []:
            ref = ((env or {}).get("valueFrom") or {}).get("secretKeyRef") or {}
            add(ref.get("name"), ref.get("key", ""))
        for source in c.get("envFrom") or []:
            add(((source or {}).get("secretRef") or {}).get("name"))
        mounted |= {m.get("name") for m in c.get("volumeMounts") or [] if isinstance(m, dict)}
    for volume in spec.get("volumes") or []:
        if not isinstance(volume, dict) or volume.get("name") not in mounted:
            continue
        secret = volume.get("secret") or {}
        _add_items(add, secret.get("secretName"), secret.get("items"))
        for source in (volume.get("projected") or {}).get("sources") or []:
            projected = (source or {}).get("secret") or {}
            _add_items(add, projected.get("name"), projected.get("items"))
    return wanted


def _add_items(add: Any, name: Any, items: Any) -> None:
    if not items:
        add(name)
    for item in items or []:
        add(name, (item or {}).get("key"))


def forms(value: str) -> list[str]:
    """What of ``value`` to mask: itself, its base64 (padding left out, so that both
    spellings match), and each line of a multi-line value."""
    value = value.strip()
    found = [value, base64.b64encode(value.encode()).decode().rstrip("=")]
    if "\n" in value:
        found += [line.strip() for line in value.splitlines()]
    return [f for f in found if f]


@dataclass
class KnownSecrets:
    values: list[str] = field(default_factory=list)
    read: list[str] = field(default_factory=list)
    """The Secrets read (names only)."""
    unreadable: list[str] = field(default_factory=list)
    """Referenced Secrets the user may not read (or that are missing): not masked."""

    def note(self) -> str:
        """A line for the session's reply: what is masked, and what could not be."""
        if not self.read and not self.unreadable:
            return ""
        text = f"values of {len(self.read)} Secret(s) the pod uses are masked"
        if self.unreadable:
            text += f"; not readable to you, so not masked: {', '.join(self.unreadable)}"
        return text


async def load(kubernetes: Any, pod: dict[str, Any], target: dict[str, Any]) -> KnownSecrets:
    """The values of the Secrets the target container references, each read by name as the
    invoking user (see the module's docstring)."""
    known = KnownSecrets()
    for name, keys in sorted(referenced(pod, target.get("container")).items()):
        try:
            secret = await kubernetes.get(
                "secrets", name, namespace=target["namespace"], cluster=target["cluster"]
            )
        except CommandError:  # denied (PermissionDenied is one) or missing
            known.unreadable.append(name)
            continue
        known.read.append(name)
        known.values += _values(secret, keys)
    return known


def _values(secret: dict[str, Any], keys: Iterable[str] | None) -> list[str]:
    data = secret.get("data") or {}
    chosen = data if keys is None else {k: data[k] for k in keys if k in data}
    values = []
    for encoded in chosen.values():
        try:
            raw = base64.b64decode(str(encoded)[: MAX_VALUE * 2], validate=True)[:MAX_VALUE]
        except (binascii.Error, ValueError):
            continue
        values += forms(raw.decode("utf-8", errors="replace"))
    return values
