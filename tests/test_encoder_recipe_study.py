"""The encoder-recipe sweep end to end with ``--budget smoke``: pretraining per setting, the four evaluation sets,
the baselines, the table, and reuse of finished runs."""

from __future__ import annotations

import json
import pickle

import pytest

from experiments.studies import encoder_recipe


def test_encoder_recipe_smoke_and_rerun_reuses_finished_runs(tmp_path, capsys):
    out = tmp_path / "study"
    argv = ["--budget", "smoke", "--out", str(out), "--settings", "laptop", "paired", "--curve", "1"]
    assert encoder_recipe.main(argv) == 0
    results = json.loads((out / "results.json").read_text())
    assert set(results["baselines"]) == {
        "raw pixels 16x16",
        "gray pixels 16x16",
        "HOG (14 px cells, 9 bins)",
        "random-init vit_mini",
    }
    for name in ("laptop", "paired"):
        scores = results["settings"][name]["0"]["scores"]
        cls_keys = {
            "textured", "textured_background", "plain", "textured_shift", "textured_shift_background", "plain_shift"
        }  # fmt: skip
        assert set(scores) == cls_keys | {f"patch_mean/{k}" for k in cls_keys}
        assert all(0.0 <= v <= 1.0 for v in scores.values())
        entry = results["settings"][name]["0"]
        # the run stopped at iteration 1 of 2, was evaluated and resumed; the end is the curve's last point
        assert [p["iteration"] for p in entry["curve"]] == [1, 2]
        assert entry["curve"][-1]["scores"] == scores
        assert 0 < entry["curve"][0]["wall_seconds"] < entry["curve"][1]["wall_seconds"]
        assert entry["pretraining"]["wall_seconds"] == entry["curve"][1]["wall_seconds"]
    assert set(results["supervised"]["laptop"]["0"]["scores"]) == set(scores)
    assert [p["iteration"] for p in results["supervised"]["laptop"]["0"]["curve"]] == [1, 2]
    table = (out / "table.md").read_text()
    assert "supervised reference (labels" in table
    assert "| `laptop` (1 seed)" in table and "| HOG (14 px cells, 9 bins) |" in table
    assert "| labels (laptop) | 1 |" in table and (out / "curves.png").exists()  # the curve table and figure
    summary = out / "runs" / "laptop__s0" / "study_summary.json"
    stamp = summary.stat().st_mtime_ns
    capsys.readouterr()
    assert encoder_recipe.main(argv) == 0  # finished runs are reused, not retrained
    assert summary.stat().st_mtime_ns == stamp
    # a sub-run without its scores is evaluated again (its pretraining reused), the others are reused
    (out / "runs" / "paired__s0" / encoder_recipe.SCORES_FILE).unlink()
    assert encoder_recipe.main(argv) == 0
    assert summary.stat().st_mtime_ns == stamp
    assert json.loads((out / "results.json").read_text())["settings"] == results["settings"]
    # what --workers and --launcher slurm send to another process: a picklable description
    subrun = encoder_recipe.RecipeRun(encoder_recipe.EncoderRecipeConfig(out=out), "laptop", 0, {"plain": out})
    assert pickle.loads(pickle.dumps(subrun)) == subrun and subrun.run_dir == out / "runs" / "laptop__s0"
    assert encoder_recipe.main(["--budget", "smoke", "--out", str(out), "--settings", "nope"]) == 2


def test_distilled_row_distils_the_same_seeds_teacher(tmp_path):
    out = tmp_path / "study"
    argv = ["--budget", "smoke", "--out", str(out), "--settings", "laptop_distilled_pico", "--no-supervised"]
    assert encoder_recipe.main(argv) == 0
    teacher, student = out / "runs" / "laptop_issue15__s0", out / "runs" / "laptop_distilled_pico__s0"
    assert (teacher / "teacher_backbone.pth").exists()  # the teacher was pretrained first
    assert (student / "student_backbone.pth").exists()
    config = json.loads((student / "config.json").read_text())
    assert config["teacher_weights"] == str(teacher / "checkpoint.pth")
    results = json.loads((out / "results.json").read_text())
    entry = results["settings"]["laptop_distilled_pico"]["0"]
    assert entry["pretraining"]["arch"] == "vit_pico_patch14" and 0.0 <= entry["scores"]["plain"] <= 1.0


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_laptop_recipe_beats_gray_pixels_on_textured_objects(tmp_path):
    """The 15-minute laptop recipe (object-sharing view pairs, 1,600 iterations) against the gray-pixel baseline on a
    small textured object set (20 train / 10 val images per class). About 15 minutes on 2 CPU cores."""
    out = tmp_path / "study"
    argv = ["--out", str(out), "--settings", "laptop", "--no-supervised", "--eval-train-per-class", "20",
            "--eval-val-per-class", "10"]  # fmt: skip
    assert encoder_recipe.main(argv) == 0
    results = json.loads((out / "results.json").read_text())
    laptop = results["settings"]["laptop"]["0"]["scores"]
    assert laptop["textured"] > results["baselines"]["gray pixels 16x16"]["textured"]
    assert laptop["textured_background"] < 0.9
