"""The subject → binding → role → resources graph, and its drawings: text tree, DOT, Mermaid.

One :class:`Graph` serves every drawing, so the PNG in Discord, the SVG export and the Mermaid
block in Markdown always show the same nodes. Rendering to SVG and PNG uses Graphviz's
``dot`` binary; without it the caller gets a clear error (and DOT still works).
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass, field

from clustercord_sdk.errors import CommandError
from clustercord_sdk.rbac import Binding, PolicyRule, RBACSnapshot, ResolvedRole

from .audit import is_builtin
from .questions import CRUD, READ
from .subjects import Subject, subject_key, subject_label

ICONS = {"User": "👤", "Group": "👥", "ServiceAccount": "🤖"}
MAX_BINDINGS = 400  # beyond this a drawing is unreadable: the caller is told, and exports JSON


def verbs_label(verbs: Iterable[str]) -> str:
    """``CRUD``, ``Read`` or the verbs, as the spec's graphs show them."""
    held = set(verbs)
    if "*" in held or held >= set(CRUD):
        return "CRUD" if "*" not in held else "all verbs"
    if held >= set(READ) and not held - {"get", "list", "watch"}:
        return "Read"
    return ", ".join(sorted(held))


def resource_lines(rules: Iterable[PolicyRule]) -> dict[str, str]:
    """``{"pods": "Read", "deployments.apps": "CRUD", "/metrics": "get"}`` for a role."""
    verbs: dict[str, set[str]] = {}
    for rule in rules:
        for group in rule.api_groups or ("",):
            for resource in rule.resources:
                name = resource if group in ("", "*") else f"{resource}.{group}"
                if group == "*" and resource != "*":
                    name = f"{resource}.*"
                if rule.resource_names:
                    name += f" [{', '.join(rule.resource_names)}]"
                verbs.setdefault(name, set()).update(rule.verbs)
        for url in rule.non_resource_urls:
            verbs.setdefault(url, set()).update(rule.verbs)
    return {name: verbs_label(v) for name, v in sorted(verbs.items())}


@dataclass
class Node:
    id: str
    kind: str  # subject | binding | role | resource
    label: str
    detail: str = ""


@dataclass
class Graph:
    title: str
    nodes: dict[str, Node] = field(default_factory=dict)
    edges: list[tuple[str, str]] = field(default_factory=list)
    truncated: int = 0

    def add(self, node: Node) -> str:
        self.nodes.setdefault(node.id, node)
        return node.id

    def link(self, a: str, b: str) -> None:
        if (a, b) not in self._edge_set:
            self._edge_set.add((a, b))
            self.edges.append((a, b))

    def __post_init__(self) -> None:
        self._edge_set: set[tuple[str, str]] = set()

    def children(self, node: str) -> list[str]:
        return [b for a, b in self.edges if a == node]

    def roots(self) -> list[str]:
        return [n.id for n in self.nodes.values() if n.kind == "subject"]

    def to_dict(self) -> dict[str, object]:
        return {
            "title": self.title,
            "nodes": [vars(n) for n in self.nodes.values()],
            "edges": [{"from": a, "to": b} for a, b in self.edges],
            "truncated_bindings": self.truncated,
        }


def build_graph(
    title: str,
    bindings: Iterable[Binding],
    *,
    only_subject: tuple[str, str, str] | None = None,
    include_system: bool = False,
) -> Graph:
    graph = Graph(title)
    count = 0
    for binding in bindings:
        if not include_system and is_builtin(binding):
            continue
        subjects = [
            s for s in binding.subjects if only_subject is None or subject_key(s) == only_subject
        ]
        if only_subject is not None and not subjects:
            subjects = [s for s in binding.subjects if s["kind"] == "Group"]  # via a group
        if not subjects:
            continue
        count += 1
        if count > MAX_BINDINGS:
            graph.truncated += 1
            continue
        bid = graph.add(
            Node(f"b:{binding.kind}:{binding.namespace}:{binding.name}", "binding",
                 f"{binding.kind}: {binding.name}", binding.namespace or "cluster-wide")
        )  # fmt: skip
        for subject in subjects:
            sid = graph.add(
                Node("s:" + ":".join(subject_key(subject)), "subject",
                     f"{ICONS.get(subject['kind'], '')} {subject_label(subject)}".strip())
            )  # fmt: skip
            graph.link(sid, bid)
        role = binding.role
        rid = graph.add(_role_node(binding, role))
        graph.link(bid, rid)
        if role is not None:
            for resource, verbs in resource_lines(role.rules).items():
                graph.link(
                    rid, graph.add(Node(f"{rid}|{resource}", "resource", f"{resource}: {verbs}"))
                )
    return graph


def _role_node(binding: Binding, role: ResolvedRole | None) -> Node:
    where = f"{binding.namespace}/" if binding.role_kind == "Role" else ""
    rid = f"r:{binding.role_kind}:{where}{binding.role_name}"
    if role is None:
        return Node(rid, "role", f"{binding.role_kind}: {binding.role_name} (missing)", "missing")
    return Node(rid, "role", f"{binding.role_kind}: {binding.role_name}")


def graph_for_scope(
    snapshot: RBACSnapshot,
    cluster: str,
    *,
    namespace: str | None = None,
    subject: Subject | None = None,
    include_system: bool = False,
) -> Graph:
    """The graph of a namespace's RoleBindings, one subject's bindings, or the cluster."""
    if subject is not None:
        bindings = snapshot.bindings_everywhere(subject.user)
        return build_graph(
            f"{subject.label} on {cluster}",
            bindings,
            only_subject=subject_key(subject.subject),
            include_system=True,
        )
    if namespace:
        bindings = [b for b in snapshot.role_bindings if b.namespace == namespace]
        return build_graph(f"namespace {namespace} on {cluster}", bindings, include_system=True)
    return build_graph(f"cluster {cluster}", snapshot.bindings, include_system=include_system)


# --- drawings -------------------------------------------------------------------------------


def to_tree(graph: Graph) -> str:
    """The spec's text tree: subject, then └─ binding, role, resources."""
    lines: list[str] = []
    for root in graph.roots():
        lines.append(graph.nodes[root].label)
        _tree(graph, root, "", lines)
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def _tree(graph: Graph, node: str, prefix: str, lines: list[str]) -> None:
    children = graph.children(node)
    for i, child in enumerate(children):
        last = i == len(children) - 1
        lines.append(f"{prefix}{'└─' if last else '├─'} {graph.nodes[child].label}")
        _tree(graph, child, prefix + ("   " if last else "│  "), lines)


_DOT_STYLE = {
    "subject": 'shape=box, style="rounded,filled", fillcolor="#dbeafe"',
    "binding": 'shape=box, style=filled, fillcolor="#fef3c7"',
    "role": 'shape=box, style=filled, fillcolor="#dcfce7"',
    "resource": 'shape=note, style=filled, fillcolor="#f3f4f6"',
}


def _dot_quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def dot_ids(graph: Graph) -> dict[str, str]:
    """The short ids DOT and Mermaid give the nodes (``n0``, ``n1``…); the web view maps
    Graphviz's SVG back to the graph with them."""
    return {node: f"n{i}" for i, node in enumerate(graph.nodes)}


def to_dot(graph: Graph) -> str:
    """Graphviz DOT, left to right like the spec's diagram."""
    ids = dot_ids(graph)
    out = [
        "digraph rbac {",
        "  rankdir=LR;",
        f"  label={_dot_quote(graph.title)}; labelloc=t; fontname=Helvetica;",
        "  node [fontname=Helvetica, fontsize=10];",
    ]
    for node_id, node in graph.nodes.items():
        label = node.label if not node.detail else f"{node.label}\n{node.detail}"
        style = _DOT_STYLE[node.kind]
        if node.detail == "missing":
            style = 'shape=box, style="filled,dashed", fillcolor="#fee2e2"'
        out.append(f"  {ids[node_id]} [label={_dot_quote(label)}, {style}];")
    out.extend(f"  {ids[a]} -> {ids[b]};" for a, b in graph.edges)
    out.append("}")
    return "\n".join(out) + "\n"


def _mermaid_text(text: str) -> str:
    return '"' + text.replace('"', "#quot;") + '"'


def to_mermaid(graph: Graph) -> str:
    ids = dot_ids(graph)
    out = ["graph LR"]
    for node_id, node in graph.nodes.items():
        label = node.label if not node.detail else f"{node.label}<br/>{node.detail}"
        shape = ("([", "])") if node.kind == "subject" else ("[", "]")
        out.append(f"    {ids[node_id]}{shape[0]}{_mermaid_text(label)}{shape[1]}")
    out.extend(f"    {ids[a]} --> {ids[b]}" for a, b in graph.edges)
    return "\n".join(out) + "\n"


def dot_binary() -> str | None:
    return shutil.which("dot")


def render(dot: str, fmt: str, timeout: float = 60.0) -> bytes:
    """DOT → ``svg`` or ``png`` with Graphviz; a clear error when it is not installed."""
    binary = dot_binary()
    if binary is None:
        raise CommandError(
            "Graphviz is not installed (the 'dot' program) on the machine running ClusterCord: "
            "install it to draw PNG, SVG and the HTML view (Debian/Ubuntu: apt-get install "
            "graphviz; Fedora: dnf install graphviz; macOS: brew install graphviz); "
            "format:dot and format:mermaid work without it"
        )
    result = subprocess.run(
        [binary, f"-T{fmt}"], input=dot.encode(), capture_output=True, timeout=timeout
    )
    if result.returncode != 0:
        raise CommandError(f"Graphviz failed: {result.stderr.decode(errors='replace')[:300]}")
    return result.stdout
