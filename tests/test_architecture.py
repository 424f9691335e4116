"""Dependencies point one way: encoders <- envs <- techniques <- experiments (docs/architecture.md, "Layers").

Each layer may import only the modules of the layers below that it is listed for here: the shared foundation of
``encoders`` (``encoders.utils.*``: files, configs, logging, precision, ...; ``encoders.preprocessing``: image files
and tensors) and the encoder model API (the registry, the backbone, backbone checkpoints). The SSL training and
data pipelines (``encoders.train.*``, ``encoders.data.*``, ...) are for ``experiments`` only, so a new edge such as
``techniques -> encoders.train.checkpointing`` fails here.
"""

from __future__ import annotations

import ast

import pytest

from tests.conftest import REPO_ROOT

LAYERS = ["encoders", "envs", "techniques", "experiments"]

#: The bottom layer's modules every layer above may build on (a name covers its submodules).
FOUNDATION = ("encoders.utils", "encoders.preprocessing")
#: The encoder model API: build a registered backbone, load and save its weights, run it.
MODEL_API = ("encoders", "encoders.registry", "encoders.checkpoint", "encoders.released", "encoders.vision_transformer")

#: layer -> lower-layer modules it may import (a name covers its submodules; "encoders" alone is the package's own
#: ``__init__``, the registry's front door, not the whole tree).
ALLOWED: dict[str, tuple[str, ...]] = {
    "encoders": (),
    "envs": (*FOUNDATION, *MODEL_API),
    "techniques": (*FOUNDATION, *MODEL_API, "envs.*"),
    "experiments": ("encoders.*", "envs.*", "techniques.*"),
}


def _imported_modules(path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _imported_packages(path) -> set[str]:
    return {name.split(".")[0] for name in _imported_modules(path)}


def _allowed(module: str, allowed: tuple[str, ...]) -> bool:
    for entry in allowed:
        if entry.endswith(".*"):
            if module == entry[:-2] or module.startswith(entry[:-1]):
                return True
        elif module == entry or (entry != "encoders" and module.startswith(entry + ".")):
            return True
    return False


@pytest.mark.parametrize("layer", LAYERS)
def test_no_upward_imports(layer):
    forbidden = set(LAYERS[LAYERS.index(layer) + 1 :])
    offenders = {
        str(path.relative_to(REPO_ROOT)): sorted(_imported_packages(path) & forbidden)
        for path in sorted((REPO_ROOT / layer).rglob("*.py"))
    }
    offenders = {k: v for k, v in offenders.items() if v}
    assert not offenders, f"{layer}/ must not import {sorted(forbidden)}: {offenders}"


@pytest.mark.parametrize("layer", LAYERS[1:])
def test_each_layer_imports_only_its_listed_lower_modules(layer):
    lower = set(LAYERS[: LAYERS.index(layer)])
    offenders = {}
    for path in sorted((REPO_ROOT / layer).rglob("*.py")):
        bad = sorted(m for m in _imported_modules(path) if m.split(".")[0] in lower and not _allowed(m, ALLOWED[layer]))
        if bad:
            offenders[str(path.relative_to(REPO_ROOT))] = bad
    assert not offenders, f"{layer}/ may import only {ALLOWED[layer]} from the layers below: {offenders}"


def test_the_foundation_stands_on_itself():
    """``encoders.utils`` imports nothing else of semnav: every layer can build on it."""
    offenders = {
        str(path.relative_to(REPO_ROOT)): sorted(
            m for m in _imported_modules(path) if m.split(".")[0] in LAYERS and not m.startswith("encoders.utils")
        )
        for path in sorted((REPO_ROOT / "encoders" / "utils").rglob("*.py"))
    }
    offenders = {k: v for k, v in offenders.items() if v}
    assert not offenders, f"encoders/utils/ must import only encoders.utils.*: {offenders}"


@pytest.mark.parametrize(
    ("layer", "module", "allowed"),
    [
        ("techniques", "encoders.train.checkpointing", False),
        ("techniques", "encoders.data.image_folder", False),
        ("envs", "encoders.data", False),
        ("envs", "encoders.utils.io", True),
        ("techniques", "encoders.checkpoint", True),
        ("techniques", "envs.core", True),
        ("experiments", "encoders.train.trainer", True),
    ],
)
def test_the_rule_sees_new_edges(layer, module, allowed):
    assert _allowed(module, ALLOWED[layer]) is allowed


def test_no_torchvision_anywhere():
    users = [
        str(p.relative_to(REPO_ROOT))
        for layer in [*LAYERS, "benchmarks", "tests"]
        for p in (REPO_ROOT / layer).rglob("*.py")
        if "torchvision" in _imported_packages(p)
    ]
    assert not users, f"torchvision is not a dependency (it drags in a CUDA torch on CPU machines): {users}"
