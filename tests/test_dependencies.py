"""The declared dependencies say the truth: every third-party package a module imports is declared in pyproject.toml
(a dependency or an extra), and every declared dependency is imported somewhere (pins of others' dependencies are
named as such)."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib", reason="reading pyproject.toml needs Python 3.11's tomllib")

ROOT = Path(__file__).resolve().parents[1]
FIRST_PARTY = {"encoders", "envs", "techniques", "experiments", "benchmarks", "tests"}
#: Declared only to pin another package's dependency (see the comments in pyproject.toml).
PINS = {"pandas"}
#: Tools run as commands, never imported.
TOOLS = {"ruff", "pytest-timeout"}
#: Imported from a checkout named on the command line (the official DINOv2 code of the parity benchmark).
CHECKOUTS = {"dinov2"}


def _declared() -> dict[str, str]:
    """``{normalised distribution name: where it is declared}``."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    groups = {"dependencies": project["dependencies"], **project["optional-dependencies"]}
    out = {}
    for group, requirements in groups.items():
        for requirement in requirements:
            name = re.split(r"[<>=!\[; ]", requirement, maxsplit=1)[0]
            out.setdefault(_normalise(name), group)
    return out


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _imports() -> dict[str, set[str]]:
    """``{top-level module imported: files importing it}`` over the project's Python files (tests included)."""
    found: dict[str, set[str]] = {}
    for folder in (*FIRST_PARTY, ".ci"):
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    found.setdefault(name.split(".")[0], set()).add(str(path.relative_to(ROOT)))
            # importlib.import_module("rliable.metrics") and the like
            for match in re.finditer(r'import_module\(f?"([a-zA-Z_][\w]*)', path.read_text()):
                found.setdefault(match.group(1), set()).add(str(path.relative_to(ROOT)))
    return found


def test_every_imported_package_is_declared_and_every_declared_one_is_imported():
    declared = _declared()
    distributions = importlib.metadata.packages_distributions()
    third_party = {
        module: files
        for module, files in _imports().items()
        if module not in FIRST_PARTY | CHECKOUTS and module not in sys.stdlib_module_names and module != "__future__"
    }
    used = set()
    undeclared = {}
    for module, files in third_party.items():
        names = {_normalise(d) for d in distributions.get(module, [module])}
        hit = names & set(declared)
        if not hit:
            undeclared[module] = sorted(files)[:3]
        used |= hit
    assert not undeclared, f"imported but not declared in pyproject.toml: {undeclared}"
    unused = set(declared) - used - {_normalise(p) for p in PINS | TOOLS}
    assert not unused, f"declared in pyproject.toml but never imported: {sorted(unused)}"
