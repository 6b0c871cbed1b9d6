"""A verified plugin runs its signed source and nothing else (plugins/loader.py).

Each attack is first shown to work against Python's own import system, so the test
proves the loader is what stops it.
"""

from __future__ import annotations

import importlib.util
import os
import py_compile
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from clustercord.plugins.loader import UnsignedCode, VerifiedImports
from clustercord.signing import plugin_files

REAL = "def answer():\n    return 'signed source'  # the code the signature covers\n"
EVIL = "def answer():\n    return 'planted bytecode'\n"


@pytest.fixture
def imports() -> Iterator[VerifiedImports]:
    finder = VerifiedImports().install()
    names = set(sys.modules)
    yield finder
    finder.uninstall()
    for name in set(sys.modules) - names:
        del sys.modules[name]


def plugin(root: Path, **modules: str) -> tuple[str, Path]:
    """A package folder with ``modules`` (name → source), under a unique package name."""
    name = f"verified_{uuid.uuid4().hex[:8]}"
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "__init__.py").write_text("from . import commands  # noqa\n")
    for module, source in modules.items():
        (folder / f"{module}.py").write_text(textwrap.dedent(source))
    return name, folder


def plant_bytecode(source: Path, evil: str) -> None:
    """A ``__pycache__`` entry of ``evil`` code whose header matches ``source``'s
    modification time and size: Python's loader trusts it and never reads the source."""
    size = source.stat().st_size
    assert len(evil) < size
    forged = source.with_name("forged.py")
    forged.write_text(evil.rstrip("\n").ljust(size - 1) + "\n")  # same size, as the header says
    stat = source.stat()
    os.utime(forged, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    py_compile.compile(str(forged), cfile=importlib.util.cache_from_source(str(source)))
    forged.unlink()


def plain_import(name: str, folder: Path):
    spec = importlib.util.spec_from_file_location(
        name, folder / "__init__.py", submodule_search_locations=[str(folder)]
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def test_planted_bytecode_is_never_run(tmp_path, imports):
    name, folder = plugin(tmp_path / "a", commands=REAL)
    plant_bytecode(folder / "commands.py", EVIL)
    signed = plugin_files(folder)
    assert "__pycache__" not in " ".join(signed)  # caches are not part of a signature

    # Python's own loader runs the planted cache: the attack is real ...
    other = f"{name}_plain"
    folder.rename(tmp_path / other)
    assert plain_import(other, tmp_path / other).commands.answer() == "planted bytecode"
    (tmp_path / other).rename(folder)

    # ... and the kernel's runs the signed source.
    module = imports.import_package(name, folder, signed)
    assert module.commands.answer() == "signed source"


def test_a_file_changed_after_verification_is_not_run(tmp_path, imports):
    name, folder = plugin(
        tmp_path,
        commands="def later():\n    from . import helper\n    return helper.VALUE\n",
        helper="VALUE = 'signed'\n",
    )
    module = imports.import_package(name, folder, plugin_files(folder))
    (folder / "helper.py").write_text("VALUE = 'swapped'\n")
    with pytest.raises(UnsignedCode, match=r"plugin file helper\.py changed after"):
        module.commands.later()
    assert f"{name}.helper" not in sys.modules


@pytest.mark.parametrize("kind", ["sourceless bytecode", "file added after signing"])
def test_a_module_without_signed_source_cannot_be_imported(tmp_path, imports, kind):
    name, folder = plugin(tmp_path, commands="def extra():\n    from . import extra\n")
    signed = plugin_files(folder)
    if kind == "sourceless bytecode":
        source = tmp_path / "extra.py"
        source.write_text("RAN = True\n")
        py_compile.compile(str(source), cfile=str(folder / "extra.pyc"))
    else:
        (folder / "extra.py").write_text("RAN = True\n")
    module = imports.import_package(name, folder, signed)
    with pytest.raises(UnsignedCode, match="no signed source file"):
        module.commands.extra()


def test_an_unsigned_parent_package_never_runs(tmp_path, imports):
    parent = f"acme_{uuid.uuid4().hex[:8]}"
    root = tmp_path / parent
    root.mkdir()
    marker = tmp_path / "parent-ran"
    (root / "__init__.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    folder = root / "hello"
    folder.mkdir()
    (folder / "__init__.py").write_text(f"from {parent}.hello import commands  # noqa\n")
    (folder / "commands.py").write_text(REAL)
    sys.path.insert(0, str(tmp_path))
    try:
        module = imports.import_package(f"{parent}.hello", folder, plugin_files(folder))
    finally:
        sys.path.remove(str(tmp_path))
    assert module.commands.answer() == "signed source"
    assert not marker.exists(), "the parent package's unsigned __init__.py ran"


def test_other_copies_of_a_package_are_left_to_python(tmp_path, imports):
    """A module of the same name imported from another folder (a test importing the
    installed plugin directly) is not the kernel's business."""
    name, folder = plugin(tmp_path / "verified", commands=REAL)
    imports.import_package(name, folder, plugin_files(folder))
    assert imports.find_spec(f"{name}.commands", [str(tmp_path / "elsewhere")]) is None
    assert imports.find_spec("json.decoder", None) is None
