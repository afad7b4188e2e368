"""The kernel's team of threads on a machine it does not own: whether one thread or two walk a
sequence (the tuner decides per call from what it measures) never changes a result, bit for bit,
and a team that finds the cores busy stops being used, split by units or by batch rows, and the
call then runs wholly on its own thread, its library matmuls too (kernel/csrc/tuner.h, team.h,
recurrence.cpp)."""

import os
import subprocess
import sys

import pytest
import torch
from test_kernel import SCHEDULES, outputs_and_grads, problem, randomised

from odyssey import VARIANTS, resolve_variant
from odyssey.model.kernel import function

SWITCHES = {**VARIANTS, "CIFG+NP": resolve_variant("CIFG+NP"), "NIG+NOAF+FGR": resolve_variant("NIG+NOAF+FGR")}


@pytest.fixture
def team(kernel, monkeypatch):
    """Sets the split (units or rows) and the team size for one test; restores both."""
    yield lambda split, size: (monkeypatch.setattr(function, "SCHEDULE", SCHEDULES[split]), kernel.set_team(size))
    kernel.set_team(0)


def identical(a, b):
    return len(a) == len(b) and all(torch.equal(x, y) for x, y in zip(a, b))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("split", ["team", "rows"])
@pytest.mark.parametrize("name", list(SWITCHES))
def test_one_thread_and_two_give_the_same_bits(team, name, split, dtype):
    """Outputs, final states and every gradient, for every variant; H = 37 and 40 put scalar tails
    at the end of each half of the units, B = 9 an odd row out when the batch is split. One thread
    is what a call on busy cores runs: the recurrence and (float32, through oneDNN) the input
    projection and weight gradients in the same row blocks, one after the other."""
    for hidden, batch in [(37, 3), (40, 9)]:
        model = randomised(SWITCHES[name], hidden, dtype)
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


@pytest.mark.parametrize("split", ["team", "rows"])
def test_tuned_calls_beside_busy_cores_match_one_thread(kernel, team, busy_cores, split):
    """The tuner switching between one thread and two from call to call, with the barrier sleeping
    while a partner is away (split by units) or a member losing its core (by rows): every call gives
    the bits of one thread. (Whether and how fast the team is dropped depends on the scheduler, so
    benchmarks/contention.py measures it, not this test.)"""
    if torch.get_num_threads() < 2:
        pytest.skip("one torch thread: there is no team to choose")
    model = randomised(SWITCHES["V"], 40, torch.float32)
    args = problem(model, 2 if split == "team" else 16, torch.float32, steps=100)  # B * H >= 80: the tuner decides
    team(split, 1)
    expected = outputs_and_grads(model, "fast", *args)
    team(split, 0)
    before = kernel.team_counts()
    for call in range(80):
        assert identical(outputs_and_grads(model, "fast", *args), expected), f"call {call} differs from one thread"
    assert (
        sum(after - first for after, first in zip(kernel.team_counts(), before)) >= 80
    )  # every call was counted: the tuner ran


# What a team call measured, as on_team tells the tuner: barrier waits that slept, steps, the call's
# wall time and the most any member spent off its core, in ns.
def test_a_member_off_its_core_is_a_crowded_call_split_by_rows(kernel):
    """Split by rows the members meet only at the start: the barrier never sleeps, so before, a call
    whose partner lost its core for half the call counted as a plain (slow) cost and the team stayed."""
    assert kernel.crowded(0, 100, 2e6, 1e6)  # half of a 2 ms call off the core: the cores are busy
    assert kernel.crowded(0, 5, 4e6, 2e6)  # however short the sequence
    assert not kernel.crowded(0, 100, 2e6, 5e4)  # a wake-up or an interrupt: noise
    assert not kernel.crowded(0, 100, 400e3, 90e3)  # under 100 us is noise even on a short call
    assert not kernel.crowded(0, 100, 2e6, 0.2e6)  # a tenth: noise
    assert kernel.crowded(7, 100, 1e6, 0)  # split by units the barrier still tells: 7 sleeps in 100 steps
    assert not kernel.crowded(2, 100, 1e6, 0)


def test_a_crowded_team_sends_the_shape_to_one_thread_for_longer_each_time(kernel):
    """The tuner's side, for a shape split by rows (B = 16, H = 115: issue 27's): once a team call is
    crowded, the next calls run on one thread and say the cores are busy (the whole call then runs on
    the calling thread); the team is tried again after 8 calls, then 16 while it stays crowded, and a
    call on free cores ends the bench."""
    tuner = kernel.Tuner()
    shape = (False, 16, 115, 115)

    def benched_calls():
        count = 0
        while (choice := tuner.choose(shape)) == (1, True):
            count += 1
        assert choice == (2, False), "after the bench the team is tried again"
        return count

    assert tuner.choose(shape) == (2, False)  # nothing measured: the team first
    tuner.record(shape, 2, 30e3, True)
    first = benched_calls()
    tuner.record(shape, 2, 30e3, True)
    second = benched_calls()
    assert 0 < first < second
    tuner.record(shape, 2, 30e3, False)  # free cores again: no bench, and a cost for two threads
    assert tuner.choose(shape) == (1, False)  # one thread's cost is still unknown: measured next
    tuner.record(shape, 1, 60e3, False)
    assert not any(tuner.choose(shape)[1] for _ in range(100))  # measured costs decide again, not a bench
    assert tuner.counts() == [1, 1, 2]  # by one thread, by two on free cores, by two on busy cores
    assert kernel.Tuner().choose(shape) == (2, False)  # a tuner of its own: the process's one is untouched
