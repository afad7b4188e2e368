"""The C++ fast path (odyssey.model.kernel) against the autograd reference: every variant, every schedule,
instruction set and team size, both directions, padded lengths, gradients of everything; gradcheck
in float64; the fallback when the kernel cannot be built; the backend switches."""

import os
import warnings

import pytest
import torch

from odyssey import LSTM, VARIANTS, resolve_variant
from odyssey.model.kernel import build, dispatch, function

SWITCHES = {**VARIANTS, "CIFG+NP": resolve_variant("CIFG+NP"), "NIG+NOAF+FGR": resolve_variant("NIG+NOAF+FGR")}
SCHEDULES = {"team": 1, "library": 2, "rows": 3}  # the team split by units or by batch rows
# (hidden, batch): vector tails (H not a multiple of 8 or 16), teams (B * H >= 64) and not, one
# batch large enough for full blocks of matmul rows.
SHAPES = [(5, 3), (20, 4), (40, 9)]
# gradcheck takes ~4 s a case: CI gradchecks each variant under one schedule, taken in turn so every
# schedule gets several (test_every_variant_matches_the_reference already holds every gradient of
# every schedule to the gradchecked reference's); ODYSSEY_FULL_TESTS=1 gradchecks every pair.
FULL = os.environ.get("ODYSSEY_FULL_TESTS") == "1"
GRADCHECKED = [
    (name, schedule)
    for k, name in enumerate(SWITCHES)
    for schedule in (SCHEDULES if FULL else [list(SCHEDULES)[k % len(SCHEDULES)]])
]


@pytest.fixture
def knobs(kernel, monkeypatch):
    """Set the schedule, instruction set and team size for one test; all restored afterwards."""
    yield lambda schedule=0, isa="auto", team=0: (
        monkeypatch.setattr(function, "SCHEDULE", schedule),
        kernel.use_isa(isa),
        kernel.set_team(team),
    )
    kernel.use_isa("auto")
    kernel.set_team(0)


def randomised(switches, hidden, dtype, seed=0):
    """A bidirectional layer with every parameter non-zero, peepholes and gate matrices included."""
    torch.manual_seed(seed)
    model = LSTM(7, hidden, variant=switches, bidirectional=True).to(dtype)
    with torch.no_grad():
        for p in model.parameters():
            p.uniform_(-0.5, 0.5)
    return model


def problem(model, batch, dtype, steps=6, seed=1):
    """Inputs, a non-zero initial state, padded lengths (the first sequence full) and a target."""
    torch.manual_seed(seed)
    x = torch.randn(steps, batch, 7, dtype=dtype)
    state = tuple(torch.randn(2, batch, size, dtype=dtype) for size in model.directions[0].state_sizes)
    lengths = torch.randint(1, steps + 1, (batch,))
    lengths[0] = steps
    target = torch.randn(steps, batch, 2 * model.hidden_size, dtype=dtype)
    return x, state, lengths, target


def outputs_and_grads(model, backend, x, state, lengths, target):
    """Output, final state, and the gradients of the inputs, the initial state and every parameter."""
    for direction in model.directions:
        direction.backend = backend
    model.zero_grad(set_to_none=True)
    x = x.clone().requires_grad_()
    state = tuple(s.clone().requires_grad_() for s in state)
    out, final = model(x, state, lengths=lengths)
    loss = (out * target).sum() + sum((f * (k + 1.5)).sum() for k, f in enumerate(final))
    loss.backward()
    return [out, *final, x.grad, *(s.grad for s in state), *(p.grad for p in model.parameters())]


def assert_all_close(got, expected, dtype):
    tol = 1e-5 if dtype == torch.float32 else 1e-10
    for g, e in zip(got, expected, strict=True):
        torch.testing.assert_close(g, e, rtol=tol, atol=tol * max(1.0, e.abs().max().item()))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("name", list(SWITCHES))
def test_every_variant_matches_the_reference(knobs, name, dtype):
    for hidden, batch in SHAPES:
        model = randomised(SWITCHES[name], hidden, dtype)
        args = problem(model, batch, dtype)
        expected = outputs_and_grads(model, "reference", *args)
        for schedule in SCHEDULES.values():
            for team in (1, 2):
                knobs(schedule=schedule, team=team)
                assert_all_close(outputs_and_grads(model, "fast", *args), expected, dtype)


@pytest.mark.parametrize("name", ["V", "CIFG+NP", "FGR", "NIG+NOAF+FGR"])
def test_every_instruction_set_matches_the_reference(kernel, knobs, name):
    model = randomised(SWITCHES[name], 40, torch.float32)
    args = problem(model, 9, torch.float32)
    expected = outputs_and_grads(model, "reference", *args)
    for isa in kernel.isas():
        for schedule in SCHEDULES.values():
            knobs(schedule=schedule, isa=isa, team=2)
            assert_all_close(outputs_and_grads(model, "fast", *args), expected, torch.float32)


@pytest.mark.parametrize("split", ["team", "rows"])
def test_team_size_never_changes_a_result(kernel, knobs, split):
    """The tuner may pick one thread or two from call to call: results must be bit for bit equal."""
    model = randomised(SWITCHES["V"], 40, torch.float32)  # 40: each half ends in a scalar tail
    args = problem(model, 9, torch.float32)
    for isa in kernel.isas():
        runs = []
        for team in (1, 2):
            knobs(schedule=SCHEDULES[split], isa=isa, team=team)
            runs.append(outputs_and_grads(model, "fast", *args))
        assert all(torch.equal(a, b) for a, b in zip(*runs))


@pytest.mark.slow
@pytest.mark.parametrize("name, schedule", GRADCHECKED)
def test_gradcheck_float64_on_the_kernel(knobs, name, schedule):
    knobs(schedule=SCHEDULES[schedule], team=2)
    model = randomised(SWITCHES[name], 3, torch.float64, seed=5)
    for direction in model.directions:
        direction.backend = "fast"
    names = [n for n, _ in model.named_parameters()]
    x = torch.randn(4, 2, 7, dtype=torch.float64, requires_grad=True)
    state = tuple(
        torch.randn(2, 2, s, dtype=torch.float64, requires_grad=True) for s in model.directions[0].state_sizes
    )

    def run(x, *values):
        params = dict(zip(names, values[: len(names)]))
        out, final = torch.func.functional_call(
            model, params, (x, values[len(names) :]), {"lengths": torch.tensor([4, 2])}
        )
        return (out, *final)

    values = [p.detach().requires_grad_() for p in model.parameters()] + list(state)
    assert torch.autograd.gradcheck(run, (x, *values))


@pytest.mark.parametrize("name", ["V", "NIG", "FGR"])
def test_saturated_gates_and_cells_pass_the_reference_gradient_on_every_instruction_set(kernel, knobs, name):
    """Weights of 1e9 (a training just after an exploding step) saturate every gate and tanh, where
    the true gradient is 0: a tanh a few ulp short of 1 let ~5e-7 through, which the peepholes grew
    into a NaN gradient within 40 steps (seen in a handwriting trial)."""
    torch.manual_seed(3)
    model = LSTM(7, 16, variant=SWITCHES[name], bidirectional=True)  # 7 inputs, as problem() makes
    with torch.no_grad():
        for p in model.parameters():
            p.normal_().mul_(1e9)
    args = problem(model, 2, torch.float32, steps=40)
    expected = outputs_and_grads(model, "reference", *args)
    for isa in kernel.isas():
        knobs(isa=isa)
        assert_all_close(outputs_and_grads(model, "fast", *args), expected, torch.float32)


def test_inference_and_repeated_backward(knobs):
    """no_grad and inference_mode forwards, a second backward over a retained graph, and two graphs
    alive at once all see their own buffers (the kernel reuses buffers once nothing holds them)."""
    model = randomised(SWITCHES["V"], 20, torch.float32)
    x, state, lengths, _ = problem(model, 4, torch.float32, steps=400)  # buffers big enough to pool
    for direction in model.directions:
        direction.backend = "fast"
    reference = randomised(SWITCHES["V"], 20, torch.float32)
    for direction in reference.directions:
        direction.backend = "reference"
    with torch.no_grad():
        assert_all_close(
            model(x, state, lengths=lengths)[0:1], reference(x, state, lengths=lengths)[0:1], torch.float32
        )
    with torch.inference_mode():
        model(x, state, lengths=lengths)

    first, _ = model(x, state, lengths=lengths)
    second, _ = model(2 * x, state, lengths=lengths)
    first.sum().backward(retain_graph=True)
    once = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    first.sum().backward()
    assert all(torch.equal(p.grad, g) for p, g in zip(model.parameters(), once))
    model.zero_grad()
    second.sum().backward()
    reference(2 * x, state, lengths=lengths)[0].sum().backward()
    assert_all_close([p.grad for p in model.parameters()], [q.grad for q in reference.parameters()], torch.float32)


def test_one_thread_and_nan(knobs):
    model = randomised(SWITCHES["V"], 40, torch.float32)
    args = problem(model, 9, torch.float32)
    expected = outputs_and_grads(model, "reference", *args)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert_all_close(outputs_and_grads(model, "fast", *args), expected, torch.float32)
    finally:
        torch.set_num_threads(threads)
    with torch.no_grad():  # a diverged training must show up as NaN, not be clamped away
        model.directions[0].weight_hh[0, 0] = float("nan")
    out, _ = model(args[0])
    assert torch.isnan(out).any()


def test_without_a_compiler_auto_warns_once_and_falls_back(kernel, monkeypatch):
    def no_compiler(directory):  # a failed build, as build._load reports it
        raise build.KernelUnavailable("odyssey's C++ LSTM kernel is unavailable: c++: command not found")

    monkeypatch.setattr(build, "_load", no_compiler)
    monkeypatch.setattr(build, "_loaded", {})
    monkeypatch.setattr(dispatch, "_warned", set())
    model = randomised(SWITCHES["CIFG"], 5, torch.float32)
    args = problem(model, 3, torch.float32)
    expected = outputs_and_grads(model, "reference", *args)
    with pytest.warns(RuntimeWarning, match="c\\+\\+: command not found"):
        got = outputs_and_grads(model, "auto", *args)
    for g, e in zip(got, expected, strict=True):
        assert torch.equal(g, e)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        outputs_and_grads(model, "auto", *args)
    with pytest.raises(build.KernelUnavailable, match="command not found"):
        outputs_and_grads(model, "fast", *args)


def test_backend_switches(kernel, monkeypatch):
    x = torch.randn(3, 2, 7)
    direction = LSTM(7, 4).directions[0]
    state = (torch.zeros(2, 4), torch.zeros(2, 4))
    assert dispatch.use_kernel("fast", x) and not dispatch.use_kernel("reference", x)
    assert not dispatch.use_kernel("auto", x.half())
    monkeypatch.setenv("ODYSSEY_BACKEND", "reference")
    assert not dispatch.use_kernel(None, x)
    monkeypatch.setenv("ODYSSEY_BACKEND", "fast")
    assert dispatch.use_kernel(None, x)
    monkeypatch.setenv("ODYSSEY_BACKEND", "quick")
    with pytest.raises(ValueError, match="ODYSSEY_BACKEND"):
        direction(x, state, None)
    with pytest.raises(ValueError, match="backend must be one of"):
        LSTM(7, 4, backend="quick")
    with pytest.raises(ValueError, match="float32/float64 on CPU"):
        dispatch.use_kernel("fast", x.half())


def test_build_name_follows_sources_and_torch(monkeypatch):
    name = build.build_name()
    assert name.startswith("odyssey_lstm_") and name == build.build_name()
    build.build_name.cache_clear()
    monkeypatch.setattr(torch, "__version__", "0.0.0-other")
    try:
        assert build.build_name() != name
    finally:
        monkeypatch.undo()
        build.build_name.cache_clear()
    assert build.build_name() == name


def test_empty_cache_frees_what_no_graph_holds(kernel):
    from odyssey.model.kernel import empty_cache

    model = randomised(SWITCHES["V"], 20, torch.float32)
    for direction in model.directions:
        direction.backend = "fast"
    x, state, lengths, _ = problem(model, 4, torch.float32, steps=400)  # buffers big enough to pool
    out, _ = model(x, state, lengths=lengths)
    assert kernel.pooled_bytes() > 0
    assert empty_cache() > 0  # the live graph's saved buffers stay
    out.sum().backward()
    del out
    assert empty_cache() == 0 and kernel.pooled_bytes() == 0
