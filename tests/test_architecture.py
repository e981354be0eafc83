"""The one allowed direction of imports (docs/architecture.md), checked on the source.

Three layers:

* the shared leaves, ``numlstm.errors`` and ``numlstm.activations``, import nothing of numlstm;
* the backends, ``numlstm.backends.*``, import only each other and the shared leaves;
* everything else is the front-end, which reaches a backend only through the registry and the
  contract -- the ``numlstm.backends`` package and ``numlstm.backends.base`` -- never a backend
  or kernel module, and imports no kernel library (Numba, llvmlite, CuPy) itself.

Every ``import`` statement counts, at module level or inside a function (a lazy import is
still a dependency).
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

PACKAGE_ROOT = Path(__file__).resolve().parent.parent / "numlstm"
SHARED_LEAVES = {"numlstm.errors", "numlstm.activations"}
BACKEND_ENTRY_POINTS = {"numlstm.backends", "numlstm.backends.base"}
KERNEL_LIBRARIES = ("numba", "llvmlite", "cupy", "cupyx")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE_ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_package(path: Path) -> bool:
    return path.name == "__init__.py"


def resolve(name: str) -> str:
    """The numlstm module ``name`` denotes: itself when it is a module or package, else the
    module it is an attribute of (``numlstm.backends.get_backend`` -> ``numlstm.backends``)."""
    while name.count("."):
        relative = Path(*name.split("."))
        if (PACKAGE_ROOT.parent / relative).with_suffix(".py").exists() or \
                (PACKAGE_ROOT.parent / relative / "__init__.py").exists():
            return name
        name = name.rsplit(".", 1)[0]
    return name


def imports_of(path: Path) -> list[tuple[int, str]]:
    """``(line, imported name)`` for every import in the file; numlstm names resolved to
    modules, others (third-party) left as written."""
    name = module_name(path)
    package = name if is_package(path) else name.rsplit(".", 1)[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target == "numlstm" or target.startswith("numlstm."):
                # ``from pkg import name``: a submodule when ``name`` is one, else pkg itself
                found += [(node.lineno, resolve(f"{target}.{alias.name}"))
                          for alias in node.names]
            else:
                found.append((node.lineno, target))
    return found


def layer_of(name: str) -> str:
    if name in SHARED_LEAVES:
        return "leaf"
    if name == "numlstm.backends" or name.startswith("numlstm.backends."):
        return "backend"
    return "front-end"


SOURCES = sorted(PACKAGE_ROOT.rglob("*.py"))


def violations() -> list[str]:
    found = []
    for path in SOURCES:
        importer = module_name(path)
        layer = layer_of(importer)
        for line, imported in imports_of(path):
            where = f"{path.relative_to(PACKAGE_ROOT.parent)}:{line}: {importer} imports " \
                    f"{imported}"
            if imported == importer:
                continue
            if imported.split(".")[0] in KERNEL_LIBRARIES and layer != "backend":
                found.append(f"{where} (a kernel library: only backends may)")
            if not (imported == "numlstm" or imported.startswith("numlstm.")):
                continue
            target = layer_of(imported)
            if layer == "leaf":
                found.append(f"{where} (a shared leaf imports nothing of numlstm)")
            elif layer == "backend" and target == "front-end":
                found.append(f"{where} (a backend must not import the front-end)")
            elif layer == "front-end" and target == "backend" and \
                    imported not in BACKEND_ENTRY_POINTS:
                found.append(f"{where} (the front-end reaches backends only through "
                             f"{sorted(BACKEND_ENTRY_POINTS)})")
    return found


def test_the_sources_were_found():
    names = {module_name(path) for path in SOURCES}
    assert {"numlstm", "numlstm.backends", "numlstm.backends.base", "numlstm.layers.lstm",
            "numlstm.backends.numba_kernels"} <= names


def test_imports_go_one_way_only():
    assert violations() == []


@pytest.mark.parametrize("planted_as, source, expected", [
    ("backends/_planted.py", "from ..layers import LSTM\n",
     "a backend must not import the front-end"),
    ("backends/_planted.py", "from .. import validation\n",
     "a backend must not import the front-end"),
    ("_planted.py", "from .backends import numba_kernels\n", "reaches backends only through"),
    ("_planted.py", "from .backends.cuda_backend import CudaBackend\n",
     "reaches backends only through"),
    ("_planted.py", "import numba\n", "a kernel library"),
    ("activations.py", "from . import validation\n", "a shared leaf imports nothing"),
])
def test_a_planted_violation_is_caught(monkeypatch, planted_as, source, expected):
    """The check itself can fail: a module (a planted one, or a leaf given a new import) that
    breaks a rule is reported."""
    planted = PACKAGE_ROOT / planted_as
    if planted not in SOURCES:
        monkeypatch.setattr(sys.modules[__name__], "SOURCES", SOURCES + [planted])
    real_read = Path.read_text

    def read_text(self, *args, **kwargs):
        return source if self == planted else real_read(self, *args, **kwargs)
    monkeypatch.setattr(Path, "read_text", read_text)
    assert any(expected in violation for violation in violations())
