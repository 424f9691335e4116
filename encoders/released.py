"""Encoder weights released with semnav, loadable by name as the official ones are.

``create_model("vit_mini_patch14", pretrained="semnav-objects")``, ``--encoder-weights semnav-objects`` of
``experiments.two_phase`` and ``experiments.eval_encoder``. Each release is a half-precision backbone file in
``encoders/weights/`` with its JSON sidecar; its SHA-256 is checked at every load, and its entry records the
command that made it and the CPU it was made on (docs/results.md has its scores).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from encoders.utils.io import CheckpointError

WEIGHTS_DIR = Path(__file__).parent / "weights"


@dataclass(frozen=True)
class ReleasedWeights:
    """One released backbone: its name, architecture, file under ``encoders/weights/`` and provenance."""

    name: str
    arch: str
    """the registered architecture the weights load into"""
    file: str
    sha256: str
    description: str
    command: str
    """the command that made the weights (before the fp16 export)"""
    made_on: str
    """the machine and wall time"""

    @property
    def path(self) -> Path:
        return WEIGHTS_DIR / self.file


MANIFEST = "releases.json"
"""``encoders/weights/releases.json``: one entry per release (the fields of :class:`ReleasedWeights`), written by
``python -m experiments.release_encoder``"""

RELEASED: dict[str, ReleasedWeights] = {}


def register_release(release: ReleasedWeights) -> ReleasedWeights:
    """Add a release (the name must be new and must not look like a file path)."""
    if release.name in RELEASED or release.name == "official" or os.sep in release.name:
        raise ValueError(f"release name {release.name!r} is taken or not a plain name")
    RELEASED[release.name] = release
    return release


def read_manifest(folder: Path = WEIGHTS_DIR) -> list[ReleasedWeights]:
    """The releases listed in ``folder/releases.json`` (none without the file)."""
    path = folder / MANIFEST
    if not path.is_file():
        return []
    return [ReleasedWeights(**entry) for entry in json.loads(path.read_text())]


for _release in read_manifest():
    register_release(_release)


def is_release(weights: object) -> bool:
    """Whether ``weights`` (a ``--encoder-weights`` value) names a released backbone."""
    return isinstance(weights, str) and weights in RELEASED


def sha256_of(path: str | os.PathLike) -> str:
    """The file's SHA-256 as 64 hex digits."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def released_path(name: str, arch: str | None = None) -> Path:
    """The verified file of release ``name``; :class:`CheckpointError` naming the fix if it is unknown, missing,
    altered, or (given ``arch``) made for another architecture."""
    if name not in RELEASED:
        known = ", ".join(RELEASED) or "none"
        raise CheckpointError(f"no released encoder weights named {name!r}; released: {known}")
    release = RELEASED[name]
    if arch is not None and arch != release.arch:
        raise CheckpointError(
            f"the {name!r} weights are for {release.arch}, not {arch}; pass --encoder {release.arch} with them"
        )
    if not release.path.is_file():
        raise CheckpointError(f"{release.path} is missing; reinstall semnav or restore the file from git")
    digest = sha256_of(release.path)
    if digest != release.sha256:
        raise CheckpointError(
            f"{release.path} has SHA-256 {digest}, not the released {release.sha256}; restore it from git"
        )
    return release.path


__all__ = [
    "MANIFEST",
    "RELEASED",
    "WEIGHTS_DIR",
    "ReleasedWeights",
    "is_release",
    "read_manifest",
    "register_release",
    "released_path",
    "sha256_of",
]
