"""The kernel's team of threads on a machine it does not own: whether one thread or two walk a
sequence (the tuner decides per call from what it measures) never changes a result, bit for bit,
and a team that finds the cores busy stops being used (kernel/csrc/tuner.h, team.h)."""

import os
import subprocess
import sys

import pytest
import torch

from odyssey import VARIANTS, resolve_variant
from odyssey.model.kernel import build, function
from test_kernel import SCHEDULES, outputs_and_grads, problem, randomised

SPECS = {**VARIANTS, "CIFG+NP": resolve_variant("CIFG+NP"), "NIG+NOAF+FGR": resolve_variant("NIG+NOAF+FGR")}


@pytest.fixture(scope="module")
def kernel():
    try:
        return build.load()
    except build.KernelUnavailable as error:
        pytest.skip(f"no C++ kernel here: {error}")


@pytest.fixture
def team(kernel, monkeypatch):
    """Sets the split (units or rows) and the team size for one test; restores both."""
    yield lambda split, size: (monkeypatch.setattr(function, "SCHEDULE", SCHEDULES[split]), kernel.set_team(size))
    kernel.set_team(0)


def identical(a, b):
    return len(a) == len(b) and all(torch.equal(x, y) for x, y in zip(a, b))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("split", ["team", "rows"])
@pytest.mark.parametrize("name", list(SPECS))
def test_one_thread_and_two_give_the_same_bits(team, name, split, dtype):
    """Outputs, final states and every gradient, for every variant; H = 37 and 40 put scalar tails
    at the end of each half of the units, B = 9 an odd row out when the batch is split."""
    for hidden, batch in [(37, 3), (40, 9)]:
        model = randomised(SPECS[name], hidden, dtype)
        args = problem(model, batch, dtype, steps=7)
        runs = []
        for size in (1, 2):
            team(split, size)
            runs.append(outputs_and_grads(model, "fast", *args))
        assert identical(*runs), f"{name}, H={hidden}, B={batch}: one thread and two differ"


@pytest.fixture
def busy_cores():
    """A CPU-bound process per core: with them, the team's partner is descheduled now and then."""
    loops = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(os.cpu_count() or 2)]
    yield
    for loop in loops:
        loop.kill()
        loop.wait()


def test_tuned_calls_beside_busy_cores_match_one_thread(kernel, team, busy_cores):
    """The tuner switching between one thread and two from call to call, with the barrier sleeping
    while a partner is away: every call gives the bits of one thread. (Whether and how fast the team
    is dropped depends on the scheduler, so benchmarks/contention.py measures it, not this test.)"""
    if torch.get_num_threads() < 2:
        pytest.skip("one torch thread: there is no team to choose")
    model = randomised(SPECS["V"], 40, torch.float32)
    args = problem(model, 2, torch.float32, steps=100)  # B * H = 80: the tuner decides
    team("team", 1)
    expected = outputs_and_grads(model, "fast", *args)
    team("team", 0)
    before = kernel.team_counts()
    for call in range(80):
        assert identical(outputs_and_grads(model, "fast", *args), expected), f"call {call} differs from one thread"
    assert sum(after - first for after, first in zip(kernel.team_counts(), before)) >= 80  # every call was counted: the tuner ran
