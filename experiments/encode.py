"""Encode one image: print the feature shapes and write a PCA-of-patch-features PNG next to it.

    python -m experiments.encode --encoder vits14 --image photo.jpg
    python -m experiments.encode --encoder vit_tiny_patch14 --weights runs/pretrain/backbone.pth --image photo.jpg
    python -m experiments.encode --encoder vits14 --weights official --image photo.jpg   # needs network or hub cache
    python -m experiments.encode --encoder vits14 --demo-scene out/scene.png            # a procedural scene
    python -m experiments.encode --encoder vits14 --sample-photo out/astronaut.png      # a scikit-image photo

The image is resized so its longer side is ``--size`` and both sides are multiples of the patch size.
The PNG shows the image and the first 3 principal components of its patch features as RGB
(``<image>_pca.png``; with ``--foreground-threshold`` the background is masked, as in the DINOv2 paper).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import cv2
import numpy as np
import torch

import encoders
from encoders.eval.pca import pca_rgb, upsample_map
from encoders.preprocessing import images_to_tensor, read_image_rgb, resize_to_multiple
from encoders.utils.cli import CLI_ERRORS, report_error
from encoders.utils.logging import setup_logging
from encoders.utils.precision import PRECISIONS, autocast, autocast_dtype, describe

logger = logging.getLogger("experiments.encode")


def load_encoder(name: str, weights: str | None, device: str) -> encoders.DinoVisionTransformer:
    """``--encoder`` + ``--weights`` (None: random init, ``official``: hub download, else a file)."""
    pretrained: bool | str = False if weights is None else (True if weights == "official" else weights)
    return encoders.create_model(name, pretrained=pretrained).to(device).eval()


def write_demo_scene(path: Path, size: int) -> Path:
    """Render a procedural scene (``envs.scenes``) to ``path`` for a no-download demo."""
    from envs.scenes import SceneGenerator

    scene = SceneGenerator(image_size=size).generate(0, split="test")
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(scene.image, cv2.COLOR_RGB2BGR))
    return path


#: Real photographs bundled in the scikit-image package (no download): name -> loader of an (H, W, 3) uint8 RGB array.
SAMPLE_PHOTOS = {
    "astronaut": lambda data: data.astronaut(),
    "coffee": lambda data: data.coffee(),
    "chelsea": lambda data: data.chelsea(),
    "rocket": lambda data: data.rocket(),
    "motorcycle": lambda data: data.stereo_motorcycle()[0],
    "hubble": lambda data: data.hubble_deep_field(),
    "retina": lambda data: data.retina(),
}


def write_sample_photo(path: Path) -> Path:
    """Write the scikit-image photo named by ``path``'s stem (a :data:`SAMPLE_PHOTOS` key) to ``path``.

    Raises:
        ValueError: the stem names no bundled photo, or scikit-image is not installed.
    """
    name = Path(path).stem
    if name not in SAMPLE_PHOTOS:
        raise ValueError(f"no bundled photo named {name!r} (the file name's stem); use one of {sorted(SAMPLE_PHOTOS)}")
    try:
        from skimage import data
    except ImportError as e:
        raise ValueError("--sample-photo needs scikit-image: pip install scikit-image (or -e '.[dev]')") from e
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), cv2.cvtColor(SAMPLE_PHOTOS[name](data), cv2.COLOR_RGB2BGR)):
        raise ValueError(f"could not write {path}; use a .png or .jpg path in a writable folder")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--image", type=Path, help="image file (jpg/png/webp/bmp/...)")
    source.add_argument("--demo-scene", type=Path, metavar="PATH", help="render a procedural scene to PATH and use it")
    source.add_argument(
        "--sample-photo",
        type=Path,
        metavar="PATH",
        help=f"write the scikit-image photo named by PATH's stem ({', '.join(SAMPLE_PHOTOS)}) to PATH and use it",
    )
    parser.add_argument(
        "--encoder", default="vits14", help=f"registry name; one of {', '.join(encoders.list_models())}"
    )
    parser.add_argument(
        "--weights", default=None, help="checkpoint path, 'official' (download), or omit for random init"
    )
    parser.add_argument("--size", type=int, default=448, help="longer side in pixels before patch alignment")
    parser.add_argument("--output", type=Path, default=None, help="PNG path (default: <image>_pca.png)")
    parser.add_argument("--foreground-threshold", type=float, default=None, help="mask the background (e.g. 0.5)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="auto",
        help="forward pass under bf16 autocast or in fp32 (auto: bf16 on CUDA and on CPUs with native bf16); "
        "the features are returned as fp32",
    )
    parser.add_argument("--seed", type=int, default=0, help="torch seed of a random-init encoder (no --weights)")
    args = parser.parse_args(argv)
    setup_logging()

    try:
        torch.manual_seed(args.seed)
        model = load_encoder(args.encoder, args.weights, args.device)
        if args.image is not None:
            image_path = args.image
        elif args.sample_photo is not None:
            image_path = write_sample_photo(args.sample_photo)
        else:
            image_path = write_demo_scene(args.demo_scene, args.size)
        image = read_image_rgb(image_path)
    except CLI_ERRORS as e:
        return report_error(e)
    image = resize_to_multiple(image, model.patch_size, mode="resize", max_side=args.size)
    h, w = image.shape[0] // model.patch_size, image.shape[1] // model.patch_size
    dtype = autocast_dtype(args.precision, args.device)
    with torch.inference_mode(), autocast(args.device, dtype):
        feats = model.forward_features(images_to_tensor(image, device=args.device))
    feats = {k: v.float() if torch.is_tensor(v) and v.is_floating_point() else v for k, v in feats.items()}
    if args.weights is None:
        logger.warning("random-init %s: pass --weights for meaningful features", args.encoder)

    print(
        f"encoder {args.encoder}: embed_dim={model.embed_dim}, patch={model.patch_size}, blocks={model.n_blocks}, "
        f"{describe(dtype)}"
    )
    print(f"image {image_path}: resized to {image.shape[0]}x{image.shape[1]} -> {h}x{w} patches")
    for key, value in feats.items():
        print(f"  {key:20s} {tuple(value.shape) if value is not None else None}")

    patch = feats["x_norm_patchtokens"].reshape(1, h, w, -1).cpu()
    pca = upsample_map(pca_rgb(patch, args.foreground_threshold)[0], image.shape[0], image.shape[1])
    panel = np.concatenate([image, pca], axis=1)
    out = args.output or image_path.with_name(f"{image_path.stem}_pca.png")
    cv2.imwrite(str(out), cv2.cvtColor(panel, cv2.COLOR_RGB2BGR))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
