"""The results studies (experiments/studies): statistics on hand cases, and every study end to end with
``--budget smoke`` in a temporary folder (results.json keys, tables, figures)."""

from __future__ import annotations

import contextlib
import functools
import io
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from encoders import create_model
from experiments.studies import demo_seeds, invariance, navigation, noisy_tv, phase2_health, ppo_sweep
from experiments.studies.curves import binned_curves


def test_binned_curves_average_per_seed_then_over_seeds():
    curves = [(np.array([0.0, 1.0, 6.0]), np.array([1.0, 3.0, 10.0])), (np.array([2.0, 7.0]), np.array([4.0, 20.0]))]
    x, mean, half = binned_curves(curves, np.array([0.0, 5.0, 10.0]))
    np.testing.assert_allclose(x, [2.5, 7.5])
    np.testing.assert_allclose(mean, [3.0, 15.0])  # bin 0: seeds 2.0 and 4.0; bin 1: 10 and 20
    assert half[0] == pytest.approx(12.706 * math.sqrt(2) / math.sqrt(2), rel=1e-4)


def test_similarity_stats_hand_case():
    # 2 classes x 1 object x 2 colours; features = colour one-hot + shape one-hot (colour weighted 2x)
    f = torch.zeros(2, 1, 2, 4)
    for c in range(2):
        for k in range(2):
            f[c, 0, k, c] = 1.0  # shape
            f[c, 0, k, 2 + k] = 2.0  # colour
    s = invariance.similarity_stats(f)
    assert s["same_object_other_colour"] == pytest.approx(1 / 5)  # only the shape unit is shared
    assert s["other_class_same_colour"] == pytest.approx(4 / 5)  # only the colour unit is shared
    assert s["margin"] == pytest.approx(-3 / 5) and math.isnan(s["same_class_other_colour"])


def _run(main, argv) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(argv) == 0
    return out.getvalue()


def _check_outputs(out: Path, figures: tuple[str, ...]) -> dict:
    for name in ("config.json", "raw.json", "results.json", "table.md", *figures):
        assert (out / name).exists(), name
    for name in figures:
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    results = json.loads((out / "results.json").read_text())
    assert {"summary", "wall_seconds", "notes"} <= set(results)
    assert json.loads((out / "config.json").read_text())["budget"] == "smoke"
    return results


def test_invariance_smoke(tmp_path):
    out, weights = tmp_path / "inv", tmp_path / "mine.pth"
    torch.save(create_model("vit_pico_patch14").state_dict(), weights)
    argv = ["--budget", "smoke", "--out", str(out), "--encoders-dir", str(tmp_path / "enc")]
    argv += ["--official-arch", "vit_pico_patch14", "--official-weights", str(weights), "--official-label", "mine"]
    _run(invariance.main, argv)
    results = _check_outputs(out, ("invariance.png",))
    rows = results["summary"]
    assert "pixels" in rows and "random init (vit_pico_patch14) [cls]" in rows
    assert "mine vit_pico_patch14 [cls]" in rows  # the checkpoint row, under its --official-label
    assert rows["HOG"]["margin"]["n"] == 2  # the hand-made baseline
    for metric in (*invariance.SIMILARITIES, *invariance.KNN):
        assert rows["pixels"][metric]["n"] == 2
    raw = json.loads((out / "raw.json").read_text())
    assert set(raw) == {"0", "1"}


def test_navigation_smoke(tmp_path):
    out = tmp_path / "nav"
    text = _run(navigation.main, ["--budget", "smoke", "--out", str(out), "--encoders-dir", str(tmp_path / "enc")])
    results = _check_outputs(out, ("navigation_curves.png", "navigation_test.png"))
    rows = results["summary"]["ImageNav-v0"]
    smoke_arms = navigation.BUDGETS["smoke"]["arms"]
    assert set(rows) == {label for label, arm, _ in navigation.ROWS if arm in smoke_arms}
    assert rows["random walk"]["success"]["n"] == 2 and "| full two-phase |" in text
    # rliable: IQM with a stratified-bootstrap interval, probability of improvement over the reference row
    iqm = rows["PPO + RND"]["success_iqm"]
    assert iqm["n"] == 2 and iqm["low"] <= iqm["iqm"] <= iqm["high"]
    assert rows["PPO + RND"]["improvement"]["over"] == "PPO, extrinsic only"
    assert 0 <= rows["full two-phase"]["improvement"]["p"] <= 1 and "P(success > ref)" in text
    run = Path(results["runs"]["ImageNav-v0"]["two_phase"]["1"])
    assert json.loads((run / "config.json").read_text())["phase2_steps"] > 0
    assert rows["PPO, extrinsic only"]["improvement"]["over"] == "blind persistent walk"


def test_ppo_sweep_smoke(tmp_path):
    out = tmp_path / "sweep"
    argv = ["--budget", "smoke", "--settings", "base", "--out", str(out), "--encoders-dir", str(tmp_path / "enc")]
    text = _run(ppo_sweep.main, argv)
    results = _check_outputs(out, ())
    rows = results["summary"]
    assert list(rows) == [
        "oracle / base",
        "pixels / base",
        "oracle / random walk",
        "oracle / blind persistent walk",
        "oracle / recognition + persistent walk",
        "pixels / random walk",
        "pixels / blind persistent walk",
        "pixels / recognition + persistent walk",
    ]
    assert rows["oracle / base"]["success"]["n"] == 2 and "train success" in text
    assert (
        0 <= rows["oracle / base"]["p_beats_blind"]["p"] <= 1
        and "p_beats_blind" not in rows["oracle / blind persistent walk"]
    )
    run = out / "runs" / "ObjectNav-v0" / "oracle_base__seed1"
    config = json.loads((run / "config.json").read_text())
    assert config["observation"] == "oracle" and config["phase1_steps"] > 0 and config["curiosity"]["space"] == "none"
    assert (run / "eval" / "summary_train.json").exists()


def test_noisy_tv_smoke(tmp_path):
    out = tmp_path / "tv"
    text = _run(noisy_tv.main, ["--budget", "smoke", "--out", str(out), "--encoders-dir", str(tmp_path / "enc")])
    results = _check_outputs(out, ("noisy_tv_train.png", "noisy_tv_test.png", "probe_spontaneous.png"))
    summary = results["summary"]
    keys = {f"{tv}/curiosity/{s}" for tv in ("spontaneous", "remote") for s in ("train", "test")}
    assert set(summary) == keys | {"remote/extrinsic/train", "remote/extrinsic/test"}
    assert list(summary["remote/extrinsic/train"]) == ["oracle", "random walk", "blind persistent walk"]
    rows = summary["remote/curiosity/train"]
    assert list(rows) == ["pixels", "HOG", "oracle", "random walk", "blind persistent walk"]
    assert rows["oracle"]["tv_fraction"]["n"] == 2 and 0.0 <= rows["random walk"]["tv_fraction"]["mean"] <= 1.0
    assert 0.0 <= rows["oracle"]["less_tv_than_pixels"]["p"] <= 1.0 and "less_tv_than_pixels" not in rows["pixels"]
    assert rows["pixels"]["remote_presses"]["mean"] >= 0.0 and "remote presses" in text
    probe = results["probe"]["spontaneous/pixels"]
    assert len(probe["tv"]) == len(probe["elsewhere"]) == 2 and probe["floor"] > 0  # the noise has a floor in pixels
    assert results["probe"]["spontaneous/oracle"]["floor"] == pytest.approx(0.0, abs=1e-6)  # ... not in the oracle
    assert set(results["pool_sizes"]) == {"2", "4"} and "**Frame pool size**" in text
    run = json.loads((out / "runs" / "ObjectNav-v0" / "remote__hog__curiosity__seed1" / "config.json").read_text())
    assert run["tv"] == "remote" and run["curiosity"]["space"] == "hog" and run["extrinsic_coef"] == 0.0


@pytest.mark.slow
def test_phase2_health_smoke(tmp_path):
    out = tmp_path / "p2"
    _run(phase2_health.main, ["--budget", "smoke", "--out", str(out), "--encoders-dir", str(tmp_path / "enc")])
    results = _check_outputs(out, ("phase2_health.png",))
    assert set(results["summary"]) == {"ema", "online"}
    assert set(results["summary"]["ema"]) == set(phase2_health.METRICS)


def _summary(success: float, spl: float) -> dict:
    return {m: {"mean": v, "ci95": 0.0, "n": 200} for m, v in zip(demo_seeds.METRICS, (success, spl, spl, 0.1))}


def test_demo_seeds_aggregate_pairs_the_blind_walk_by_seed():
    blind = "blind persistent walk"
    per_seed = {
        1: {"phase-2 end": _summary(0.4, 0.2), blind: _summary(0.2, 0.1)},
        3: {"phase-2 end": _summary(0.3, 0.1), blind: _summary(0.35, 0.05)},
    }
    s = demo_seeds.aggregate(per_seed)
    assert s["phase-2 end"]["success"]["mean"] == pytest.approx(0.35) and s["phase-2 end"]["success"]["n"] == 2
    diff = s["phase-2 end"]["success_minus_baseline"]  # per seed 0.2 and -0.05: mean 0.075, s = 0.1768, t(1) = 12.706
    assert diff["mean"] == pytest.approx(0.075) and diff["ci95"] == pytest.approx(12.706 * 0.125, rel=1e-4)
    assert s["phase-2 end"]["seeds_above_baseline"] == 1 and "success_minus_baseline" not in s[blind]
    text = demo_seeds.table(s, per_seed)
    assert "| phase-2 end | 2 | 0.350 ± 0.635 |" in text and "| 1 of 2 | 0.400, 0.300 |" in text
    assert s["phase-2 end"]["improvement"]["p"] == pytest.approx(0.75)  # 0.4 beats both, 0.3 beats 0.2 only
    assert s[blind]["success_iqm"]["iqm"] == pytest.approx(0.275) and "improvement" not in s[blind]


def test_noisy_tv_refuses_an_unknown_space_or_a_missing_supervised_encoder_before_any_work(tmp_path):
    enc = tmp_path / "enc"
    argv = ["--budget", "cpu", "--out", str(tmp_path / "out"), "--encoders-dir", str(enc)]
    with pytest.raises(ValueError, match=r"--spaces: unknown \['bogus'\]"):
        noisy_tv.main([*argv, "--spaces", "pixels", "bogus"])
    with pytest.raises(ValueError, match="needs --supervised-weights"):
        noisy_tv.main([*argv, "--spaces", "supervised"])
    with pytest.raises(ValueError, match="--grid: 'noise:pixels'"):
        noisy_tv.main([*argv, "--grid", "noise:pixels"])
    assert not enc.exists() and not (tmp_path / "out").exists()


@pytest.mark.parametrize("study", [navigation])
def test_an_unknown_arm_fails_before_any_encoder_work(tmp_path, study):
    enc = tmp_path / "enc"
    argv = ["--budget", "cpu", "--out", str(tmp_path / "out"), "--encoders-dir", str(enc), "--arms", "ppo", "bogus"]
    with pytest.raises(ValueError, match=r"--arms: unknown arm\(s\) \['bogus'\]; choose from "):
        study.main(argv)  # the cpu budget would pretrain the shared encoder into enc/ first if it got that far
    assert not enc.exists() and not (tmp_path / "out").exists()


def test_navigation_summary_pairs_each_row_with_its_first_present_reference(monkeypatch):
    for name in ("iqm_ci", "probability_of_improvement"):  # fewer bootstrap draws: the intervals are not checked
        monkeypatch.setattr(navigation, name, functools.partial(getattr(navigation, name), reps=200))

    def seeds(*success: float) -> dict[str, dict[str, float]]:
        return {str(k + 1): {"success": v, "spl": v / 2, "coverage": 0.1, "soft_spl": 0} for k, v in enumerate(success)}

    raw = {
        "ObjectNav-v0": {
            "random walk": seeds(0.2, 0.2, 0.3),
            "PPO, extrinsic only": seeds(0.3, 0.4, 0.5),
            "PPO + pixel curiosity": seeds(0.4, 0.4, 0.7),
            "PPO + RND": seeds(0.1, 0.2, 0.3),
        }
    }
    summary = navigation.summarize(raw)
    rows = summary["ObjectNav-v0"]
    assert "improvement" not in rows["random walk"]
    # the semantic-curiosity row is absent, so the other curiosity spaces fall back to extrinsic PPO
    assert rows["PPO + pixel curiosity"]["improvement"]["over"] == "PPO, extrinsic only"
    diff = rows["PPO + pixel curiosity"]["success_diff"]  # per seed 0.1, 0.0, 0.2: mean 0.1, s 0.1, t(2) = 4.303
    assert diff["mean"] == pytest.approx(0.1) and diff["ci95"] == pytest.approx(4.303 * 0.1 / 3**0.5, rel=1e-3)
    assert rows["PPO + pixel curiosity"]["spl_diff"]["mean"] == pytest.approx(0.05)
    assert rows["PPO + RND"]["success_diff"]["mean"] == pytest.approx(-0.2)
    assert rows["PPO, extrinsic only"]["improvement"]["over"] == "random walk"
    assert rows["PPO, extrinsic only"]["improvement"]["p"] == pytest.approx(8.5 / 9)  # one tie in 9 pairs
    text = navigation.table(summary, 96)
    assert "success - ref (paired)" in text and "| 0.100 ± 0.248 |" in text


def test_noisy_tv_summary_ratios_to_the_random_walk_of_the_same_seed_and_p_against_pixels(monkeypatch):
    monkeypatch.setattr(noisy_tv, "probability_of_improvement",
                        functools.partial(noisy_tv.probability_of_improvement, reps=200))  # fmt: skip

    def seeds(*pairs: tuple[float, float]) -> dict[str, dict[str, dict[str, float]]]:
        def row(tv: float) -> dict[str, float]:
            return {"tv_fraction": tv, "remote_presses": 0.0, "coverage": 0.1, "success": 0.5}

        return {str(k + 1): {"policy": row(p), "random walk": row(w)} for k, (p, w) in enumerate(pairs)}

    pixels, oracle = seeds((0.4, 0.2), (0.6, 0.3)), seeds((0.2, 0.2), (0.1, 0.3))
    raw = {"spontaneous/curiosity/train": {"pixels": pixels, "oracle": oracle}}
    rows = noisy_tv.summarize(raw)["spontaneous/curiosity/train"]
    assert list(rows) == ["pixels", "oracle", "random walk"]
    assert rows["pixels"]["tv_ratio"]["mean"] == pytest.approx(2.0)  # 0.4 / 0.2 and 0.6 / 0.3
    assert rows["oracle"]["tv_ratio"]["mean"] == pytest.approx((1.0 + 1 / 3) / 2)
    assert rows["oracle"]["less_tv_than_pixels"]["p"] == pytest.approx(1.0)  # every oracle seed below every pixel one
    assert rows["random walk"]["tv_fraction"]["mean"] == pytest.approx(0.25)
    text = noisy_tv.tables(noisy_tv.summarize(raw), {})
    assert "**TV `spontaneous`, pure curiosity, train scenes**" in text and "| 2.00 ± 0.00 |" in text


def test_demo_seeds_smoke(tmp_path):
    out = tmp_path / "demo"
    text = _run(demo_seeds.main, ["--budget", "smoke", "--out", str(out)])
    results = _check_outputs(out, ())
    references = {"random walk", "blind persistent walk", "recognition + persistent walk"}
    assert set(results["summary"]) == {"phase-1 end", "phase-2 end"} | references
    assert results["summary"]["random walk"]["success"]["n"] == 2 and "| phase-2 end | 2 |" in text
    for seed in (1, 2):
        run = json.loads((out / "runs" / f"seed{seed}" / "config.json").read_text())
        assert run["seed"] == seed
