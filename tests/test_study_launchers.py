"""A study's sub-runs launched three ways give the same study: in this process one after the other, in
``--workers 2`` local processes, and through submitit's local executor (the code path of ``--launcher slurm``).
Same results.json (the wall times aside), the same run folders (files, configs, evaluations, training scalars);
and a rerun after a removed and a partial sub-run re-runs only those two."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path

import pytest

from experiments.studies import navigation
from experiments.studies.config import arm_run, parse_study_config
from experiments.studies.curves import read_scalars
from experiments.studies.launch import LaunchOptions, check_options, launch
from techniques.rl_navigation.trainer import TwoPhaseTrainer

#: navigation, smoke budget, one seed, two arms: a phase-1-only run and a two-phase one (~2 s each on 2 cores)
ARGV = ["--budget", "smoke", "--seeds", "1", "--arms", "ppo", "two_phase", "--out", "study", "--encoders-dir", "enc"]
RUNS = Path("study/runs/ImageNav-v0")
TIMING = ("wall_seconds", "notes", "run_seconds")


def _study(folder: Path, monkeypatch: pytest.MonkeyPatch, *flags: str) -> Path:
    """Run the study in ``folder`` (relative paths: every launcher writes byte-identical configs)."""
    folder.mkdir(parents=True, exist_ok=True)
    monkeypatch.chdir(folder)
    with contextlib.redirect_stdout(io.StringIO()):
        assert navigation.main([*ARGV, *flags]) == 0
    return folder


def _results(folder: Path) -> dict:
    results = json.loads((folder / "study" / "results.json").read_text())
    return {k: v for k, v in results.items() if k not in TIMING}


def _layout(folder: Path) -> list[str]:
    """Files of the run folders (TensorBoard event names carry host, pid and time)."""
    names = []
    for p in sorted((folder / RUNS).rglob("*")):
        if p.is_file():
            rel = p.relative_to(folder)
            names.append(str(rel.parent / "events") if p.name.startswith("events.out.tfevents") else str(rel))
    return names


def _scalars(run: Path) -> dict:
    """Every training scalar of a run but the timings."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run), size_guidance={"scalars": 0})
    acc.Reload()
    tags = [t for t in acc.Tags()["scalars"] if "fps" not in t and "seconds" not in t]
    return {tag: [v.tolist() for v in values] for tag, values in read_scalars(run, tags).items()}


def _assert_same_study(a: Path, b: Path) -> None:
    assert _results(a) == _results(b)
    assert json.loads((a / "study/raw.json").read_text()) == json.loads((b / "study/raw.json").read_text())
    assert _layout(a) == _layout(b)
    for arm in ("ppo", "two_phase"):
        run_a, run_b = a / RUNS / f"{arm}__seed1", b / RUNS / f"{arm}__seed1"
        for name in ("config.json", "study_config.json", "eval/summary_test.json"):
            assert json.loads((run_a / name).read_text()) == json.loads((run_b / name).read_text()), (arm, name)
        assert _scalars(run_a) == _scalars(run_b), arm


@pytest.fixture(scope="module")
def sequential(tmp_path_factory: pytest.TempPathFactory) -> Path:
    with pytest.MonkeyPatch.context() as mp:
        folder = _study(tmp_path_factory.mktemp("sequential"), mp)
    assert len(_scalars(folder / RUNS / "two_phase__seed1")["losses/forward"][1]) > 0
    assert not (folder / "study" / "submitit").exists()
    return folder


def test_workers_give_the_same_study(sequential, tmp_path, monkeypatch):
    parallel = _study(tmp_path, monkeypatch, "--workers", "2")
    _assert_same_study(sequential, parallel)
    assert json.loads((parallel / "study/config.json").read_text())["workers"] == 2


def test_submitit_local_executor_gives_the_same_study(sequential, tmp_path, monkeypatch):
    pytest.importorskip("submitit")
    jobs = _study(tmp_path, monkeypatch, "--launcher", "submitit-local", "--slurm.cpus", "1")
    _assert_same_study(sequential, jobs)
    logs = sorted(p.name for p in (jobs / "study" / "submitit").iterdir())
    assert any(name.endswith("_result.pkl") for name in logs) and any(name.endswith(".out") for name in logs)


def test_rerun_after_a_removed_and_a_partial_subrun_runs_only_those(sequential, tmp_path, monkeypatch):
    folder = tmp_path / "resumed"
    shutil.copytree(sequential, folder)
    shutil.rmtree(folder / RUNS / "ppo__seed1")  # removed: run again from scratch
    partial = folder / RUNS / "two_phase__seed1"  # stopped in phase 2: resumed from its phase-1-end checkpoint
    for name in ("study_time.json", "eval", "checkpoints/final", "checkpoints/latest"):
        path = partial / name
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    (partial / "checkpoints" / "latest").write_text("phase1_end")
    resumed = []
    resume = TwoPhaseTrainer.resume.__func__

    def recording_resume(cls, run_dir, overrides=None):
        resumed.append(Path(run_dir))
        return resume(cls, run_dir, overrides)

    monkeypatch.setattr(TwoPhaseTrainer, "resume", classmethod(recording_resume))
    _study(folder, monkeypatch)
    assert resumed == [RUNS / "two_phase__seed1"]  # resumed, not trained again; the removed one started afresh
    assert _results(folder) == _results(sequential)
    assert json.loads((partial / "eval/summary_test.json").read_text()) == json.loads(
        (sequential / RUNS / "two_phase__seed1/eval/summary_test.json").read_text()
    )
    stamps = {p: p.stat().st_mtime_ns for p in (folder / RUNS).rglob("study_time.json")}
    _study(folder, monkeypatch)  # everything finished: nothing runs again
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps


def test_bad_launch_options_fail_before_any_subrun(tmp_path):
    with pytest.raises(ValueError, match="--workers must be >= 1"):
        check_options(LaunchOptions(workers=0))
    with pytest.raises(ValueError, match="--workers applies to --launcher local"):
        check_options(LaunchOptions(launcher="slurm", workers=4))
    cfg = navigation.NavigationConfig(out=tmp_path)
    bad = arm_run(cfg, "ImageNav-v0", "ppo", {"n_envs": 0}, 1)
    with pytest.raises(ValueError, match="n-envs"):
        launch([bad], LaunchOptions(), tmp_path)
    with pytest.raises(ValueError, match="same run folder"):
        launch([bad, bad], LaunchOptions(), tmp_path)
    assert not (tmp_path / "runs").exists()


def test_slurm_options_become_the_job_arrays_parameters(tmp_path, monkeypatch):
    pytest.importorskip("submitit")
    from experiments.studies.launch import submitit_executor

    cfg = parse_study_config(
        navigation.NavigationConfig,
        ["--launcher", "slurm", "--slurm.partition", "gpu", "--slurm.time", "120", "--slurm.gpus", "1"],
        navigation.BUDGETS,
        "",
    )
    monkeypatch.setenv("PATH", "")  # no srun: a clear error, before anything is submitted
    with pytest.raises(ValueError, match=r"--launcher slurm: .*srun"):
        submitit_executor(cfg, tmp_path / "jobs")
    srun = tmp_path / "bin" / "srun"  # a stand-in, so that submitit builds its SLURM executor here
    srun.parent.mkdir()
    srun.write_text("#!/bin/sh\n")
    srun.chmod(0o755)
    monkeypatch.setenv("PATH", str(srun.parent))
    params = submitit_executor(cfg, tmp_path / "jobs")._executor.parameters
    assert params["partition"] == "gpu" and params["time"] == 120 and params["gpus_per_node"] == 1
    assert params["cpus_per_task"] == 2 and params["ntasks_per_node"] == 1 and params["array_parallelism"] == 64
    assert params["signal_delay_s"] == 120 and "account" not in params
