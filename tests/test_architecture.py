"""Dependencies point one way: encoders <- envs <- techniques <- experiments (README.md, "How it works")."""

from __future__ import annotations

import ast

import pytest

from tests.conftest import REPO_ROOT

LAYERS = ["encoders", "envs", "techniques", "experiments"]


def _imported_packages(path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("layer", LAYERS)
def test_no_upward_imports(layer):
    forbidden = set(LAYERS[LAYERS.index(layer) + 1 :])
    offenders = {
        str(path.relative_to(REPO_ROOT)): sorted(_imported_packages(path) & forbidden)
        for path in sorted((REPO_ROOT / layer).rglob("*.py"))
    }
    offenders = {k: v for k, v in offenders.items() if v}
    assert not offenders, f"{layer}/ must not import {sorted(forbidden)}: {offenders}"


def test_no_torchvision_anywhere():
    users = [
        str(p.relative_to(REPO_ROOT))
        for layer in [*LAYERS, "benchmarks", "tests"]
        for p in (REPO_ROOT / layer).rglob("*.py")
        if "torchvision" in _imported_packages(p)
    ]
    assert not users, f"torchvision is not a dependency (it drags in a CUDA torch on CPU machines): {users}"
