"""``torch.compile`` against eager for the RL trainer's two kinds of model work, in one run (CPU by default).

- **Forward model** (:class:`~techniques.rl_navigation.forward_model.ForwardModel`): one training step (loss,
  backward, Adam step) on a minibatch of ``--batch`` transitions, and the scoring of a rollout (``errors``).
- **Encoder top blocks** (phase 2): the top ``--unfreeze-layers`` blocks and the final norm of each encoder on
  ``--scenes`` cached boundary-token grids, forward with autograd plus backward (the deferred backward of an
  update) and forward alone (the refresh), under the project's ``--precision``.

Each row gives the eager and compiled milliseconds per call (best of ``--repeats`` timed loops after a warm-up),
their ratio, and the one-off compilation time of the first call; the encoder's inference path is measured by
``benchmarks.encoder_throughput --compile``.

    python -m benchmarks.compile_speedup
    python -m benchmarks.compile_speedup --encoders vit_tiny_patch14 --precision fp32
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch

import encoders
from encoders.utils.precision import PRECISIONS, autocast, autocast_dtype, describe
from techniques.rl_navigation.forward_model import ForwardModel


def _best_ms(fn: Callable[[], object], repeats: int, calls: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        best = min(best, (time.perf_counter() - t0) / calls)
    return 1e3 * best


def _compare(name: str, eager: Callable[[], object], compiled: Callable[[], object], args) -> dict:
    eager()  # warm-up (allocator)
    t0 = time.perf_counter()
    compiled()  # compiles
    compile_s = time.perf_counter() - t0
    compiled()
    e = _best_ms(eager, args.repeats, args.calls)
    c = _best_ms(compiled, args.repeats, args.calls)
    return {"name": name, "eager_ms": e, "compiled_ms": c, "compile_s": compile_s}


def forward_model_rows(dim: int, args) -> list[dict]:
    """Train step and scoring of a forward model on ``dim``-wide features."""
    torch.manual_seed(0)
    rows = []
    model = ForwardModel(dim, 4, hidden_dim=args.hidden)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    z, target = torch.randn(args.batch, dim), torch.randn(args.batch, dim)
    actions = torch.randint(0, 4, (args.batch,))

    def train_step(fn: Callable) -> Callable[[], None]:
        def step() -> None:
            loss = fn(z, actions, target)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

        return step

    def scoring(fn: Callable) -> Callable[[], torch.Tensor]:
        def score() -> torch.Tensor:
            with torch.no_grad():
                return fn(z, actions, target)

        return score

    loss_c, errors_c = torch.compile(model.loss), torch.compile(model.errors)
    rows.append(_compare(f"forward model D={dim}: train step", train_step(model.loss), train_step(loss_c), args))
    rows.append(_compare(f"forward model D={dim}: errors", scoring(model.errors), scoring(errors_c), args))
    return rows


def top_block_rows(name: str, args) -> list[dict]:
    """Forward + backward and forward alone of encoder ``name``'s top blocks."""
    rows = []
    torch.manual_seed(0)
    model = encoders.create_model(name).eval()
    model.unfreeze_top_layers(args.unfreeze_layers)
    start = model.n_blocks - args.unfreeze_layers
    n_tokens = 1 + (args.image_size // model.patch_size) ** 2
    tokens = torch.randn(args.scenes, n_tokens, model.embed_dim)
    dtype = autocast_dtype(args.precision, "cpu")

    def backward(fn: Callable) -> Callable[[], None]:
        def step() -> None:
            with autocast("cpu", dtype):
                out = fn(tokens, start)["x_norm_patchtokens"]
            out.float().square().mean().backward()

        return step

    def forward(fn: Callable) -> Callable[[], None]:
        def step() -> None:
            with torch.no_grad(), autocast("cpu", dtype):
                fn(tokens, start)

        return step

    compiled = torch.compile(model.forward_from_block)
    label = f"{name} top {args.unfreeze_layers} blocks x {args.scenes} grids, {describe(dtype)}"
    eager = model.forward_from_block
    rows.append(_compare(f"{label}: forward + backward", backward(eager), backward(compiled), args))
    rows.append(_compare(f"{label}: forward (refresh)", forward(eager), forward(compiled), args))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--encoders", nargs="+", default=["vit_tiny_patch14", "dinov2_vits14"])
    parser.add_argument("--precision", choices=PRECISIONS, default="auto")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--scenes", type=int, default=16, help="grids per top-block call (the benchmark's scenes)")
    parser.add_argument("--unfreeze-layers", type=int, default=2)
    parser.add_argument("--feature-dims", nargs="+", type=int, default=[192, 384], help="forward-model widths")
    parser.add_argument("--hidden", type=int, default=256, help="forward-model hidden width (the default config)")
    parser.add_argument("--batch", type=int, default=1024, help="forward-model minibatch")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (the trainer's default: 1)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--calls", type=int, default=5, help="calls per timed loop")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows = [r for dim in args.feature_dims for r in forward_model_rows(dim, args)]
    rows += [r for name in args.encoders for r in top_block_rows(name, args)]
    print(f"torch.compile vs eager on cpu, torch {torch.__version__}, {args.threads} thread(s)\n")
    print("| work | eager ms | compiled ms | eager / compiled | first call (compile) s |")
    print("|---|---|---|---|---|")
    for r in rows:
        ratio = r["eager_ms"] / r["compiled_ms"]
        print(f"| {r['name']} | {r['eager_ms']:.1f} | {r['compiled_ms']:.1f} | {ratio:.2f} | {r['compile_s']:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
