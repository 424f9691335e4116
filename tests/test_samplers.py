"""ShardedInfiniteSampler: disjoint covering shards, epoch reshuffles, determinism, exact resume."""

from __future__ import annotations

from itertools import islice

import pytest
import torch

from encoders.data.samplers import ShardedInfiniteSampler


def take(sampler: ShardedInfiniteSampler, n: int) -> list[int]:
    return list(islice(iter(sampler), n))


def shard_counts(n: int, world: int) -> list[int]:
    """How many positions of one epoch (stream positions [0, n)) each rank owns."""
    return [len(range(r, n, world)) for r in range(world)]


@pytest.mark.parametrize(("n", "world"), [(10, 2), (10, 3), (12, 3), (7, 1)])
def test_ranks_are_disjoint_and_cover_each_epoch(n, world):
    samplers = [ShardedInfiniteSampler(n, rank=r, world_size=world, seed=3) for r in range(world)]
    streams = [take(s, 3 * n) for s in samplers]
    # Rank r owns stream positions r, r + W, ...; split each rank's samples by the epoch of their position.
    for epoch in range(2):
        shards = []
        for r, stream in enumerate(streams):
            positions = [r + k * world for k in range(len(stream))]
            shards.append([i for i, p in zip(stream, positions) if epoch * n <= p < (epoch + 1) * n])
        if epoch == 0:
            assert [len(s) for s in shards] == shard_counts(n, world)  # balanced to within one sample
        flat = [i for s in shards for i in s]
        assert sorted(flat) == list(range(n))  # covering and disjoint


def test_epochs_are_reshuffled_with_seed_plus_epoch():
    s = ShardedInfiniteSampler(20, seed=7)
    stream = take(s, 60)
    epochs = [stream[k * 20 : (k + 1) * 20] for k in range(3)]
    assert all(sorted(e) == list(range(20)) for e in epochs)
    assert epochs[0] != epochs[1] != epochs[2]
    assert epochs[0] == torch.randperm(20, generator=torch.Generator().manual_seed(7)).tolist()
    assert epochs[1] == torch.randperm(20, generator=torch.Generator().manual_seed(8)).tolist()


def test_deterministic_and_seed_dependent():
    a = take(ShardedInfiniteSampler(50, rank=1, world_size=2, seed=0), 80)
    b = take(ShardedInfiniteSampler(50, rank=1, world_size=2, seed=0), 80)
    c = take(ShardedInfiniteSampler(50, rank=1, world_size=2, seed=1), 80)
    assert a == b and a != c


def test_no_shuffle_is_sequential_and_sharded():
    assert take(ShardedInfiniteSampler(5, shuffle=False), 12) == [0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 0, 1]
    assert take(ShardedInfiniteSampler(5, rank=1, world_size=2, shuffle=False), 6) == [1, 3, 0, 2, 4, 1]


@pytest.mark.parametrize(("n", "world", "consumed"), [(10, 1, 4), (10, 3, 3), (10, 3, 7), (11, 2, 13), (6, 2, 0)])
def test_resume_continues_the_same_stream(n, world, consumed):
    for rank in range(world):
        full = take(ShardedInfiniteSampler(n, rank=rank, world_size=world, seed=5), consumed + 25)
        resumed = take(ShardedInfiniteSampler(n, rank=rank, world_size=world, seed=5, start_index=consumed), 25)
        assert resumed == full[consumed:]


def test_world_batches_equal_one_rank_with_world_times_batch():
    # W ranks with batch b see, at each step, the same samples as 1 rank with batch W*b.
    n, world, b = 13, 2, 3
    single = take(ShardedInfiniteSampler(n, seed=2), 5 * world * b)
    per_rank = [take(ShardedInfiniteSampler(n, rank=r, world_size=world, seed=2), 5 * b) for r in range(world)]
    for step in range(5):
        together = sorted(i for r in range(world) for i in per_rank[r][step * b : (step + 1) * b])
        assert together == sorted(single[step * world * b : (step + 1) * world * b])


def test_works_as_dataloader_sampler():
    ds = torch.arange(100, 110)
    loader = torch.utils.data.DataLoader(ds, batch_size=4, sampler=ShardedInfiniteSampler(10, seed=0))
    batches = list(islice(iter(loader), 5))  # 20 samples: more than one epoch
    assert all(b.shape == (4,) for b in batches)
    assert sorted(torch.cat(batches)[:10].tolist()) == list(range(100, 110))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"dataset_size": 0}, "dataset_size"),
        ({"dataset_size": 5, "world_size": 0}, "world_size"),
        ({"dataset_size": 5, "rank": 2, "world_size": 2}, "rank"),
        ({"dataset_size": 5, "start_index": -1}, "start_index"),
    ],
)
def test_invalid_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ShardedInfiniteSampler(**kwargs)
