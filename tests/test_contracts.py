"""Project contracts: documented hooks, the SDK boundary, packaging."""

from __future__ import annotations

import ast
import inspect
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from clustercord_sdk import hookspecs

ROOT = Path(__file__).resolve().parent.parent
KEY_BLOCK = re.compile(
    rb"-----BEGIN [A-Z ]*PRIVATE KEY( BLOCK)?-----\r?\n(\S+: .*\n)*\s*[A-Za-z0-9+/]{40}"
)
HOOKS = sorted(n for n in dir(hookspecs) if hasattr(getattr(hookspecs, n), "clustercord_spec"))


def test_every_hook_has_a_docstring():
    assert HOOKS, "no hooks found"
    for name in HOOKS:
        assert inspect.getdoc(getattr(hookspecs, name)), f"hook {name} has no docstring"


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_is_in_the_readme_hooks_reference(hook):
    readme = (ROOT / "README.md").read_text("utf-8")
    reference = readme.split("## Hooks reference", 1)[1]
    heading = re.search(rf"^### `{hook}\((.*)\)`$", reference, re.M)
    assert heading, f"README's hooks reference has no '### `{hook}(...)`' heading"
    documented = [a.strip() for a in heading.group(1).split(",") if a.strip()]
    assert documented == list(inspect.signature(getattr(hookspecs, hook)).parameters)
    section = reference[heading.end() :].split("\n### ", 1)[0]
    assert "```python" in section and "@hookimpl" in section, f"{hook} has no example"


def test_every_handler_convention_is_documented_and_is_not_a_hook():
    """Command handlers, component actions and job handlers are described in hookspecs.py
    and README like hooks, but pluggy must never see them as hookspecs."""
    readme = (ROOT / "README.md").read_text("utf-8").split("## Hooks reference", 1)[1]
    assert hookspecs.HANDLER_CONVENTIONS
    for convention in hookspecs.HANDLER_CONVENTIONS:
        name = convention.__name__
        assert inspect.getdoc(convention), f"{name} has no docstring"
        assert not hasattr(convention, "clustercord_spec"), f"{name} is registered as a hook"
        assert name not in HOOKS
        heading = re.search(rf"^### `{name}\((.*)\)`$", readme, re.M)
        assert heading, f"README's hooks reference has no '### `{name}(...)`' heading"
        documented = [a.strip() for a in heading.group(1).split(",") if a.strip()]
        assert documented == list(inspect.signature(convention).parameters)


# -- what each member may import ------------------------------------------------------------
# Imports only go down: testing → kernel, sandbox → sdk; kernel → sdk; builtin plugins and
# examples → sdk; the SDK imports nothing of ours. Each entry: the member's package folder,
# the packages of ours it may import (its own included), and per file extra allowances.
MEMBERS = {
    "sdk": ("sdk/src/clustercord_sdk", {"clustercord_sdk"}, {}),
    "kernel": (
        "kernel/src/clustercord",
        {"clustercord", "clustercord_sdk"},
        # The kernel reaches the sandbox only behind its `clustercord sandbox` command.
        {"cli.py": {"clustercord_sandbox", "clustercord_marketplace"}},
    ),
    "builtin_plugins": (
        "builtin_plugins/src/clustercord_builtins",
        {"clustercord_builtins", "clustercord_sdk"},
        {},
    ),
    "sandbox": ("sandbox/src/clustercord_sandbox", {"clustercord_sandbox", "clustercord_sdk"}, {}),
    "testing": (
        "testing/src/clustercord_testing",
        {"clustercord_testing", "clustercord", "clustercord_sandbox", "clustercord_sdk"},
        {},
    ),
    "marketplace": (
        "marketplace/src/clustercord_marketplace",
        {"clustercord_marketplace", "clustercord", "clustercord_sdk"},
        {},
    ),
    "examples/hello-plugin": (
        "examples/hello-plugin/src/clustercord_hello",
        {"clustercord_hello", "clustercord_sdk"},
        {},
    ),
    # A plugin's own tests see what a third-party plugin's would: the SDK and the testing kit
    # (which reaches the kernel for them), never the kernel itself.
    "builtin_plugins/tests": (
        "builtin_plugins/tests",
        {"clustercord_builtins", "clustercord_sdk", "clustercord_testing"},
        {},
    ),
    "examples/minecraft": (
        "examples/minecraft/src/clustercord_minecraft",
        {"clustercord_minecraft", "clustercord_sdk"},
        {},
    ),
    "examples/minecraft/tests": (
        "examples/minecraft/tests",
        {"clustercord_sdk", "clustercord_testing"},
        {},
    ),
    "examples/hello-plugin/tests": (
        "examples/hello-plugin/tests",
        {"clustercord_hello", "clustercord_sdk", "clustercord_testing"},
        {},
    ),
}


def _ours(name: str) -> bool:
    top = name.split(".", 1)[0]
    return top == "clustercord" or top.startswith("clustercord_")


def _absolute_imports(tree: ast.AST) -> list[tuple[int, str]]:
    """Every absolute ``import``/``from`` anywhere in a module (inside functions and under
    ``TYPE_CHECKING`` too): ``(line, module name)``."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


@pytest.mark.parametrize("member", MEMBERS)
def test_member_imports_only_what_is_below_it(member):
    folder, allowed, per_file = MEMBERS[member]
    package = ROOT / folder
    files = sorted(package.rglob("*.py"))
    assert files, f"no Python files in {folder}"
    offenders = []
    for path in files:
        relative = path.relative_to(package).as_posix()
        may = allowed | per_file.get(relative, set())
        for line, name in _absolute_imports(ast.parse(path.read_text("utf-8"))):
            if _ours(name) and name.split(".", 1)[0] not in may:
                offenders.append(f"{path.relative_to(ROOT)}:{line}: imports {name}")
    assert not offenders, f"{member} may import only {sorted(allowed)}:\n" + "\n".join(offenders)


# -- no import cycle between our modules --------------------------------------------------
SOURCES = [ROOT / folder for folder, _, _ in MEMBERS.values()]


def _modules() -> dict[str, tuple[Path, bool]]:
    """Every module of our packages: dotted name → (file, is a package's ``__init__``)."""
    modules = {}
    for package in SOURCES:
        for path in package.rglob("*.py"):
            parts = list(path.relative_to(package.parent).with_suffix("").parts)
            is_package = parts[-1] == "__init__"
            if is_package:
                parts.pop()
            modules[".".join(parts)] = (path, is_package)
    return modules


def import_graph() -> dict[str, set[str]]:
    """Module → the modules of ours it imports, wherever the import statement is (top
    level, inside a function, under ``TYPE_CHECKING``). ``from a import b`` counts as an
    import of the module ``a.b`` when there is one, else of ``a``. The implicit import of
    the packages above a module (``a/__init__`` for ``a.b``) is not counted: a package's
    ``__init__`` that re-exports its submodules would otherwise always close a circle."""
    modules = _modules()

    def known(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for module, (path, is_package) in modules.items():
        targets = set()
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if isinstance(node, ast.Import):
                targets |= {known(alias.name) for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    here = module.split(".") if is_package else module.split(".")[:-1]
                    here = here[: len(here) - (node.level - 1)]
                    base = ".".join(here + ([node.module] if node.module else []))
                for alias in node.names:
                    full = f"{base}.{alias.name}"
                    targets.add(full if full in modules else known(base))
        graph[module] = {t for t in targets if t is not None and t != module}
    return graph


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components with more than one module (iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, successors = work[-1]
            for successor in successors:
                if successor not in index:
                    index[successor] = low[successor] = len(index)
                    stack.append(successor)
                    on_stack.add(successor)
                    work.append((successor, iter(sorted(graph[successor]))))
                    break
                if successor in on_stack:
                    low[node] = min(low[node], index[successor])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
    return found


def shortest_cycle(graph: dict[str, set[str]], component: list[str]) -> list[str]:
    """The shortest way from the component's first module back to itself: ``[a, b, a]``."""
    start, inside = component[0], set(component)
    came_from: dict[str, str] = {}
    queue = [start]
    while queue:
        node = queue.pop(0)
        for successor in sorted(graph[node] & inside):
            if successor == start:
                chain = [node]
                while chain[-1] != start:
                    chain.append(came_from[chain[-1]])
                return [*reversed(chain), start]
            if successor not in came_from:
                came_from[successor] = node
                queue.append(successor)
    raise AssertionError(f"{component} is not a cycle")


def test_the_cycle_finder_reports_a_readable_chain():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"e"}}
    assert strongly_connected(graph) == [["a", "b", "c"]]
    assert shortest_cycle(graph, ["a", "b", "c"]) == ["a", "b", "c", "a"]


def test_no_import_cycle_between_our_modules():
    graph = import_graph()
    assert "clustercord_sdk.context" in graph and "clustercord.kernel" in graph
    cycles = [
        " → ".join(shortest_cycle(graph, component))
        + (f"  (all of: {', '.join(component)})" if len(component) > 2 else "")
        for component in strongly_connected(graph)
    ]
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_no_private_key_in_the_tree():
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True)
    if tracked.returncode != 0:
        pytest.skip("not a git checkout")
    for name in tracked.stdout.split():
        path = ROOT / name
        if path.is_file():
            # An armored key block with a body, not code that merely names the marker.
            assert not KEY_BLOCK.search(path.read_bytes()), name


@pytest.mark.slow
def test_wheels_install_into_a_clean_venv_and_run(tmp_path):
    """Each distribution builds a wheel; installed without the source tree, it runs."""
    if os.environ.get("CLUSTERCORD_SKIP_WHEEL_TEST"):
        pytest.skip("CLUSTERCORD_SKIP_WHEEL_TEST is set")
    pytest.importorskip("hatchling")
    wheels = tmp_path / "wheels"
    for member in (
        "sdk",
        "kernel",
        "builtin_plugins",
        "sandbox",
        "testing",
        "marketplace",
        "examples/hello-plugin",
    ):
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "wheel",
                "--no-deps",
                "--no-build-isolation",
                "-q",
                "-w",
                str(wheels),
                str(ROOT / member),
            ],
            check=True,
        )
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    # Our distributions are the wheel files named here; third-party ones come from the index.
    subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "-q",
            "--disable-pip-version-check",
            *map(str, sorted(wheels.glob("*.whl"))),
        ],
        check=True,
    )
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["CLUSTERCORD_DATA_DIR"] = str(tmp_path / "data")
    cli = venv / "bin" / "clustercord"
    where = subprocess.run(
        [
            str(python),
            "-c",
            "import clustercord, clustercord_builtins, clustercord_sandbox, clustercord_sdk, "
            "clustercord_testing, clustercord_testing.fixtures; print(clustercord.__file__, "
            "clustercord_builtins.__file__, clustercord_sandbox.__file__, "
            "clustercord_sdk.__file__, clustercord_testing.__file__)",
        ],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    assert str(ROOT) not in where.stdout, f"imported from the source tree: {where.stdout}"
    assert where.stdout.count("site-packages") == 5, where.stdout
    # The kernel reaches the installed sandbox behind its command line.
    sandbox_help = subprocess.run(
        [str(cli), "sandbox", "--help"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "--fixture" in sandbox_help.stdout, sandbox_help.stdout
    subprocess.run([str(cli), "keys", "dev-setup", "--quiet"], env=env, check=True, cwd=tmp_path)
    listed = subprocess.run(
        [str(cli), "plugins", "list", "--json"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    states = {p["name"]: p["state"] for p in json.loads(listed.stdout)["plugins"]}
    assert states == {
        "approvals": "enabled",
        "audit": "enabled",
        "chaos": "enabled",
        "cluster": "enabled",
        "help": "enabled",
        "plugins": "enabled",
        "rbac": "enabled",
        "sso": "enabled",
        "templates": "enabled",
        "terminal": "enabled",
        "hello": "refused",
    }, listed.stdout  # the example is not signed yet
    assert str(ROOT) not in listed.stdout

    # The quick start's third-party flow: a publisher's key signs the installed plugin,
    # the installation trusts that key, and the plugin runs.
    def cli_run(*args: str) -> str:
        done = subprocess.run(
            [str(cli), *args], env=env, cwd=tmp_path, capture_output=True, text=True, check=True
        )
        return done.stdout

    fingerprint = cli_run("keys", "create", "--name", "Hello publisher", "--trust").strip()
    folder = subprocess.run(
        [
            str(python),
            "-c",
            "import importlib.util as u; "
            "print(u.find_spec('clustercord_hello').submodule_search_locations[0])",
        ],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    cli_run("keys", "sign", folder, "--key", fingerprint)
    assert "greeting #1" in cli_run("run", "/hello name:wheel")


def test_the_kernels_builtin_list_is_what_the_builtins_distribution_ships():
    import tomllib

    from clustercord.plugins.discovery import BUILTIN_PLUGINS

    project = tomllib.loads((ROOT / "builtin_plugins" / "pyproject.toml").read_text("utf-8"))
    shipped = set(project["project"]["entry-points"]["clustercord.plugins"])
    assert shipped == set(BUILTIN_PLUGINS)
