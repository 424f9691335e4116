"""Labelled object set: determinism, disjoint splits, colour control, on-disk layout and CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

from envs.scenes import OBJECT_CLASSES, PLAIN_BACKGROUND
from envs.scenes.object_set import fixed_class_colour, main, make_object_set, sample_object


def test_sample_is_deterministic_and_splits_differ():
    a = sample_object("car", 3, "train")
    b = sample_object("car", 3, "train")
    assert a.image.tobytes() == b.image.tobytes() and a.to_dict() == b.to_dict()
    assert a.image.shape == (112, 112, 3) and a.image.dtype == np.uint8
    train = {sample_object("tree", i, "train").image.tobytes() for i in range(20)}
    val = {sample_object("tree", i, "val").image.tobytes() for i in range(20)}
    assert len(train) == 20 and not train & val
    assert sample_object("car", 3, "train", seed=1).image.tobytes() != a.image.tobytes()


def test_colour_override_changes_only_the_colour():
    a = sample_object("bicycle", 7, "val", backgrounds=("plain",))
    b = sample_object("bicycle", 7, "val", backgrounds=("plain",), colour=(10, 200, 30))
    assert (a.size, a.angle, a.offset, a.background) == (b.size, b.angle, b.offset, b.background)
    assert b.colour == (10, 200, 30) and a.colour != b.colour
    plain = np.asarray(PLAIN_BACKGROUND, np.uint8)
    # same silhouette: the set of pixels that differ from the plain background is the same
    assert np.array_equal(np.any(a.image != plain, -1), np.any(b.image != plain, -1))
    assert not np.array_equal(a.image, b.image)


def test_objects_stay_inside_the_image():
    for c in OBJECT_CLASSES:
        for i in range(3):
            s = sample_object(c, i, "test", backgrounds=("plain",), size_range=(0.8, 0.8), max_offset=0.3)
            touched = np.any(s.image != np.asarray(PLAIN_BACKGROUND, np.uint8), -1)
            assert not (touched[0].any() or touched[-1].any() or touched[:, 0].any() or touched[:, -1].any()), c


def test_fixed_colour_mode_and_make_object_set():
    images, labels, samples = make_object_set(2, "train", classes=("car", "boat"), colour_mode="fixed")
    assert images.shape == (4, 112, 112, 3) and labels.tolist() == [0, 0, 1, 1]
    assert [s.colour for s in samples] == [fixed_class_colour("car")] * 2 + [fixed_class_colour("boat")] * 2
    assert fixed_class_colour("car") != fixed_class_colour("boat")
    with pytest.raises(ValueError, match="unknown object class"):
        sample_object("yeti", 0)
    with pytest.raises(ValueError, match="unknown split"):
        sample_object("car", 0, "holdout")


def test_object_set_cli(tmp_path):
    out = tmp_path / "objects"
    argv = ["--out", str(out), "--per-class", "2", "--split", "val", "--image-size", "56"]
    assert main([*argv, "--classes", "car", "person", "flower"]) == 0
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["car", "flower", "person"]
    assert sorted(p.name for p in (out / "car").iterdir()) == ["car_00000.png", "car_00001.png"]
    labels = [json.loads(line) for line in (out / "labels.jsonl").read_text().splitlines()]
    assert len(labels) == 6 and {d["split"] for d in labels} == {"val"}
    assert labels[0]["file"] == "car/car_00000.png"
    assert labels[0]["colour"] == list(sample_object("car", 0, "val", image_size=56).colour)
    assert json.loads((out / "config.json").read_text())["per_class"] == 2

    from encoders.data.image_folder import LabelledImageFolder

    dataset = LabelledImageFolder(out)
    assert dataset.classes == ["car", "flower", "person"] and len(dataset) == 6
    image, label = dataset[0]
    assert image.shape == (56, 56, 3) and label == 0
    assert np.array_equal(image, sample_object("car", 0, "val", image_size=56).image)
    assert main(["--per-class", "1"]) == 2  # missing --out
    assert main(["--out", str(out), "--classes", "dragon"]) == 2


def test_hue_range_changes_only_the_colour_and_keeps_hues_inside():
    import colorsys

    from envs.scenes.object_set import sample_object

    for i in range(20):
        full = sample_object("boat", i)
        low = sample_object("boat", i, hue_range=(0.0, 0.5))
        assert (low.size, low.angle, low.offset, low.background) == (
            full.size,
            full.angle,
            full.offset,
            full.background,
        )
        h, _, _ = colorsys.rgb_to_hsv(*(c / 255 for c in low.colour))
        assert h <= 0.5 + 1e-2 or h >= 1 - 1e-2  # rounding to 8-bit RGB may wrap a hue of 0 to just below 1
    with pytest.raises(ValueError, match="hue_range"):
        sample_object("boat", 0, hue_range=(0.6, 0.2))


def test_view_pairs_share_the_object_and_nothing_else():
    from envs.scenes.object_set import ObjectViewPairs

    pairs = ObjectViewPairs(6, "train", seed=3)
    differ = {"background": 0, "colour": 0, "size": 0, "offset": 0}
    for i in range(0, len(pairs), 5):
        first, second = pairs.views(i)
        (image_a, image_b), label = pairs[i]
        assert label == first.class_id == second.class_id == i // 6
        assert first.style_seed == second.style_seed  # one instance: the same style details
        np.testing.assert_array_equal(image_a, first.image)
        np.testing.assert_array_equal(image_b, second.image)
        assert not np.array_equal(image_a, image_b)
        differ["background"] += first.background != second.background
        differ["colour"] += first.colour != second.colour
        differ["size"] += first.size != second.size
        differ["offset"] += first.offset != second.offset
    n = len(range(0, len(pairs), 5))
    assert differ["colour"] == n and differ["size"] >= n - 1 and differ["offset"] >= n - 1
    assert differ["background"] >= n // 2  # 7 backgrounds: a few pairs draw the same one, with another texture
    # view 0 is the object set's image, whatever the pairing
    np.testing.assert_array_equal(pairs[7][0][0], sample_object(OBJECT_CLASSES[1], 1, "train", seed=3).image)


def test_aligned_view_pairs_keep_the_geometry_and_single_gives_view_0():
    from envs.scenes.object_set import ObjectViewPairs

    aligned = ObjectViewPairs(2, "val", view_geometry="same", seed=1)
    first, second = aligned.views(3)
    assert (first.size, first.angle, first.offset) == (second.size, second.angle, second.offset)
    assert first.colour != second.colour
    image, label = ObjectViewPairs(2, "val", paired=False, seed=1)[3]
    np.testing.assert_array_equal(image, first.image)
    assert label == 1
    with pytest.raises(ValueError, match="view_geometry"):
        ObjectViewPairs(2, view_geometry="moved")


def test_style_seed_paints_the_same_instance():
    a = sample_object("tree", 4, "train", seed=0, backgrounds=("plain",))
    b = sample_object("tree", 4, "train", seed=0, backgrounds=("plain",), style_seed=a.style_seed)
    np.testing.assert_array_equal(a.image, b.image)
    c = sample_object("tree", 4, "train", seed=0, backgrounds=("plain",), style_seed=a.style_seed + 1)
    assert c.size == a.size and c.angle == a.angle


def test_procedural_pretraining_specs():
    from encoders.train.config import PretrainConfig
    from envs.scenes.object_set import PLAIN, ObjectViewPairs
    from experiments.pretraining_data import procedural_images

    def images(spec: str) -> ObjectViewPairs:
        cfg = PretrainConfig(data=spec)
        return procedural_images(cfg)

    assert procedural_images(PretrainConfig(data="some/folder")) is None
    assert images("objects:3").view_geometry == "redrawn" and images("objects:3").paired
    assert images("objects:3:aligned").view_geometry == "same"
    assert not images("objects:3:single").paired
    plain = images("objects:3:plain")
    assert all(plain.views(i)[1].background == PLAIN for i in range(0, 36, 7))
    assert len({plain.views(i)[0].background for i in range(36)}) > 1  # view 0 keeps every background
    for bad in ("objects:0", "objects:x", "objects:3:moved", "objects:3:plain:extra"):
        with pytest.raises(ValueError, match="objects:N"):
            images(bad)
