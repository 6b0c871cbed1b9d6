"""The cluster registry: every cluster the kernel can talk to, by name.

Sources, in order (a later one never silently replaces an earlier name):
- every context of the kubeconfig files in ``KUBECONFIG`` (colon-separated), else
  ``~/.kube/config``; the registry name is the context name;
- the in-cluster service account, as ``in-cluster``, when running in a pod;
- kubeconfigs uploaded through chat (``/cluster add``), stored encrypted, refused if
  they would run programs or read files on the host.

Each user may choose a default cluster and namespace; they are stored.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clustercord.kubernetes.kubeconfig import parse_kubeconfig, restrict
from clustercord.secretbox import SecretBox
from clustercord.storage import Database
from clustercord_sdk.errors import CommandError, UsageError

IN_CLUSTER = "in-cluster"
# Where the kubelet mounts a pod's ServiceAccount: token, ca.crt and namespace.
SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")


@dataclass(frozen=True)
class Cluster:
    name: str
    server: str
    namespace: str
    source: str
    """``kubeconfig:<path>``, ``in-cluster`` or ``uploaded by <user>``."""
    context: str | None = None


class ClusterRegistry:
    def __init__(
        self, database: Database, secrets: SecretBox, env: Mapping[str, str] | None = None
    ) -> None:
        self.database = database
        self.secrets = secrets
        self.env = dict(os.environ) if env is None else dict(env)
        database.db["_clusters"].create(
            {"name": str, "kubeconfig": str, "added_by": str, "added_at": float},
            pk="name",
            if_not_exists=True,
        )
        self._files: dict[str, tuple[Path, dict[str, Any]]] = {}
        self._clusters: dict[str, Cluster] = {}
        self.problems: list[str] = []
        self.reload()

    # -- discovery -------------------------------------------------------------------
    def reload(self) -> None:
        self._clusters, self._files, self.problems = {}, {}, []
        for path in self._kubeconfig_paths():
            try:
                data, contexts = parse_kubeconfig(path.read_text("utf-8"), source=str(path))
            except OSError as exc:
                self.problems.append(f"{path}: {exc.strerror}")
                continue
            except UsageError as exc:
                self.problems.append(str(exc))
                continue
            for context in contexts:
                self._add(
                    Cluster(
                        context.name,
                        context.server,
                        context.namespace,
                        f"kubeconfig:{path}",
                        context.name,
                    )
                )
                self._files.setdefault(context.name, (path, data))
        host, port = (
            self.env.get("KUBERNETES_SERVICE_HOST"),
            self.env.get("KUBERNETES_SERVICE_PORT"),
        )
        account = SERVICE_ACCOUNT_DIR
        if host and port and (account / "token").exists():
            # Like kubectl in a pod: the pod's own namespace is the default one.
            namespace_file = account / "namespace"
            namespace = namespace_file.read_text("utf-8").strip() if namespace_file.exists() else ""
            server = f"https://{host}:{port}" if ":" not in host else f"https://[{host}]:{port}"
            self._add(Cluster(IN_CLUSTER, server, namespace or "default", IN_CLUSTER))
        for row in self.database.db["_clusters"].rows:
            try:
                _, contexts = parse_kubeconfig(
                    self.secrets.open(row["kubeconfig"]), source=row["name"], untrusted=True
                )
            except (CommandError, UsageError) as exc:
                self.problems.append(f"uploaded cluster {row['name']}: {exc}")
                continue
            context = contexts[0]
            self._add(
                Cluster(
                    row["name"],
                    context.server,
                    context.namespace,
                    f"uploaded by {row['added_by']}",
                    context.name,
                )
            )

    def _kubeconfig_paths(self) -> list[Path]:
        configured = self.env.get("KUBECONFIG")
        if configured:
            return [Path(p).expanduser() for p in configured.split(os.pathsep) if p]
        default = Path(self.env.get("HOME", "~")).expanduser() / ".kube" / "config"
        return [default] if default.exists() else []

    def _add(self, cluster: Cluster) -> None:
        if cluster.name in self._clusters:
            self.problems.append(
                f"cluster {cluster.name!r} from {cluster.source} ignored: the name is taken by "
                f"{self._clusters[cluster.name].source}"
            )
            return
        self._clusters[cluster.name] = cluster

    # -- queries -----------------------------------------------------------------------
    def list(self) -> list[Cluster]:
        return sorted(self._clusters.values(), key=lambda c: c.name)

    def get(self, name: str) -> Cluster:
        cluster = self._clusters.get(name)
        if cluster is None:
            known = ", ".join(sorted(self._clusters)) or "none (add one with /cluster add)"
            raise CommandError(f"no cluster named {name!r}; clusters: {known}")
        return cluster

    def api_client(self, name: str) -> Any:
        """A new ``kubernetes.client.ApiClient`` for a cluster, with the kernel's credentials.

        In a pod, the ServiceAccount token is re-read from its file as the kubelet rotates
        it (the client library's in-cluster loader does so before each request once a
        minute has passed), so a long-running bot never holds an expired token.
        """
        from kubernetes import client, config  # imported on first use: it is slow

        if self.get(name).source != IN_CLUSTER:
            return config.new_client_from_config_dict(self.kubeconfig(name))
        from kubernetes.config.incluster_config import InClusterConfigLoader

        configuration = client.Configuration()
        InClusterConfigLoader(
            token_filename=str(SERVICE_ACCOUNT_DIR / "token"),
            cert_filename=str(SERVICE_ACCOUNT_DIR / "ca.crt"),
            environ=self.env,
        ).load_and_set(configuration)
        return client.ApiClient(configuration)

    def kubeconfig(self, name: str) -> dict[str, Any]:
        """The kubeconfig document of a cluster, restricted to its context."""
        cluster = self.get(name)
        if name in self._files:
            return self._files[name][1]
        if cluster.source == IN_CLUSTER:
            raise CommandError("the in-cluster cluster has no kubeconfig")
        row = self.database.db["_clusters"].get(name)
        data, _ = parse_kubeconfig(
            self.secrets.open(row["kubeconfig"]), source=name, untrusted=True
        )
        return data

    # -- uploads -----------------------------------------------------------------------
    def add(self, name: str, kubeconfig_text: str, *, by: str) -> Cluster:
        """Check and store an uploaded kubeconfig, encrypted. Nothing is stored on error.

        What is stored is the one context chosen, built from the entries the check read,
        and checked again as it will be read back at every start."""
        if not name or not name.replace("-", "").replace("_", "").isalnum() or len(name) > 63:
            raise UsageError(f"cluster name {name!r}: letters, digits, - and _ (at most 63)")
        self._refuse_taken(name)
        source = "the uploaded kubeconfig"
        data, contexts = parse_kubeconfig(kubeconfig_text, source=source, untrusted=True)
        if len(contexts) > 1 and not data.get("current-context"):
            names = ", ".join(c.name for c in contexts)
            raise UsageError(
                f"the uploaded kubeconfig has several contexts ({names}) and no "
                "current-context: upload one context"
            )
        chosen = next((c for c in contexts if c.name == data.get("current-context")), contexts[0])
        stored = json.dumps(restrict(data, chosen, source))
        _, (checked,) = parse_kubeconfig(stored, source=source, untrusted=True)
        if checked != chosen:  # cannot happen: the kept entries are the ones checked
            raise UsageError(f"{source}: its context {chosen.name!r} could not be kept as read")
        try:
            with self.database.transaction():
                self.database.db["_clusters"].insert(
                    {
                        "name": name,
                        "kubeconfig": self.secrets.seal(stored),
                        "added_by": by,
                        "added_at": time.time(),
                    }
                )
        except sqlite3.IntegrityError:  # stored meanwhile (another process)
            raise UsageError(
                f"a cluster named {name!r} is already stored; remove it first "
                f"(/cluster remove {name}) or choose another name"
            ) from None
        cluster = Cluster(name, chosen.server, chosen.namespace, f"uploaded by {by}", chosen.name)
        self._clusters[name] = cluster
        return cluster

    def _refuse_taken(self, name: str) -> None:
        if name in self._clusters:
            raise UsageError(f"a cluster named {name!r} exists ({self._clusters[name].source})")
        if self._stored(name):
            prefix = f"uploaded cluster {name}: "
            problem = next((p for p in self.problems if p.startswith(prefix)), None)
            state = (
                "is already stored"
                if problem is None
                else f"is stored but cannot be used ({problem[len(prefix) :]})"
            )
            raise UsageError(
                f"a cluster named {name!r} {state}; remove it first "
                f"(/cluster remove {name}) or choose another name"
            )

    def _stored(self, name: str) -> bool:
        return (
            self.database.conn.execute("SELECT 1 FROM _clusters WHERE name = ?", (name,)).fetchone()
            is not None
        )

    def remove(self, name: str) -> None:
        """Forget an uploaded cluster, also one stored that can no longer be read."""
        cluster = self._clusters.get(name)
        if cluster is None and self._stored(name):
            with self.database.transaction():
                self.database.db["_clusters"].delete(name)
            prefix = f"uploaded cluster {name}: "
            self.problems = [p for p in self.problems if not p.startswith(prefix)]
            return
        cluster = self.get(name)
        if not cluster.source.startswith("uploaded"):
            raise CommandError(f"cluster {name!r} comes from {cluster.source}; remove it there")
        with self.database.transaction():
            self.database.db["_clusters"].delete(name)
        del self._clusters[name]

    # -- per-user defaults ----------------------------------------------------------------
    def set_default(self, user: str, cluster: str, namespace: str | None = None) -> None:
        chosen = self.get(cluster)
        self.database.kv_set(
            "cluster-defaults",
            user,
            {"cluster": chosen.name, "namespace": namespace or chosen.namespace},
        )

    def default_for(self, user: str | None) -> tuple[str | None, str | None]:
        """The cluster and namespace for a call that names none: ``user``'s ``/cluster use``
        choice, else the only cluster; ``(None, None)`` when there are several and no
        choice. ``user`` is ``None`` for work no person started (a scheduled job, a hook):
        only the only-cluster rule applies."""
        saved = self.database.kv_get("cluster-defaults", user) if user is not None else None
        if saved and saved["cluster"] in self._clusters:
            return saved["cluster"], saved["namespace"]
        clusters = self.list()
        if len(clusters) == 1:
            return clusters[0].name, clusters[0].namespace
        return None, None

    def target(
        self, cluster: str | None, namespace: str | None, *, user: str | None
    ) -> tuple[str, str]:
        """The one rule for "which cluster and namespace" (every caller resolves through
        it): ``cluster`` as given, else :meth:`default_for` ``user``; the namespace as
        given, else the user's chosen one for their default cluster, else the cluster's.
        Several clusters and none chosen: a :class:`UsageError` listing them."""
        default_cluster, default_namespace = self.default_for(user)
        name = cluster or default_cluster
        if name is None:
            names = ", ".join(c.name for c in self.list()) or "none"
            raise UsageError(f"which cluster? give cluster: (clusters: {names}) or /cluster use")
        chosen = self.get(name)
        if namespace:
            return chosen.name, namespace
        if name == default_cluster and default_namespace:
            return chosen.name, default_namespace
        return chosen.name, chosen.namespace


class ClusterAdmin:
    """The :class:`clustercord_sdk.services.ClusterAdmin` a ``cluster-registry`` plugin gets."""

    def __init__(self, registry: Callable[[], ClusterRegistry]) -> None:
        self._registry = registry

    def list(self) -> list[dict[str, Any]]:
        return [
            {"name": c.name, "server": c.server, "namespace": c.namespace, "source": c.source}
            for c in self._registry().list()
        ]

    def add(self, name: str, kubeconfig: str, *, by: str) -> dict[str, Any]:
        cluster = self._registry().add(name, kubeconfig, by=by)
        return {
            "name": cluster.name,
            "server": cluster.server,
            "namespace": cluster.namespace,
            "source": cluster.source,
        }

    def remove(self, name: str) -> None:
        self._registry().remove(name)

    def use(self, user: str, cluster: str, namespace: str | None = None) -> None:
        self._registry().set_default(user, cluster, namespace)

    def defaults(self, user: str) -> tuple[str | None, str | None]:
        return self._registry().default_for(user)

    def problems(self) -> list[str]:
        return list(self._registry().problems)
