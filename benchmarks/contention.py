"""odyssey.LSTM on a machine it does not own: forward + backward of one layer (V, T = 100, B = 16,
H = 115, I = 88) alone, beside a CPU-bound loop, and as two processes at once, each against
torch.nn.LSTM in the same conditions. Every setting spawns its own processes, which start timing
together and time for the same window.

    python benchmarks/contention.py            # 5 rounds of 3 s windows, torch's defaults
    python benchmarks/contention.py --quick    # 1 round of 2 s windows
    python benchmarks/contention.py --policies default passive --threads 2
    python benchmarks/contention.py --also before=/tmp/old   # an older checkout's odyssey beside it

By default each process runs as a script of your own would: torch's default number of threads
(every core) and torch's default OpenMP waiting, under which its idle OpenMP threads spin for a long
while after every parallel region. Other policies: OMP_WAIT_POLICY=PASSIVE (what the `odyssey`
command sets: idle threads sleep at once) and GOMP_SPINCOUNT=10000 (a short spin, then sleep).
libgomp reads them once, when torch loads, so they have to be in the environment before that.

Targets (issue 27): under torch's defaults, median over rounds, two odyssey processes at once slow
down no more than 1.2x as much as two nn.LSTM processes do (the slowdown of each model is its
"two at once" step over its "alone" step, both in the same round), and odyssey alone is as fast as
before. (Issue 15's, beside a loop: within 1.2x of nn.LSTM's slowdown.)
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

SETTINGS = ("alone", "beside a loop", "two at once")
REFERENCE = "nn.LSTM"
# How torch's idle OpenMP threads wait (libgomp, read once when torch loads): spinning for a long
# while (the default), sleeping at once, or spinning briefly, then sleeping.
POLICIES = {"default": {}, "passive": {"OMP_WAIT_POLICY": "PASSIVE"}, "short spin": {"GOMP_SPINCOUNT": "10000"}}
POLICY_VARIABLES = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")


def worker(model: str, *, seconds: float, threads: int, steps: int, batch: int, inputs: int, hidden: int) -> None:
    """One timed process: warms up, says 'ready', waits for 'go', then trains for `seconds` and
    prints its mean time per forward + backward in ms. threads 0 keeps torch's default."""
    import torch
    from torch import nn

    from odyssey import LSTM

    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    lstm = nn.LSTM(inputs, hidden) if model == REFERENCE else LSTM(inputs, hidden, variant="V", backend="fast")
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


def setting(name: str, model: str, path: str | None, policy: dict[str, str], args: argparse.Namespace) -> list[float]:
    """Runs one setting under one OpenMP wait policy; the ms per step of each timed process. `path`
    puts another checkout's odyssey first on the timed processes' import path."""
    env = {k: v for k, v in os.environ.items() if k not in POLICY_VARIABLES} | policy
    if path:
        env["PYTHONPATH"] = os.pathsep.join([path, *filter(None, [env.get("PYTHONPATH")])])
    me = [sys.executable, str(Path(__file__).resolve())]
    common = ["--seconds", str(args.seconds), "--threads", str(args.threads), "--steps", str(args.steps),
              "--batch", str(args.batch), "--inputs", str(args.inputs), "--hidden", str(args.hidden)]  # fmt: skip
    kind = REFERENCE if model == REFERENCE else "odyssey"
    timed = [me + ["--worker", kind, *common] for _ in range(2 if name == "two at once" else 1)]
    loops = [me + ["--spin"]] if name == "beside a loop" else []
    processes = [
        subprocess.Popen(c, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env) for c in timed + loops
    ]
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
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=3.0, help="timed window per process")
    parser.add_argument("--threads", type=int, default=0, help="torch threads per process (0: torch's default)")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--inputs", type=int, default=88)
    parser.add_argument("--hidden", type=int, default=115)
    parser.add_argument(
        "--policies", nargs="+", choices=list(POLICIES), default=["default"], help="OpenMP wait policies to run under"
    )
    parser.add_argument(
        "--also",
        nargs="+",
        default=[],
        metavar="LABEL=PATH",
        help="also time the odyssey of another checkout (its folder holding odyssey/), in the same rounds",
    )
    parser.add_argument("--quick", action="store_true", help="1 round of 2 s windows")
    parser.add_argument("--worker", choices=("odyssey", REFERENCE), help=argparse.SUPPRESS)
    parser.add_argument("--spin", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.spin:
        return spin()
    if args.worker:
        return worker(args.worker, seconds=args.seconds, threads=args.threads, steps=args.steps,
                      batch=args.batch, inputs=args.inputs, hidden=args.hidden)  # fmt: skip
    if args.quick:
        args.rounds, args.seconds = 1, 2.0
    paths = {REFERENCE: None, "odyssey": None}
    for item in args.also:
        label, _, path = item.partition("=")
        paths[f"odyssey ({label})"] = str(Path(path).resolve())

    threads = f"{args.threads} torch threads" if args.threads else f"torch's default threads ({os.cpu_count()} cores)"
    print(
        f"V, T={args.steps}, B={args.batch}, I={args.inputs}, H={args.hidden}, forward + backward, "
        f"{threads} per process; "
        f"median over {args.rounds} round(s) of {args.seconds:g} s windows (each process's mean)"
    )
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    # Rounds alternate the models and policies within each setting, so a busy spell falls on all.
    times = {(p, s, m): [] for p in args.policies for s in SETTINGS for m in paths}
    for _ in range(args.rounds):
        for name in SETTINGS:
            for policy in args.policies:
                for model, path in paths.items():
                    times[policy, name, model].append(setting(name, model, path, POLICIES[policy], args))
    for policy in args.policies:
        report(policy, list(paths), {(s, m): times[policy, s, m] for s in SETTINGS for m in paths})
    print(f"\nload average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


def report(policy: str, models: list[str], runs: dict[tuple[str, str], list[list[float]]]) -> None:
    """One policy's table; runs[setting, model] holds each round's per-process times. A slowdown is
    a round's mean over its processes against the same round's 'alone'; the table gives medians
    over rounds, and the last column the median of the per-round ratios to nn.LSTM's slowdown."""
    median = statistics.median
    mean = statistics.fmean
    print(f"\nOpenMP wait policy: {policy} {' '.join(f'{k}={v}' for k, v in POLICIES[policy].items())}\n")
    print(
        "| model | setting | ms/step (median) | slowdown (median) | "
        "slowdown / nn.LSTM's (median of rounds) | per round |"
    )
    print("|---|---|---|---|---|---|")
    slow = {
        (s, m): [mean(run) / mean(alone) for run, alone in zip(runs[s, m], runs["alone", m])]
        for s in SETTINGS
        for m in models
    }
    for model in models:
        for name in SETTINGS:
            ms = median(mean(run) for run in runs[name, model])
            ratios = [a / b for a, b in zip(slow[name, model], slow[name, REFERENCE])]
            against = "" if model == REFERENCE or name == "alone" else f"{median(ratios):.2f}"
            rounds = " ".join(
                f"{r:.2f}" for r in (slow[name, model] if model == REFERENCE or name == "alone" else ratios)
            )
            print(
                f"| {model} | {name} | {ms:.1f} | {median(slow[name, model]):.2f}x | {against} | "
                f"{rounds if name != 'alone' else ''} |"
            )
    # Where "alone" is not alone (others' work on the machine), the slowdowns swing with their load;
    # a step against nn.LSTM's in the same setting and round is steadier.
    print(
        "\n| model | " + " | ".join(f"{name}: ms/step against nn.LSTM's (median of rounds)" for name in SETTINGS) + " |"
    )
    print("|---|" + "---|" * len(SETTINGS))
    for model in models:
        if model == REFERENCE:
            continue
        cells = [
            median(mean(a) / mean(b) for a, b in zip(runs[name, model], runs[name, REFERENCE])) for name in SETTINGS
        ]
        print(f"| {model} | " + " | ".join(f"{c:.2f}" for c in cells) + " |")
    print()
    for model in models:
        if model == REFERENCE:
            continue
        pair = median(a / b for a, b in zip(slow["two at once", model], slow["two at once", REFERENCE]))
        alone = median(mean(run) for run in runs["alone", model])
        print(
            f"{model}: two at once slow down {pair:.2f}x as much as nn.LSTM's pair (target <= 1.2); "
            f"alone {alone:.1f} ms/step"
        )


if __name__ == "__main__":
    main()
