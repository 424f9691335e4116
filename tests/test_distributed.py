"""2 gloo processes x batch b == 1 process x batch 2b: same losses, same updated weights and centers, for
DDP (softmax centering, shared head) and FSDP (Sinkhorn-Knopp, separate iBOT head)."""

from __future__ import annotations

import socket

import pytest
import torch
import torch.multiprocessing as mp

from encoders.data.collate import pack_masks

pytestmark = pytest.mark.distributed

WORLD = 2
CASES = {
    "ddp": {"train.centering": "centering"},
    "fsdp": {"train.centering": "sinkhorn_knopp", "ibot.separate_head": True, "ibot.head_n_prototypes": 128},
}


def _cfg(case: str):
    from encoders.train.config import PRESETS, PretrainConfig
    from encoders.utils.config import replace_nested

    # KoLeo across ranks (not the official per-rank default), so that 2 x b is exactly 1 x 2b
    overrides = {"student.drop_path_rate": 0.0, "dino.koleo_across_ranks": True, **CASES[case]}
    return replace_nested(PretrainConfig(), {**PRESETS["pico"], **overrides})


def _batch(cfg, world: int, rank: int) -> dict:
    """Rank ``rank``'s share of a deterministic batch of ``world * b`` images (crop-major layout kept)."""
    b = cfg.train.batch_size_per_gpu
    g = torch.Generator().manual_seed(123)
    S, s, L = cfg.crops.global_crops_size, cfg.crops.local_crops_size, cfg.crops.local_crops_number
    total = 2 * b  # always draw the doubled batch, then slice
    glob = torch.randn(2, total, 3, S, S, generator=g)
    loc = torch.randn(L, total, 3, s, s, generator=g)
    masks = torch.rand(2, total, (S // 14) ** 2, generator=g) < 0.4
    masks[:, 1::3] = False  # some images unmasked: ranks get different numbers of masked patches
    sel = slice(rank * b, (rank + 1) * b) if world > 1 else slice(0, total)
    return {
        "collated_global_crops": glob[:, sel].flatten(0, 1),
        "collated_local_crops": loc[:, sel].flatten(0, 1),
        **pack_masks(masks[:, sel].flatten(0, 1)),
    }


def _one_step(case: str, world: int, rank: int) -> dict:
    from encoders.train.checkpointing import full_model_state_dict
    from encoders.train.schedules import apply_optim_scheduler
    from encoders.train.ssl_meta_arch import SSLMetaArch
    from encoders.utils.seed import seed_everything

    cfg = _cfg(case)
    seed_everything(0)
    model = SSLMetaArch(cfg)
    if world > 1:
        model.prepare_for_distributed_training(case)
    opt = torch.optim.AdamW(model.get_params_groups())
    apply_optim_scheduler(opt, lr=1e-3, wd=0.04, last_layer_lr=1e-3)
    model.train()
    losses = model.forward_backward(_batch(cfg, world, rank), teacher_temp=0.05)
    grad_norm = model.clip_grad_norm_(3.0)
    opt.step()
    model.update_teacher(0.9)
    model.dino_loss.apply_center_update()
    model.ibot_patch_loss.apply_center_update()
    state = full_model_state_dict(model)
    return {"losses": {k: v.item() for k, v in losses.items()}, "grad_norm": grad_norm.item(), "state": state}


def _worker(rank: int, port: int, out_dir: str) -> None:
    import os

    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(WORLD))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
        results = {case: _one_step(case, WORLD, rank) for case in CASES}
        if rank != 0:
            for r in results.values():
                r.pop("state")
        torch.save(results, f"{out_dir}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def two_rank_results(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist")
    mp.start_processes(_worker, args=(_free_port(), str(out)), nprocs=WORLD, start_method="spawn")
    return [torch.load(out / f"rank{r}.pt", weights_only=True) for r in range(WORLD)]


@pytest.mark.parametrize("case", list(CASES))
def test_two_ranks_equal_one_rank_with_doubled_batch(case, two_rank_results):
    single = _one_step(case, world=1, rank=0)
    ranks = [r[case] for r in two_rank_results]
    for key, value in single["losses"].items():
        if key in ("student_cls_std", "head_spread", "teacher_crossview_same", "teacher_crossview_other"):  # per rank
            continue
        mean = sum(r["losses"][key] for r in ranks) / WORLD
        assert mean == pytest.approx(value, rel=1e-5, abs=1e-5), key
    assert ranks[0]["grad_norm"] == pytest.approx(single["grad_norm"], rel=1e-5)
    dist_state = ranks[0]["state"]
    assert dist_state.keys() == single["state"].keys()
    for k, v in single["state"].items():
        torch.testing.assert_close(dist_state[k], v, atol=2e-5, rtol=1e-4, msg=k)
    # the step changed the weights, the teacher moved, the centers were updated (softmax centering)
    assert not torch.equal(single["state"]["student.backbone.pos_embed"], single["state"]["teacher.backbone.pos_embed"])
    if case == "ddp":
        assert single["state"]["dino_loss.center"].abs().sum() > 0
        assert single["state"]["ibot_patch_loss.center"].abs().sum() > 0
