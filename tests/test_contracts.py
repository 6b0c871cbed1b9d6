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


def test_builtin_plugins_import_only_the_sdk():
    offenders = []
    for path in (ROOT / "builtin_plugins").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            offenders += [
                f"{path.relative_to(ROOT)}: {n}"
                for n in names
                if n == "clustercord" or n.startswith("clustercord.")
            ]
    assert not offenders, offenders


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
    for member in ("sdk", "kernel", "builtin_plugins", "examples/hello-plugin"):
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
            "import clustercord, clustercord_builtins, "
            "clustercord_sdk; print(clustercord.__file__, "
            "clustercord_builtins.__file__, clustercord_sdk.__file__)",
        ],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    assert str(ROOT) not in where.stdout, f"imported from the source tree: {where.stdout}"
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
        "cluster": "enabled",
        "help": "enabled",
        "plugins": "enabled",
        "rbac": "enabled",
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
