"""odyssey.LSTM on a machine it does not own: forward + backward of one layer (V, T = 100, B = 16,
H = 115, I = 88, 2 torch threads per process) alone, beside a CPU-bound loop, and as two processes
at once, each against torch.nn.LSTM in the same conditions. Every setting spawns its own processes,
which start timing together and time for the same window.

    python benchmarks/contention.py            # 3 rounds of 4 s windows
    python benchmarks/contention.py --quick    # 1 round of 2 s windows

Targets (issue 15): two processes at once each within 2.3x of one alone, and one process beside a
CPU-bound loop within 1.2x of nn.LSTM's slowdown there.

Each table is run under three OpenMP wait policies: the default, under which torch's idle OpenMP
threads spin for a long while after every parallel region (on a machine it does not own, that
spinning takes the cores the other threads need); OMP_WAIT_POLICY=PASSIVE, under which they sleep
at once; and GOMP_SPINCOUNT=10000, a short spin and then sleep. libgomp reads them once, when
torch loads, so they have to be in the environment before that.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

MODELS = ("odyssey", "nn.LSTM")
SETTINGS = ("alone", "beside a loop", "two at once")
# How torch's idle OpenMP threads wait (libgomp, read once when torch loads): spinning for a long
# while (the default), sleeping at once, or spinning briefly, then sleeping.
POLICIES = {"default": {}, "passive": {"OMP_WAIT_POLICY": "PASSIVE"}, "short spin": {"GOMP_SPINCOUNT": "10000"}}
POLICY_VARIABLES = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")


def worker(model: str, *, seconds: float, threads: int, steps: int, batch: int, inputs: int, hidden: int) -> None:
    """One timed process: warms up, says 'ready', waits for 'go', then trains for `seconds` and
    prints its mean time per forward + backward in ms."""
    import torch
    from torch import nn

    from odyssey import LSTM

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    lstm = LSTM(inputs, hidden, variant="V", backend="fast") if model == "odyssey" else nn.LSTM(inputs, hidden)
    x = torch.randn(steps, batch, inputs)

    def step() -> None:
        for p in lstm.parameters():
            p.grad = None
        lstm(x)[0].sum().backward()

    warm_until = time.perf_counter() + 1.0
    while time.perf_counter() < warm_until:
        step()
    print("ready", flush=True)
    sys.stdin.readline()
    start = time.perf_counter()
    count = 0
    while time.perf_counter() - start < seconds:
        step()
        count += 1
    print(json.dumps({"ms": 1e3 * (time.perf_counter() - start) / count}), flush=True)


def spin() -> None:
    """A CPU-bound loop with nothing to wait for, as a neighbour on a shared machine is."""
    print("ready", flush=True)
    while True:
        pass


def setting(name: str, model: str, policy: dict[str, str], args: argparse.Namespace) -> list[float]:
    """Runs one setting under one OpenMP wait policy; the ms per step of each timed process."""
    env = {k: v for k, v in os.environ.items() if k not in POLICY_VARIABLES} | policy
    me = [sys.executable, str(Path(__file__).resolve())]
    common = ["--seconds", str(args.seconds), "--threads", str(args.threads), "--steps", str(args.steps),
              "--batch", str(args.batch), "--inputs", str(args.inputs), "--hidden", str(args.hidden)]  # fmt: skip
    timed = [me + ["--worker", model, *common] for _ in range(2 if name == "two at once" else 1)]
    loops = [me + ["--spin"]] if name == "beside a loop" else []
    processes = [subprocess.Popen(c, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env) for c in timed + loops]
    try:
        for p in processes:
            if p.stdout.readline().strip() != "ready":
                raise RuntimeError(f"a benchmark process failed to start: {p.args}")
        for p in processes[: len(timed)]:  # the loop is already running
            p.stdin.write("go\n")
            p.stdin.flush()
        return [json.loads(p.stdout.readline())["ms"] for p in processes[: len(timed)]]
    finally:
        for p in processes:
            p.kill()
            p.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=4.0, help="timed window per process")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--inputs", type=int, default=88)
    parser.add_argument("--hidden", type=int, default=115)
    parser.add_argument("--policies", nargs="+", choices=list(POLICIES), default=list(POLICIES), help="OpenMP wait policies to run under")
    parser.add_argument("--quick", action="store_true", help="1 round of 2 s windows")
    parser.add_argument("--worker", choices=MODELS, help=argparse.SUPPRESS)
    parser.add_argument("--spin", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.spin:
        return spin()
    if args.worker:
        return worker(args.worker, seconds=args.seconds, threads=args.threads, steps=args.steps,
                      batch=args.batch, inputs=args.inputs, hidden=args.hidden)  # fmt: skip
    if args.quick:
        args.rounds, args.seconds = 1, 2.0

    print(f"V, T={args.steps}, B={args.batch}, I={args.inputs}, H={args.hidden}, forward + backward, {args.threads} torch "
          f"threads per process; median over {args.rounds} round(s) of {args.seconds:g} s windows (each process's mean)")
    # Rounds alternate the models and policies within each setting, so a busy spell falls on all.
    times = {(p, s, m): [] for p in args.policies for s in SETTINGS for m in MODELS}
    for _ in range(args.rounds):
        for name in SETTINGS:
            for policy in args.policies:
                for model in MODELS:
                    times[policy, name, model].append(setting(name, model, POLICIES[policy], args))
    for policy in args.policies:
        report(policy, {(s, m): times[policy, s, m] for s in SETTINGS for m in MODELS})


def report(policy: str, runs: dict[tuple[str, str], list[list[float]]]) -> None:
    """One policy's table; runs[setting, model] holds each round's per-process times."""
    median = statistics.median
    ms = {key: median(t for run in rounds for t in run) for key, rounds in runs.items()}
    print(f"\nOpenMP wait policy: {policy} {' '.join(f'{k}={v}' for k, v in POLICIES[policy].items())}\n")
    print("| setting | nn.LSTM ms/step | slowdown | odyssey ms/step | slowdown | odyssey's slowdown / nn.LSTM's |")
    print("|---|---|---|---|---|---|")
    for name in SETTINGS:
        slow = {m: ms[name, m] / ms["alone", m] for m in MODELS}
        print(f"| {name} | {ms[name, 'nn.LSTM']:.1f} | {slow['nn.LSTM']:.2f}x | {ms[name, 'odyssey']:.1f} | "
              f"{slow['odyssey']:.2f}x | {slow['odyssey'] / slow['nn.LSTM']:.2f} |")
    pair = median(max(run) for run in runs["two at once", "odyssey"]) / ms["alone", "odyssey"]
    loop = (ms["beside a loop", "odyssey"] / ms["alone", "odyssey"]) / (ms["beside a loop", "nn.LSTM"] / ms["alone", "nn.LSTM"])
    print(f"\nslower odyssey process of a pair: {pair:.2f}x one alone (target <= 2.3x); "
          f"odyssey beside a loop: {loop:.2f}x nn.LSTM's slowdown (target <= 1.2x)")


if __name__ == "__main__":
    main()
