"""Import a verified plugin from its signed source files, and from nothing else.

Python's own loaders prefer bytecode: a ``__pycache__/x.cpython-311.pyc`` whose header
matches the source's modification time and size runs *instead of* the source, so a planted
cache would run code that no signature covers. And a plugin's absolute import of its own
package (``from acme_plugins.hello import x``) first imports the parent package
``acme_plugins``, whose ``__init__.py`` lies outside the signed folder.

So the kernel imports plugin packages through :class:`VerifiedImports`:

- every module of a verified package is compiled from its ``.py`` source, never from a
  cache, and only if the source's sha256 is still the one the signature lists (a file
  changed between verification and import is refused, not run);
- a module with no signed source (a sourceless ``.pyc``, an extension module, a file added
  later) cannot be imported from the package;
- parent packages the kernel has not imported yet are given as empty packages: their
  unsigned ``__init__.py`` never runs in the kernel.

Imports of the same names from other folders (a test importing a builtin plugin's module
directly) are left to Python's own finders.
"""

from __future__ import annotations

import hashlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import types
from collections.abc import Mapping, Sequence
from pathlib import Path


class UnsignedCode(ImportError):
    """Code a plugin tried to import that its signature does not cover."""


class SignedSourceLoader(importlib.machinery.SourceFileLoader):
    """Compiles the source file, checked against its signed sha256; never reads or writes
    bytecode caches."""

    def __init__(self, fullname: str, path: str, sha256: str, label: str) -> None:
        super().__init__(fullname, path)
        self.sha256 = sha256
        self.label = label

    def get_code(self, fullname: str) -> types.CodeType:
        source = self.get_data(self.path)
        if hashlib.sha256(source).hexdigest() != self.sha256:
            raise UnsignedCode(f"{self.label} changed after the plugin was verified: not run")
        return self.source_to_code(source, self.path)

    def set_data(self, path: str, data: bytes, *, _mode: int = 0o666) -> None:
        """Writes no bytecode cache: nothing would ever read it."""


class VerifiedImports(importlib.abc.MetaPathFinder):
    """The verified plugin packages (name → folder and signed file hashes) and the finder
    that imports their modules. ``install()`` puts it first on ``sys.meta_path``."""

    def __init__(self) -> None:
        self._packages: dict[str, tuple[Path, Mapping[str, str]]] = {}

    def install(self) -> VerifiedImports:
        if self not in sys.meta_path:
            sys.meta_path.insert(0, self)
        return self

    def uninstall(self) -> None:
        if self in sys.meta_path:
            sys.meta_path.remove(self)

    def import_package(
        self, name: str, folder: Path, signed_files: Mapping[str, str]
    ) -> types.ModuleType:
        """Import package ``name`` from verified ``folder`` (``signed_files``: POSIX path
        relative to it → sha256, as the signature lists them)."""
        self._packages[name] = (folder.resolve(), dict(signed_files))
        self._empty_parents(name)
        spec = self._spec(name, name, ())
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            assert spec.loader is not None
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[name]
            raise
        return module

    @staticmethod
    def loaded(module: types.ModuleType, folder: Path) -> bool:
        """Whether ``module`` is the package of ``folder`` imported by this loader."""
        spec = module.__spec__
        return (
            spec is not None
            and isinstance(spec.loader, SignedSourceLoader)
            and Path(spec.loader.path) == folder.resolve() / "__init__.py"
        )

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: types.ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        root = next((p for p in self._packages if fullname.startswith(p + ".")), None)
        if root is None or path is None:
            return None
        folder = self._packages[root][0]
        parts = tuple(fullname[len(root) + 1 :].split("."))
        # Ours only when the import searches inside the verified folder, i.e. the parent
        # package is the one the kernel imported.
        if folder.joinpath(*parts[:-1]) not in {Path(p).resolve() for p in path}:
            return None
        return self._spec(fullname, root, parts)

    def _spec(
        self, fullname: str, root: str, parts: tuple[str, ...]
    ) -> importlib.machinery.ModuleSpec:
        folder, signed = self._packages[root]
        candidates = [(Path(*parts, "__init__.py"), True)]
        if parts:
            candidates.append((Path(*parts[:-1], f"{parts[-1]}.py"), False))
        for relative, is_package in candidates:
            key = relative.as_posix()
            if key not in signed:
                continue
            path = folder / relative
            loader = SignedSourceLoader(fullname, str(path), signed[key], f"plugin file {key}")
            spec = importlib.util.spec_from_file_location(
                fullname,
                path,
                loader=loader,
                submodule_search_locations=[str(path.parent)] if is_package else None,
            )
            assert spec is not None  # a loader was given
            return spec
        raise UnsignedCode(
            f"{fullname}: no signed source file in the plugin (bytecode, extension modules and "
            "files added after signing are not loaded)",
            name=fullname,
        )

    @staticmethod
    def _empty_parents(name: str) -> None:
        """``a.b`` of plugin ``a.b.c`` as empty packages, unless already imported, so that
        the plugin's absolute imports of itself do not run an unsigned ``__init__.py``."""
        parts = name.split(".")
        for depth in range(1, len(parts)):
            parent = ".".join(parts[:depth])
            if parent not in sys.modules:
                module = types.ModuleType(parent, "(a parent package of a verified plugin)")
                module.__path__ = []  # nothing else is imported from it
                module.__spec__ = importlib.machinery.ModuleSpec(parent, None, is_package=True)
                sys.modules[parent] = module


VERIFIED_IMPORTS = VerifiedImports()
"""The process's one finder: ``sys.meta_path`` is process-wide, so every kernel in the
process (tests start many) shares it; package names are unique per installed folder."""
