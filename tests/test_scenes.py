"""Procedural scenes: determinism, disjoint splits, annotations vs pixels, colour variants, single objects, CLI."""

from __future__ import annotations

import dataclasses
import json
import pickle

import cv2
import numpy as np
import pytest

from envs.scenes import (
    BACKGROUNDS,
    OBJECT_CLASSES,
    PLAIN_BACKGROUND,
    SceneGenerator,
    colour_distance,
    distinct_colour,
    random_colour,
    render_object,
    split_seed,
)
from envs.scenes.layout import background_of, render_layout
from envs.scenes.objects import OBJECT_DRAWERS, draw_object_layers
from envs.scenes.painter import Painter, region_for
from envs.scenes.palette import class_colours
from envs.scenes.variants import DEFAULT_MIN_DISTANCE, changed_mask, variant_images


@pytest.fixture(scope="module")
def gen() -> SceneGenerator:
    return SceneGenerator()


@pytest.fixture(scope="module")
def scenes(gen):
    return gen.generate_many(range(12))


def _outside(mask_shape, boxes) -> np.ndarray:
    mask = np.ones(mask_shape, dtype=bool)
    for x0, y0, x1, y1 in boxes:
        mask[y0:y1, x0:x1] = False
    return mask


# --------------------------------------------------------------------------------------------------- basics
def test_required_classes_and_backgrounds():
    for name in ("car", "house", "tree", "person", "boat", "traffic_light", "flower", "bicycle"):
        assert name in OBJECT_CLASSES
    for name in ("grass", "road", "water", "sand"):
        assert name in BACKGROUNDS
    assert tuple(OBJECT_DRAWERS) == OBJECT_CLASSES


def test_scene_shape_and_dtype(scenes):
    for s in scenes:
        assert s.image.shape == (448, 448, 3) and s.image.dtype == np.uint8
        assert s.image.shape[0] % 14 == 0
        assert 4 <= len(s.objects) <= 8
        assert s.split == "train" and s.background in BACKGROUNDS


def test_generate_is_deterministic(gen, scenes):
    again = SceneGenerator().generate(3)  # a fresh generator: nothing hidden in instance state
    assert again.image.tobytes() == scenes[3].image.tobytes()
    assert again.objects == scenes[3].objects and again.background == scenes[3].background
    assert gen.generate(3).image.tobytes() == scenes[3].image.tobytes()
    images = {s.image.tobytes() for s in scenes}
    assert len(images) == len(scenes), "different scene ids must give different scenes"
    assert not np.array_equal(SceneGenerator(seed=1).generate(3).image, scenes[3].image)


def test_split_seeds_never_collide():
    n = 10_000
    seeds = {split_seed(split, i, base) for base in (0, 1) for split in ("train", "val", "test") for i in range(n)}
    assert len(seeds) == 2 * 3 * n
    with pytest.raises(ValueError, match="unknown split"):
        split_seed("training", 0)
    with pytest.raises(ValueError, match="scene_id"):
        split_seed("train", -1)


def test_splits_give_different_scenes(gen, scenes):
    val = gen.generate(0, "val")
    test = gen.generate(0, "test")
    assert val.split == "val" and test.split == "test"
    assert len({scenes[0].image.tobytes(), val.image.tobytes(), test.image.tobytes()}) == 3
    with pytest.raises(ValueError, match="unknown split"):
        gen.generate(0, "folder")


# --------------------------------------------------------------------------------------------------- annotations
def test_annotations_match_pixels(scenes):
    for s in scenes:
        background = background_of(s.layout)
        boxes = [o.bbox for o in s.objects]
        for k, o in enumerate(s.objects):
            x0, y0, x1, y1 = o.bbox
            assert 0 <= x0 < x1 <= s.width and 0 <= y0 < y1 <= s.height
            assert OBJECT_CLASSES[o.class_id] == o.class_name
            assert x0 <= o.center[0] <= x1 and y0 <= o.center[1] <= y1
            assert 0.5 * o.size <= max(x1 - x0, y1 - y0) <= 1.3 * o.size + 8
            crop = s.image[y0:y1, x0:x1].astype(int)
            # The main colour is drawn unshaded somewhere inside the box (exact up to rounding).
            assert (np.abs(crop - np.asarray(o.colour)).max(axis=-1) <= 1).sum() >= 10, o
            # The box is tight: visible changes reach (within the faint antialiased rim) each of its borders.
            changed = np.any(s.image[y0:y1, x0:x1] != background[y0:y1, x0:x1], axis=-1)
            assert changed[:2].any() and changed[-2:].any() and changed[:, :2].any() and changed[:, -2:].any()
            for other in boxes[k + 1 :]:
                assert x1 <= other[0] or other[2] <= x0 or y1 <= other[1] or other[3] <= y0, "objects overlap"
        outside = _outside(s.image.shape[:2], boxes)
        assert np.array_equal(s.image[outside], background[outside]), "pixels outside the boxes must be background"


def test_min_gap_and_layout_regions(gen, scenes):
    for s in scenes:
        regions = [o.region for o in s.layout.objects]
        for k, a in enumerate(regions):
            assert min(a[0], a[1]) >= 0 and a[2] <= s.width and a[3] <= s.height
            for b in regions[k + 1 :]:
                gap = gen.min_gap
                assert a[2] + gap <= b[0] or b[2] + gap <= a[0] or a[3] + gap <= b[1] or b[3] + gap <= a[1]


def test_class_weights_and_subsets():
    only_cars = SceneGenerator(image_size=224, object_size=(24, 40), class_weights=[1] + [0] * 11)
    assert {o.class_name for o in only_cars.generate(0).objects} == {"car"}
    sub = SceneGenerator(image_size=224, object_size=(24, 40), classes=("boat", "flower"), backgrounds=("water",))
    s = sub.generate(1)
    assert s.background == "water" and {o.class_name for o in s.objects} <= {"boat", "flower"}
    assert all(o.class_id == OBJECT_CLASSES.index(o.class_name) for o in s.objects)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"image_size": 450}, "multiple of patch_size"),
        ({"classes": ("car", "dragon")}, "unknown object class"),
        ({"backgrounds": ("lava",)}, "unknown background"),
        ({"image_size": 112, "object_size": (36, 200)}, "do not fit"),
        ({"n_objects": (5, 2)}, "n_objects"),
        ({"class_weights": [1.0, 2.0]}, "class_weights"),
    ],
)
def test_generator_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SceneGenerator(**kwargs)


def test_too_crowded_scene_is_a_clear_error():
    crowded = SceneGenerator(image_size=112, n_objects=(30, 30), object_size=(40, 40), max_tries=20)
    with pytest.raises(ValueError, match="lower n_objects"):
        crowded.generate(0)


def test_scene_pickles(scenes):
    restored = pickle.loads(pickle.dumps(scenes[0]))
    assert np.array_equal(restored.image, scenes[0].image) and restored.layout == scenes[0].layout
    assert json.loads(json.dumps(scenes[0].annotation()))["objects"][0]["bbox"] == list(scenes[0].objects[0].bbox)


# --------------------------------------------------------------------------------------------------- colour variants
def test_recolour_changes_only_chosen_objects(gen, scenes):
    s = scenes[0]
    chosen = [0, 2]
    v = gen.recolour(s, 3, chosen)
    assert v.layout is s.layout and v.background == s.background and v.scene_id == s.scene_id
    for i, (a, b) in enumerate(zip(s.objects, v.objects)):
        assert a.bbox == b.bbox and a.class_name == b.class_name and a.center == b.center
        if i in chosen:
            assert colour_distance(a.colour, b.colour) >= DEFAULT_MIN_DISTANCE
            x0, y0, x1, y1 = b.bbox
            crop = v.image[y0:y1, x0:x1].astype(int)
            assert (np.abs(crop - np.asarray(b.colour)).max(axis=-1) <= 1).sum() >= 10
        else:
            assert a.colour == b.colour
    outside = _outside(s.image.shape[:2], [s.objects[i].bbox for i in chosen])
    assert np.array_equal(v.image[outside], s.image[outside])
    assert not np.array_equal(v.image, s.image)
    assert gen.recolour(s, 3, chosen).image.tobytes() == v.image.tobytes()  # deterministic
    assert gen.recolour(s, 0).image.tobytes() == s.image.tobytes()  # variant 0 = original
    assert gen.recolour(v, 0).image.tobytes() == s.image.tobytes()  # ... also from a variant


def test_recolour_equals_full_render_with_new_colours(gen, scenes):
    """Redrawing one region over the regenerated background is bit-identical to drawing the scene anew."""
    s = scenes[1]
    v = gen.recolour(s, 2)
    layout = dataclasses.replace(
        s.layout,
        objects=tuple(dataclasses.replace(o, colour=n.colour) for o, n in zip(s.layout.objects, v.objects)),
    )
    full = render_layout(layout, s.split, s.scene_id)
    assert full.image.tobytes() == v.image.tobytes()
    assert [o.bbox for o in full.objects] == [o.bbox for o in v.objects]


def test_colour_variants(gen, scenes):
    s = scenes[2]
    k = 4
    vs = gen.colour_variants(s, k, [1])
    assert len(vs) == k and vs[0].image.tobytes() == s.image.tobytes()
    for v in range(1, k):
        assert vs[v].image.tobytes() == gen.recolour(s, v, [1]).image.tobytes()
    colours = {vv.objects[1].colour for vv in vs}
    assert len(colours) == k, "the variants of an object should differ"
    stack = variant_images(s, k, [1])
    assert stack.shape == (k, *s.image.shape) and stack.dtype == np.uint8
    mask = changed_mask(s, [1])
    diff = np.any(stack != stack[:1], axis=-1).any(axis=0)
    assert not diff[~mask].any()
    with pytest.raises(ValueError, match="out of range"):
        gen.colour_variants(s, 2, [99])
    with pytest.raises(ValueError, match="k must be"):
        gen.colour_variants(s, 0)


# --------------------------------------------------------------------------------------------------- single objects
@pytest.mark.parametrize("class_name", OBJECT_CLASSES)
def test_render_object_is_centred_and_sized(class_name):
    size, image_size = 70, 112
    ew, eh = OBJECT_DRAWERS[class_name].extent
    centre = (image_size - 1) / 2
    boxes = []
    for outline in (False, True):
        image = render_object(class_name, (200, 40, 40), size=size, image_size=image_size, outline=outline)
        assert image.shape == (image_size, image_size, 3) and image.dtype == np.uint8
        ys, xs = np.nonzero(np.any(image != np.asarray(PLAIN_BACKGROUND, np.uint8), axis=-1))
        assert abs((xs.max() + xs.min()) / 2 - centre) <= 1.0 and abs((ys.max() + ys.min()) / 2 - centre) <= 1.0
        boxes.append((xs.min(), ys.min(), xs.max() + 1, ys.max() + 1))
        # the main colour is present
        assert (np.abs(image.astype(int) - [200, 40, 40]).max(axis=-1) <= 1).sum() >= 20
    (x0, y0, x1, y1), with_outline = boxes
    # the silhouette spans the declared extent (+ up to 2 antialiased pixels per side) ...
    assert -1 <= (x1 - x0) - ew * size <= 4 and -1 <= (y1 - y0) - eh * size <= 4, (x1 - x0, y1 - y0)
    # ... and the outline adds at most one pixel per side
    assert all(abs(a - b) <= 1 for a, b in zip(with_outline, boxes[0]))


@pytest.mark.parametrize("angle", [0.0, 15.0, -15.0])
def test_drawers_stay_inside_their_extent(angle):
    for name, cls in OBJECT_DRAWERS.items():
        region = region_for((50.3, 50.7), 60, cls.extent, angle, pad=2)  # 1 px less than the outline needs
        _, layers = draw_object_layers(name, (50.3, 50.7), 60, angle, 0, region, outline=False)
        cover = Painter((0, 0), 1, 0, region, layers).coverage()
        assert not cover[0].any() and not cover[-1].any() and not cover[:, 0].any() and not cover[:, -1].any(), name


def test_render_object_colour_is_the_only_difference():
    a = render_object("car", (255, 0, 0), rng=np.random.default_rng(5), background="grass")
    b = render_object("car", (0, 0, 255), rng=np.random.default_rng(5), background="grass")
    diff = np.any(a != b, axis=-1)
    assert diff.any() and diff.mean() < 0.4
    with pytest.raises(ValueError, match="unknown object class"):
        render_object("unicorn", (1, 2, 3))
    with pytest.raises(ValueError, match="colour"):
        render_object("car", (1, 2, 300))


# --------------------------------------------------------------------------------------------------- palette
def test_palette():
    rng = np.random.default_rng(0)
    colours = [random_colour(rng) for _ in range(500)]
    arr = np.asarray(colours)
    assert arr.min() >= 0 and arr.max() <= 255
    hues = {int(np.argmax(c)) for c in colours}
    assert hues == {0, 1, 2}, "random colours must cover the hue range"
    avoid = [(255, 0, 0), (0, 255, 0)]
    for _ in range(50):
        c = distinct_colour(rng, avoid, 120)
        assert min(colour_distance(c, a) for a in avoid) >= 120
    # impossible request: the best candidate is returned instead of looping forever
    c = distinct_colour(np.random.default_rng(1), [(128, 128, 128)], 1000, max_tries=10)
    assert len(c) == 3
    assert len(set(class_colours(12))) == 12


# --------------------------------------------------------------------------------------------------- export CLI
def test_export_cli(tmp_path):
    from envs.scenes.export import main

    out = tmp_path / "scenes"
    assert main(["--out", str(out), "--n", "3", "--size", "224", "--object-size", "24", "40", "--start", "5"]) == 0
    files = sorted(p.name for p in out.glob("*.png"))
    assert files == ["train_000005.png", "train_000006.png", "train_000007.png"]
    lines = [json.loads(line) for line in (out / "annotations.jsonl").read_text().splitlines()]
    assert [d["scene_id"] for d in lines] == [5, 6, 7]
    gen = SceneGenerator(image_size=224, object_size=(24, 40))
    scene = gen.generate(6)
    png = cv2.cvtColor(cv2.imread(str(out / "train_000006.png")), cv2.COLOR_BGR2RGB)
    assert np.array_equal(png, scene.image)
    assert lines[1]["objects"] == [o.to_dict() for o in scene.objects]
    assert json.loads((out / "config.json").read_text())["size"] == 224
    assert main(["--n", "1"]) == 2  # missing --out
    assert main(["--out", str(out), "--size", "100"]) == 2  # not a multiple of the patch size


def test_backgrounds_look_like_their_names():
    rng = np.random.default_rng(0)
    from envs.scenes.backgrounds import render_background

    for _ in range(3):
        mean = {b: render_background(b, 112, 112, rng).reshape(-1, 3).mean(0) for b in BACKGROUNDS}
        r, g, b = mean["grass"]
        assert g > r and g > b, "grass is green"
        r, g, b = mean["water"]
        assert b > g > r, "water is blue"
        r, g, b = mean["sand"]
        assert r > g > b and b > 100, "sand is beige"
        assert mean["snow"].min() > 200, "snow is bright"
        assert np.ptp(mean["road"]) < 30 and mean["road"].mean() < 130, "road is dark grey"
        assert np.ptp(mean["pavement"]) < 40, "pavement is greyish"
    with pytest.raises(ValueError, match="unknown background"):
        render_background("lava", 8, 8, rng)


def test_dense_small_scenes_keep_their_invariants():
    gen = SceneGenerator(image_size=224, n_objects=(8, 12), object_size=(20, 40), min_gap=2, max_rotation=30)
    for s in gen.generate_many(range(20), "test"):
        assert 8 <= len(s.objects) <= 12
        background = background_of(s.layout)
        outside = _outside(s.image.shape[:2], [o.bbox for o in s.objects])
        assert np.array_equal(s.image[outside], background[outside])
        assert all(-30 <= o.angle <= 30 and 20 <= o.size <= 40 for o in s.objects)
