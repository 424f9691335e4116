"""Release a trained backbone under a name: a half-precision copy in ``encoders/weights/``, its SHA-256 and
provenance in ``encoders/weights/releases.json``, and reference features for the test that checks the copy.

    python -m experiments.release_encoder --weights runs/objects/teacher_backbone.pth --name semnav-objects \\
        --description "..." --command "python -m experiments.pretrain ..." --made-on "Intel Xeon, 2 cores, 52 min"

Afterwards ``--encoder-weights semnav-objects`` loads it (``encoders.released``), and
``tests/test_released_weights.py`` checks its hash and that it gives the features of ``--weights`` (the fp32 file it
came from) on a few fixed object images, up to half-precision rounding.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

REFERENCE_DIR = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "released"


@dataclass
class ReleaseConfig:
    """Export a trained backbone as a named release of semnav."""

    weights: Path | None = None
    """the trained backbone file (with its JSON sidecar, as the trainers write it; required)"""
    name: str = ""
    """the release name (required), e.g. semnav-objects"""
    description: str = ""
    """what the weights are (one line)"""
    command: str = ""
    """the command that made --weights"""
    made_on: str = ""
    """the CPU or GPU and the wall time it took"""
    reference_images: int = 4
    """object images of the reference features the test compares with"""


def reference_images(n: int, size: int) -> np.ndarray:
    """``(n, size, size, 3)`` uint8 object images (held-out split, fixed seed) for the reference features."""
    from envs.scenes.object_set import sample_object
    from envs.scenes.types import OBJECT_CLASSES

    return np.stack(
        [sample_object(OBJECT_CLASSES[i % len(OBJECT_CLASSES)], i, "test", image_size=size).image for i in range(n)]
    )


def release(cfg: ReleaseConfig) -> dict[str, str]:
    """Write the fp16 copy, its sidecar, the manifest entry and the reference features; return the entry."""
    import encoders
    from encoders.checkpoint import sidecar_path
    from encoders.preprocessing import images_to_tensor
    from encoders.released import MANIFEST, WEIGHTS_DIR, ReleasedWeights, sha256_of
    from encoders.utils.io import atomic_write_text

    if cfg.weights is None or not cfg.name:
        raise ValueError("pass --weights FILE (a trained backbone) and --name NAME (e.g. semnav-objects)")
    if not Path(cfg.weights).is_file():
        raise ValueError(f"--weights {cfg.weights}: no such file")
    if not sidecar_path(cfg.weights).is_file():
        raise ValueError(
            f"--weights {cfg.weights} has no {sidecar_path(cfg.weights).name}; pass a backbone file as the trainers "
            "write it (teacher_backbone.pth, backbone.pth)"
        )
    source = encoders.create_model_from_checkpoint(cfg.weights).eval()
    meta = json.loads(sidecar_path(cfg.weights).read_text())
    arch = meta["name"]
    WEIGHTS_DIR.mkdir(parents=True, exist_ok=True)
    path = WEIGHTS_DIR / f"{cfg.name}.pth"
    half = encoders.create_model_from_checkpoint(cfg.weights).half()
    encoders.save_backbone(half, path, name=arch, overrides=meta.get("overrides", {}))
    entry = ReleasedWeights(cfg.name, arch, path.name, sha256_of(path), cfg.description, cfg.command, cfg.made_on)
    manifest = WEIGHTS_DIR / MANIFEST
    entries = [e for e in (json.loads(manifest.read_text()) if manifest.is_file() else []) if e["name"] != cfg.name]
    entries.append(dataclasses.asdict(entry))
    atomic_write_text(json.dumps(entries, indent=2) + "\n", manifest)
    pixels = reference_images(cfg.reference_images, 112)
    with torch.no_grad():
        out = source.forward_features(images_to_tensor(pixels))
    REFERENCE_DIR.mkdir(parents=True, exist_ok=True)
    torch.save(
        {"pixels": torch.from_numpy(pixels), "cls": out["x_norm_clstoken"], "patch": out["x_norm_patchtokens"]},
        REFERENCE_DIR / f"{cfg.name}.pt",
    )
    return dataclasses.asdict(entry)


def main(argv: Sequence[str] | None = None) -> int:
    from encoders.utils.config import parse_config

    cfg = parse_config(ReleaseConfig, argv, description=__doc__.split("\n\n")[0])
    try:
        entry = release(cfg)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(entry, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
