"""Launching a study's sub-runs: in this process one after the other (the default), in ``--workers N`` local
processes, or as SLURM jobs through submitit (``--launcher slurm``; ``--launcher submitit-local`` is submitit's
local executor, the same code path on one machine), the way DINOv2's ``dinov2/run/submit.py`` launches its jobs.

A sub-run is a picklable description of one run folder (a config object and its ``run_dir``, see
:class:`SubRun`), never an argv string. It decides itself whether its folder is finished (reused), interrupted
(resumed) or stale (replaced), so results, resume and the run folders are the same whichever launcher runs it;
the study reads the folders once every sub-run has finished. Launchers only decide *where* ``subrun()`` runs.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, Protocol, runtime_checkable

from encoders.utils.config import AT_LEAST_1, NON_NEGATIVE, POSITIVE, check_fields

logger = logging.getLogger("experiments.studies.launch")

LauncherName = Literal["local", "submitit-local", "slurm"]


@runtime_checkable
class SubRun(Protocol):
    """One run folder of a study. Implementations are picklable dataclasses (config objects and paths)."""

    @property
    def run_dir(self) -> Path:
        """The run folder this sub-run writes (and only this one)."""
        ...

    def check(self) -> None:
        """Raise ``ValueError`` on a bad config, before any sub-run starts."""
        ...

    def done(self) -> bool:
        """Whether the folder already holds this sub-run, finished (then calling it does nothing)."""
        ...

    def __call__(self) -> None:
        """Run, resume or reuse the folder; raise on failure."""
        ...


@dataclass
class SlurmOptions:
    """SLURM resources of each sub-run (``--launcher slurm``; one task per sub-run, a job array per study)."""

    partition: str | None = None
    """SLURM partition (none: the cluster's default)"""
    time: Annotated[int, AT_LEAST_1] = 240
    """time limit per sub-run in minutes (a sub-run cut by it is requeued and resumes from its checkpoints)"""
    gpus: Annotated[int, NON_NEGATIVE] = 0
    """GPUs per sub-run (add --rl.device cuda or leave it auto)"""
    cpus: Annotated[int, AT_LEAST_1] = 2
    """CPU cores per sub-run"""
    mem_gb: Annotated[float, POSITIVE] = 16.0
    """memory per sub-run in GB"""
    parallel: Annotated[int, AT_LEAST_1] = 64
    """most sub-runs running at once (the job array's throttle)"""
    max_requeues: Annotated[int, NON_NEGATIVE] = 3
    """times a sub-run cut by the time limit or a preemption is requeued"""
    account: str | None = None
    """SLURM account (none: the user's default)"""
    qos: str | None = None
    """SLURM quality of service (none: the default)"""


@dataclass
class LaunchOptions:
    """How a study runs its sub-runs (mixed into every study config that has sub-runs)."""

    launcher: LauncherName = "local"
    """local: this machine (in this process, or --workers processes); slurm: SLURM jobs through submitit;
    submitit-local: submitit's local executor (each sub-run its own job on this machine)"""
    workers: Annotated[int, AT_LEAST_1] = 1
    """local launcher: sub-runs at once, each in its own process (1: one after the other in this process)"""
    submitit_dir: Path | None = None
    """submitit's job folder (pickles, logs); none: <out>/submitit"""
    slurm: SlurmOptions = field(default_factory=SlurmOptions)


def check_options(options: LaunchOptions) -> None:
    """``ValueError`` naming the flag and the fix for bad launch options."""
    check_fields(options)  # every field's type and range (a study's own fields too)
    if options.workers > 1 and options.launcher != "local":
        raise ValueError(f"--workers applies to --launcher local; --launcher {options.launcher} runs jobs in parallel")


def launch(subruns: Sequence[SubRun], options: LaunchOptions, out: Path) -> None:
    """Run every sub-run not yet done with the launcher of ``options``; return once all have finished.

    Bad configs raise ``ValueError`` before anything runs. The local launcher with one worker runs in this process
    and stops at the first failure (the current behaviour of the studies); the others let every sub-run finish and
    then raise ``RuntimeError`` naming the failed run folders (a rerun reuses the finished ones)."""
    check_options(options)
    dirs = [s.run_dir for s in subruns]
    if len(set(dirs)) != len(dirs):
        raise ValueError(
            f"two sub-runs write the same run folder: {sorted({str(d) for d in dirs if dirs.count(d) > 1})}"
        )
    for s in subruns:
        s.check()
    todo = [s for s in subruns if not s.done()]
    logger.info("%d sub-runs: %d finished (reused), %d to run", len(subruns), len(subruns) - len(todo), len(todo))
    if not todo:
        return
    t0 = time.perf_counter()
    if options.launcher == "local" and options.workers == 1:
        for k, s in enumerate(todo, 1):
            logger.info("sub-run %d of %d: %s", k, len(todo), s.run_dir)
            s()
    elif options.launcher == "local":
        _raise_failures(_run_processes(todo, options.workers), len(todo))
    else:
        _raise_failures(_run_submitit(todo, options, options.submitit_dir or out / "submitit"), len(todo))
    logger.info("%d sub-runs in %.0f s", len(todo), time.perf_counter() - t0)


def _raise_failures(failures: dict[Path, str], n: int) -> None:
    if failures:
        lines = "\n".join(f"  {d}: {why}" for d, why in failures.items())
        raise RuntimeError(f"{len(failures)} of {n} sub-runs failed (rerun the study to retry them):\n{lines}")


def run_in_worker(subrun: SubRun) -> None:
    """What a worker process or a submitit job runs: the logging set-up of a fresh process, then the sub-run."""
    from encoders.utils.logging import setup_logging

    setup_logging()
    subrun()


def _run_processes(todo: Sequence[SubRun], workers: int) -> dict[Path, str]:
    """The sub-runs in ``workers`` spawned processes (spawn: a fork would copy torch's thread pools)."""
    import multiprocessing

    failures: dict[Path, str] = {}
    with ProcessPoolExecutor(
        max_workers=min(workers, len(todo)), mp_context=multiprocessing.get_context("spawn")
    ) as pool:
        futures = {pool.submit(run_in_worker, s): s for s in todo}
        for k, future in enumerate(as_completed(futures), 1):
            s = futures[future]
            try:
                future.result()
                logger.info("sub-run %d of %d finished: %s", k, len(todo), s.run_dir)
            except Exception as e:  # every other sub-run still finishes
                failures[s.run_dir] = f"{type(e).__name__}: {e}"
                logger.error("sub-run %s failed: %s", s.run_dir, failures[s.run_dir])
    return failures


@dataclass
class SubmititJob:
    """A sub-run as a submitit callable; on a time limit or preemption submitit calls :meth:`checkpoint`, which
    requeues the same sub-run (it resumes from its run folder's checkpoints)."""

    subrun: Any

    def __call__(self) -> None:
        run_in_worker(self.subrun)

    def checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        import submitit

        return submitit.helpers.DelayedSubmission(SubmititJob(self.subrun))


def submitit_executor(options: LaunchOptions, folder: Path) -> Any:
    """The submitit executor of ``options``: SLURM (``--launcher slurm``) or the local one, with one task per job."""
    try:
        import submitit
    except ImportError as e:
        raise ValueError(
            f"--launcher {options.launcher} needs submitit: pip install -e '.[cluster]' (or pip install submitit)"
        ) from e
    s = options.slurm
    cluster = "slurm" if options.launcher == "slurm" else "local"
    try:
        executor = submitit.AutoExecutor(folder=folder, cluster=cluster, slurm_max_num_timeout=s.max_requeues)
    except RuntimeError as e:  # no srun on this machine
        raise ValueError(f"--launcher slurm: {e} Run on a SLURM login node, or use --workers N here") from e
    params: dict[str, Any] = {
        "name": "semnav-study",
        "timeout_min": s.time,
        "tasks_per_node": 1,
        "nodes": 1,
        "cpus_per_task": s.cpus,
        "gpus_per_node": s.gpus,
        "mem_gb": s.mem_gb,
    }
    if cluster == "slurm":
        params["slurm_array_parallelism"] = s.parallel
        params["slurm_signal_delay_s"] = 120  # time to save a checkpoint before the limit (DINOv2 uses 120 s)
        extra = {"partition": s.partition, "account": s.account, "qos": s.qos}
        params.update({f"slurm_{k}": v for k, v in extra.items() if v})
    executor.update_parameters(**params)
    return executor


def _run_submitit(todo: Sequence[SubRun], options: LaunchOptions, folder: Path) -> dict[Path, str]:
    """Submit the sub-runs as one job array (SLURM) or local jobs, then wait for every job."""
    executor = submitit_executor(options, folder)
    with executor.batch():
        jobs = [executor.submit(SubmititJob(s)) for s in todo]
    logger.info("submitted %d jobs (%s, logs in %s): %s", len(jobs), options.launcher, folder, jobs[0].job_id)
    failures: dict[Path, str] = {}
    for k, (job, s) in enumerate(zip(jobs, todo), 1):
        try:
            job.result()
            logger.info("sub-run %d of %d finished (job %s): %s", k, len(todo), job.job_id, s.run_dir)
        except Exception as e:  # submitit's FailedJobError carries the job's traceback
            failures[s.run_dir] = f"job {job.job_id}: {type(e).__name__}: {str(e).strip().splitlines()[-1:]}"
    return failures


__all__ = ["LaunchOptions", "SlurmOptions", "SubRun", "SubmititJob", "check_options", "launch", "submitit_executor"]
