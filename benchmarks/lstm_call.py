"""Every variant's fast path against torch.nn.LSTM (oneDNN's fused kernel): forward + backward time,
achieved GFLOP/s against this run's matmul peak, and memory saved for backward.

    python benchmarks/lstm_call.py            # H in {32, 128, 256}, B in {1, 32}, T = 100, I = 88
    python benchmarks/lstm_call.py --quick    # fewer rounds, a smoke test in well under a minute
    python benchmarks/lstm_call.py --cpu-time # one thread, CPU time: steady on a machine others load

Targets (issue 7): every variant but FGR <= 1.0x nn.LSTM at B = 1 and <= 1.1x at B = 32; FGR
<= 2x; memory <= 1.5x. The inputs need no gradient, as in training a first layer.
"""

from __future__ import annotations

import argparse
import time

import torch
from timing import alternate, matmul_peak_gflops, saved_bytes
from torch import nn

from odyssey import LSTM, VARIANTS, VariantSwitches


def flops(switches: VariantSwitches, steps: int, batch: int, inputs: int, hidden: int) -> float:
    """Forward + backward without the input gradient, multiply-adds counted twice: the input
    projection and its weight gradient, and three times the recurrent product (forward, the
    gradient of the recurrent input, the weight gradient). 8 T B H (2 I + 3 H) for vanilla; FGR adds
    its gate-to-gate matrices (9 H^2 for i, f, o)."""
    rows = len(switches.blocks) * hidden
    recurrent = rows * hidden + len(switches.weighted_gates) * hidden * len(switches.recurrent_gates) * hidden
    return 2 * steps * batch * (2 * rows * inputs + 3 * recurrent)


def training_step(model: nn.Module, x: torch.Tensor):
    def step() -> None:
        for p in model.parameters():
            p.grad = None
        out, _ = model(x)
        out.sum().backward()

    return step


def target(name: str, batch: int) -> float:
    return 2.0 if name == "FGR" else (1.0 if batch == 1 else 1.1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, nargs="+", default=[32, 128, 256])
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--inputs", type=int, default=88)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS))
    parser.add_argument("--rounds", type=int, default=15, help="alternations per configuration")
    parser.add_argument("--quick", action="store_true", help="3 rounds, short samples")
    parser.add_argument(
        "--cpu-time", action="store_true", help="one thread, timed by CPU time instead of the wall clock"
    )
    args = parser.parse_args()
    rounds, sample_s = (3, 0.003) if args.quick else (args.rounds, 0.01)
    clock = time.process_time if args.cpu_time else time.perf_counter
    if args.cpu_time:
        torch.set_num_threads(1)

    torch.manual_seed(0)
    peak = matmul_peak_gflops(clock=clock)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {'CPU' if args.cpu_time else 'wall'} time, "
        f"float32 matmul peak {peak:.0f} GFLOP/s"
    )
    print(
        f"T={args.steps}, I={args.inputs}; time = median of per-round (variant / nn.LSTM), alternated, "
        f"{rounds} rounds\n"
    )
    print(
        "| H | B | nn.LSTM ms | nn.LSTM GFLOP/s | variant | ms | time vs nn.LSTM | GFLOP/s | % of peak | "
        "saved memory vs nn.LSTM |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    misses = []
    for hidden in args.hidden:
        for batch in args.batch:
            x = torch.randn(args.steps, batch, args.inputs)
            reference = nn.LSTM(args.inputs, hidden)
            models = {n: LSTM(args.inputs, hidden, variant=n, backend="fast") for n in args.variants}
            ref_time, results = alternate(
                training_step(reference, x), {n: training_step(m, x) for n, m in models.items()},
                rounds=rounds, sample_s=sample_s, clock=clock,
            )  # fmt: skip
            ref_memory = saved_bytes(lambda reference=reference, x=x: reference(x))
            ref_flops = flops(VARIANTS["NP"], args.steps, batch, args.inputs, hidden)
            for name, (own, ratio) in results.items():
                rate = flops(VARIANTS[name], args.steps, batch, args.inputs, hidden) / own / 1e9
                memory = saved_bytes(lambda model=models[name], x=x: model(x)) / ref_memory
                print(
                    f"| {hidden} | {batch} | {ref_time * 1e3:.2f} | {ref_flops / ref_time / 1e9:.1f} | {name} | "
                    f"{own * 1e3:.2f} | {ratio:.2f}x | {rate:.1f} | {100 * rate / peak:.0f}% | {memory:.2f}x |",
                    flush=True,
                )
                if ratio > target(name, batch) or memory > 1.5:
                    misses.append(
                        f"{name} H={hidden} B={batch}: {ratio:.2f}x time (target {target(name, batch)}x), "
                        f"{memory:.2f}x memory"
                    )
    print("\nall targets met" if not misses else "\nmissed:\n  " + "\n  ".join(misses))


if __name__ == "__main__":
    main()
