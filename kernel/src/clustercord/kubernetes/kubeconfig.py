"""Reading and checking kubeconfig documents.

An uploaded kubeconfig comes from chat, so it is held to stricter rules than a file an
operator put on the host: credential plugins (``exec``, ``auth-provider``) and local
file references would run commands or read files on the bot's machine, and are refused.

Two clusters, users or contexts of the same name are refused in any kubeconfig (kubectl
refuses them too): with two users ``admin``, a check could read one entry while the
client uses the other. What is kept of an upload is built by :func:`restrict` from the
very entries the check read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from clustercord_sdk.errors import UsageError

_FILE_KEYS = ("certificate-authority", "client-certificate", "client-key", "tokenFile")


@dataclass(frozen=True)
class Context:
    """One usable context of a kubeconfig."""

    name: str
    server: str
    namespace: str
    user: str
    cluster: str = ""


def parse_kubeconfig(
    text: str, *, source: str = "kubeconfig", untrusted: bool = False
) -> tuple[dict[str, Any], list[Context]]:
    """Parse and check a kubeconfig; every problem raises :class:`UsageError` naming it."""
    import yaml  # here, not at the top: the kernel starts without reading any kubeconfig

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise UsageError(f"{source}: not valid YAML{where}") from None
    if not isinstance(data, dict):
        raise UsageError(f"{source}: a kubeconfig is a YAML mapping (kind: Config)")
    if data.get("kind", "Config") != "Config":
        raise UsageError(f"{source}: kind is {data.get('kind')!r}, expected Config")
    clusters = _named(data, "clusters", "cluster", source)
    users = _named(data, "users", "user", source)
    contexts = _named(data, "contexts", "context", source)
    if not contexts:
        raise UsageError(f"{source}: no contexts")
    found = []
    for name, context in contexts.items():
        where = f"{source}: contexts[{name}]"
        cluster_name, user_name = context.get("cluster"), context.get("user")
        if cluster_name not in clusters:
            raise UsageError(f"{where}: cluster {cluster_name!r} is not defined")
        if user_name not in users:
            raise UsageError(f"{where}: user {user_name!r} is not defined")
        server = str(clusters[cluster_name].get("server") or "")
        parsed = urlparse(server)
        if parsed.scheme not in ("https", "http") or not parsed.hostname:
            raise UsageError(f"{source}: clusters[{cluster_name}].server {server!r} is not a URL")
        if untrusted:
            _refuse_host_access(source, clusters[cluster_name], f"clusters[{cluster_name}]")
            _refuse_host_access(source, users[user_name], f"users[{user_name}]")
        namespace = context.get("namespace") or "default"
        found.append(Context(name, server, namespace, user_name, cluster_name))
    current = data.get("current-context")
    if current and current not in contexts:
        raise UsageError(f"{source}: current-context {current!r} is not defined")
    return data, found


def _named(data: dict[str, Any], key: str, inner: str, source: str) -> dict[str, dict[str, Any]]:
    items = data.get(key) or []
    if not isinstance(items, list):
        raise UsageError(f"{source}: {key} must be a list")
    out: dict[str, dict[str, Any]] = {}
    for index, item in enumerate(items):
        if (
            not isinstance(item, dict)
            or not item.get("name")
            or not isinstance(item.get(inner), dict)
        ):
            raise UsageError(f"{source}: {key}[{index}] needs a name and a {inner} mapping")
        name = str(item["name"])
        if name in out:
            raise UsageError(
                f"{source}: {key}[{index}]: a second {inner} named {name!r}; each {inner} "
                "name must be unique"
            )
        out[name] = item[inner]
    return out


def restrict(data: dict[str, Any], context: Context, source: str = "kubeconfig") -> dict[str, Any]:
    """A kubeconfig of just ``context`` (found by :func:`parse_kubeconfig` in ``data``),
    its cluster and its user: the entries the check read, nothing else."""
    contexts = _named(data, "contexts", "context", source)
    clusters = _named(data, "clusters", "cluster", source)
    users = _named(data, "users", "user", source)
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": context.name,
        "contexts": [{"name": context.name, "context": contexts[context.name]}],
        "clusters": [{"name": context.cluster, "cluster": clusters[context.cluster]}],
        "users": [{"name": context.user, "user": users[context.user]}],
    }


def _refuse_host_access(source: str, entry: dict[str, Any], where: str) -> None:
    for key in ("exec", "auth-provider"):
        if key in entry:
            raise UsageError(
                f"{source}: {where}.{key} is refused in an uploaded kubeconfig: it would run a "
                "program on the bot's host. Use a token or client certificate data instead."
            )
    for key in _FILE_KEYS:
        if key in entry:
            raise UsageError(
                f"{source}: {where}.{key} names a file on the bot's host; embed it as "
                f"{key}-data instead"
            )
