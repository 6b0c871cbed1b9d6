"""The subject → binding → role → access graph, and its drawings: text tree, DOT, Mermaid.

One :class:`Graph` serves every drawing, so the PNG in Discord, the SVG export and the Mermaid
block in Markdown always show the same nodes. Rendering to SVG and PNG uses Graphviz's
``dot`` binary; without it the caller gets a clear error (and DOT still works).

A role's resources are grouped by the access it gives them: the ``view`` ClusterRole is one
node "Read: 57 resources in 9 API groups" (its ``resources`` listed in the HTML view, the PDF
and the JSON), not 57 leaves in a column nobody can read. A PNG is drawn a page of bindings
at a time (:func:`paginate`) and scaled to :data:`PNG_MAX_INCHES`, so what Discord shows
inline stays about 1,600 px on its long side with an aspect of at most about 3:1.
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
GROUP_INLINE = 3
"""An access node names up to this many resources; beyond, it counts them."""
PAGE_ROWS = 10
"""Nodes in the tallest column of one page of a PNG (subjects, bindings, roles or access):
with four columns side by side, what keeps the picture within about 3:1."""
MAX_ASPECT = 3.0
PNG_MAX_INCHES = 16.0
PNG_DPI = 100
"""16 inches at 100 dpi: a PNG at most 1,600 px on its long side (Graphviz only shrinks)."""


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


def access_groups(rules: Iterable[PolicyRule]) -> dict[str, list[str]]:
    """``{"Read": ["configmaps", "pods", ...], "CRUD": [...]}``: a role's resources grouped
    by the access it gives them (the same summaries as :func:`resource_lines`)."""
    groups: dict[str, list[str]] = {}
    for name, access in resource_lines(rules).items():
        groups.setdefault(access, []).append(name)
    return groups


def api_group(resource: str) -> str:
    """The API group of a :func:`resource_lines` name (``deployments/status.apps``: apps)."""
    if resource.startswith("/"):
        return "non-resource URLs"
    base = resource.split(" [", 1)[0]
    return base.split(".", 1)[1] if "." in base else "core"


def group_label(access: str, resources: list[str]) -> str:
    """``pods: create``; ``CRUD: pods, secrets, services``; ``Read: 57 resources in 9 API
    groups``."""
    if len(resources) == 1:
        return f"{resources[0]}: {access}"
    if len(resources) <= GROUP_INLINE:
        return f"{access}: {', '.join(resources)}"
    groups = len({api_group(r) for r in resources})
    return f"{access}: {len(resources)} resources in {groups} API group{'s' * (groups != 1)}"


@dataclass
class Node:
    id: str
    kind: str  # subject | binding | role | resource (a group of resources with one access)
    label: str
    detail: str = ""
    access: str = ""
    """For a resource group: the verbs held (``Read``, ``CRUD``, ``get, list``...)."""
    resources: list[str] = field(default_factory=list)
    """For a resource group: every resource in it."""


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
            for access, names in access_groups(role.rules).items():
                label = group_label(access, names)
                node = Node(f"{rid}|{access}", "resource", label, access=access, resources=names)
                graph.link(rid, graph.add(node))
    return graph


def subgraph(graph: Graph, bindings: list[str], title: str) -> Graph:
    """The part of ``graph`` around some of its binding nodes: their subjects, roles and
    access groups, with the edges between them."""
    keep = set(bindings)
    for a, b in graph.edges:
        if b in keep and graph.nodes[a].kind == "subject":
            keep.add(a)
    todo = list(bindings)
    while todo:
        for child in graph.children(todo.pop()):
            if child not in keep:
                keep.add(child)
                todo.append(child)
    part = Graph(title)
    for node_id, node in graph.nodes.items():
        if node_id in keep:
            part.add(node)
    for a, b in graph.edges:
        if a in keep and b in keep:
            part.link(a, b)
    return part


def paginate(graph: Graph, rows: int = PAGE_ROWS) -> list[Graph]:
    """``graph`` cut into pages of bindings, each page's tallest column at most ``rows``
    nodes (a binding that alone is taller gets a page of its own)."""
    bindings = [n.id for n in graph.nodes.values() if n.kind == "binding"]
    chunks: list[list[str]] = []
    for binding in bindings:
        if chunks and _tallest(subgraph(graph, [*chunks[-1], binding], "")) <= rows:
            chunks[-1].append(binding)
        else:
            chunks.append([binding])
    if len(chunks) <= 1:
        return [graph]
    return [
        subgraph(graph, chunk, f"{graph.title} (page {i} of {len(chunks)})")
        for i, chunk in enumerate(chunks, start=1)
    ]


def _tallest(graph: Graph) -> int:
    kinds: dict[str, int] = {}
    for node in graph.nodes.values():
        kinds[node.kind] = kinds.get(node.kind, 0) + 1
    return max(kinds.values(), default=0)


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


def to_tree(graph: Graph, *, members: bool = False) -> str:
    """The spec's text tree: subject, then └─ binding, role, access groups; ``members``
    also lists every resource of a group that its label only counts (the text file)."""
    lines: list[str] = []
    for root in graph.roots():
        lines.append(graph.nodes[root].label)
        _tree(graph, root, "", lines, members)
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def _tree(graph: Graph, node: str, prefix: str, lines: list[str], members: bool) -> None:
    children = graph.children(node)
    for i, child in enumerate(children):
        last = i == len(children) - 1
        lines.append(f"{prefix}{'└─' if last else '├─'} {graph.nodes[child].label}")
        inner = prefix + ("   " if last else "│  ")
        resources = graph.nodes[child].resources
        if members and len(resources) > GROUP_INLINE:
            lines.extend(f"{inner}   · {name}" for name in resources)
        _tree(graph, child, inner, lines, members)


_FILL = {"subject": "#dbeafe", "binding": "#fef3c7", "role": "#dcfce7", "resource": "#f3f4f6"}
"""A node's colour by kind, the same in DOT and Mermaid."""
_DOT_SHAPE = {
    "subject": 'shape=box, style="rounded,filled"',
    "binding": "shape=box, style=filled",
    "role": "shape=box, style=filled",
    "resource": "shape=note, style=filled",
}
_DOT_STYLE = {kind: f'{shape}, fillcolor="{_FILL[kind]}"' for kind, shape in _DOT_SHAPE.items()}


def _dot_quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def dot_ids(graph: Graph) -> dict[str, str]:
    """The short ids DOT and Mermaid give the nodes (``n0``, ``n1``…); the web view maps
    Graphviz's SVG back to the graph with them."""
    return {node: f"n{i}" for i, node in enumerate(graph.nodes)}


_LEGEND = (
    ("subject", "Subject (user, group, service account)"),
    ("binding", "Binding"),
    ("role", "Role"),
    ("resource", "Access: verbs and resources"),
)


def to_dot(
    graph: Graph,
    *,
    legend: bool = True,
    max_inches: float | None = None,
    ratio: float | None = None,
) -> str:
    """Graphviz DOT, left to right like the spec's diagram, with a legend of the node
    kinds; ``max_inches`` shrinks the drawing to fit a square of that side (for a PNG),
    ``ratio`` asks for that height/width."""
    ids = dot_ids(graph)
    out = [
        "digraph rbac {",
        "  rankdir=LR;",
        f"  label={_dot_quote(graph.title)}; labelloc=t; fontname=Helvetica;",
        "  node [fontname=Helvetica, fontsize=10];",
    ]
    if max_inches is not None:
        out.append(f'  size="{max_inches:g},{max_inches:g}"; dpi={PNG_DPI};')
    if ratio is not None:
        out.append(f"  ratio={ratio:.3f};")
    if legend:
        out.append('  subgraph cluster_legend { label="Legend"; fontsize=9; style=dashed;')
        out.extend(
            f"    legend_{kind} [label={_dot_quote(text)}, {_DOT_STYLE[kind]}, fontsize=8];"
            for kind, text in _LEGEND
        )
        chain = " -> ".join(f"legend_{kind}" for kind, _ in _LEGEND)
        out += [f"    {chain} [style=dotted, arrowsize=0.5];", "  }"]
    for node_id, node in graph.nodes.items():
        label = _without_icon(node.label)  # Graphviz's fonts draw an emoji as a box
        label = label if not node.detail else f"{label}\n{node.detail}"
        style = _DOT_STYLE[node.kind]
        if node.detail == "missing":
            style = 'shape=box, style="filled,dashed", fillcolor="#fee2e2"'
        out.append(f"  {ids[node_id]} [label={_dot_quote(label)}, {style}];")
    out.extend(f"  {ids[a]} -> {ids[b]};" for a, b in graph.edges)
    out.append("}")
    return "\n".join(out) + "\n"


def _without_icon(label: str) -> str:
    icon, _, rest = label.partition(" ")
    return rest if icon in ICONS.values() else label


def _mermaid_text(text: str) -> str:
    return '"' + text.replace('"', "#quot;") + '"'


def to_mermaid(graph: Graph) -> str:
    """Mermaid, the same nodes and groups as DOT, coloured by kind with the same legend."""
    ids = dot_ids(graph)
    out = ["graph LR"]
    out += [f"    classDef {kind} fill:{fill},stroke:#6b7280" for kind, fill in _FILL.items()]
    for node_id, node in graph.nodes.items():
        label = node.label if not node.detail else f"{node.label}<br/>{node.detail}"
        shape = ("([", "])") if node.kind == "subject" else ("[", "]")
        out.append(f"    {ids[node_id]}{shape[0]}{_mermaid_text(label)}{shape[1]}:::{node.kind}")
    out.extend(f"    {ids[a]} --> {ids[b]}" for a, b in graph.edges)
    out.append('    subgraph legend["Legend"]')
    out += [f"        legend_{kind}[{_mermaid_text(text)}]:::{kind}" for kind, text in _LEGEND]
    out.append("    end")
    return "\n".join(out) + "\n"


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height of a PNG, from its IHDR chunk."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


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
