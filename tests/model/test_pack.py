"""PackedNetwork against each of its trials run alone, in the style of PyTorch's fastrnns custom_lstms
tests: copy the weights, run both, assert equal outputs and gradients. Every variant and some
combinations, one and two directions and layers, both readouts, each trial its own lengths (NaN in
the padding), hidden sizes that differ in one pack; padded units change nothing and never learn;
dropout masks come from each trial's own generator; write_back is exact.

Tolerances, as max |pack - alone| / max(1, max |alone|) over outputs and every gradient, measured on
2026-12-07 (torch 2.13, one thread; 12 variants x 4 shapes x 3 trials, T = 7, H <= 5): float64 4.4e-16
against the reference path, 6.8e-16 against the C++ kernel; float32 2.4e-7 and 3.0e-7. The pack's
batched matmuls over padded sizes sum in another order than the alone run's, so equality is to the
last bits, not bit for bit; the tolerances below leave a margin of about 20.
"""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from odyssey.model import PackedNetwork, SequenceNetwork
from odyssey.model import pack as pack_module
from odyssey.model.pack import _trial_parameters

TOLERANCE = {torch.float64: 1e-14, torch.float32: 5e-6}
VARIANTS = ["V", "NIG", "NFG", "NOG", "NIAF", "NOAF", "NP", "CIFG", "FGR", "CIFG+NP", "NIG+NOAF+FGR", "NFG+NIAF"]
# (bidirectional, num_layers, readout): every variant in the first two, some in the others.
SHAPES = [(False, 1, "frames"), (True, 2, "last")]
MORE_SHAPES = [(True, 1, "frames"), (False, 2, "last")]
HIDDEN = [3, 5, 2]  # one pack, three sizes: the first and last trials are padded
LENGTHS = torch.tensor([[7, 3], [2, 4], [6, 1]])  # each trial its own batch; their longest differ
STEPS = 7

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device; none here")


@pytest.fixture(params=["reference", "kernel"])
def pack_path(request, monkeypatch):
    """The pack's two CPU paths: the autograd reference with a pack dimension, and each trial on the C++
    kernel on its own entries (backend "fast": an error if it does not run, never a silent fallback) and
    its own steps, here in blocks of 2, so that the trials' batches of 7, 4 and 6 steps run 7, 4 and 6."""
    if request.param == "kernel":
        request.getfixturevalue("kernel")
        monkeypatch.setattr(pack_module, "STEP_BLOCK", 2)
    monkeypatch.setenv("ODYSSEY_BACKEND", "fast" if request.param == "kernel" else "reference")
    return request.param


def networks(variant, *, bidirectional=False, num_layers=1, readout="frames", dropouts=None, dtype=torch.float64):
    """One SequenceNetwork per hidden size, every parameter non-zero (peepholes and gate matrices too)."""
    made = []
    for k, hidden in enumerate(HIDDEN):
        torch.manual_seed(k)
        network = SequenceNetwork(
            input_size=3,
            hidden_size=hidden,
            output_size=4,
            variant=variant,
            bidirectional=bidirectional,
            num_layers=num_layers,
            readout=readout,
            dropout=dropouts[k] if dropouts else 0.0,
        ).to(dtype)
        with torch.no_grad():
            for p in network.parameters():
                p.uniform_(-0.5, 0.5)
        made.append(network)
    return made


def problem(dtype=torch.float64, seed=9, device="cpu"):
    """Inputs (K, T, B, I) with NaN past every length, and a target that counts only real steps."""
    torch.manual_seed(seed)
    real = (torch.arange(STEPS).view(1, STEPS, 1) < LENGTHS.unsqueeze(1)).unsqueeze(-1)
    x = torch.randn(len(HIDDEN), STEPS, 2, 3, dtype=dtype).masked_fill(~real, float("nan"))
    target = torch.randn(len(HIDDEN), STEPS, 2, 4, dtype=dtype) * real
    return x.to(device), target.to(device)


def own_steps(k):
    """Trial k's batch alone is padded to its longest sequence, as pad_sequence pads it."""
    return int(LENGTHS[k].max())


def run_alone(network, k, x, target, *, backend="reference", seed=None):
    """Trial k's outputs on its own steps and its gradients, by name, its network run by itself."""
    network.lstm.backend = backend
    network.zero_grad(set_to_none=True)
    if seed is not None:  # dropout draws from torch's global generator alone
        torch.manual_seed(seed)
    out = network(x[k, : own_steps(k)], LENGTHS[k])
    (out * target[k, : own_steps(k)]).sum().backward()
    return out, {name: p.grad for name, p in _trial_parameters(network).items()}


def run_packed(pack, x, target, generators=None):
    pack.zero_grad(set_to_none=True)
    out = pack(x, LENGTHS, generators=generators)
    (out * target).sum().backward()
    return out


def padding(pack, name):
    """True on the entries of packed parameter `name` that no trial owns."""
    padded = torch.ones_like(pack.get_parameter(name), dtype=torch.bool)
    for k in range(len(pack.hidden_sizes)):
        padded[k][pack.places(name, k)] = False
    return padded


def assert_close(got, expected, dtype):
    tol = TOLERANCE[dtype]
    torch.testing.assert_close(got, expected, rtol=tol, atol=tol * max(1.0, expected.abs().max().item()))


def assert_trials_as_alone(pack, nets, x, target, *, backend="reference", dtype=torch.float64):
    """Each trial's outputs and gradients in the pack are its network's alone; padded gradients are 0."""
    out = run_packed(pack, x, target)
    for k, network in enumerate(nets):
        alone, grads = run_alone(network, k, x.cpu(), target.cpu(), backend=backend)
        assert_close(out[k, : own_steps(k)].cpu(), alone, dtype)
        for name, grad in grads.items():
            packed_grad = pack.get_parameter(name).grad
            assert_close(packed_grad[k][pack.places(name, k)].cpu(), grad, dtype)
    for name, p in pack.named_parameters():
        assert torch.all(p.grad[padding(pack, name)] == 0), f"{name}: a padded entry received gradient"


@pytest.mark.parametrize(
    "variant, bidirectional, num_layers, readout",
    [(v, *shape) for v in VARIANTS for shape in SHAPES]
    + [(v, *s) for v in ("V", "FGR", "CIFG+NP") for s in MORE_SHAPES],
)
def test_each_trial_computes_what_its_network_computes_alone(variant, bidirectional, num_layers, readout, pack_path):
    nets = networks(variant, bidirectional=bidirectional, num_layers=num_layers, readout=readout)
    pack = PackedNetwork(nets)
    assert_trials_as_alone(pack, nets, *problem())


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("variant", ["V", "CIFG", "NIG+NOAF+FGR"])
def test_each_trial_matches_the_default_kernel_path(kernel, variant, dtype, pack_path):
    """Alone on the C++ kernel (backend "auto" on the CPU), two directions and layers."""
    nets = networks(variant, bidirectional=True, num_layers=2, dtype=dtype)
    assert_trials_as_alone(PackedNetwork(nets), nets, *problem(dtype), backend="auto", dtype=dtype)


def graph_nodes(tensor):
    """The names of every autograd node behind a tensor."""
    seen, stack, names = set(), [tensor.grad_fn], []
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        names.append(type(node).__name__)
        stack.extend(next_node for next_node, _ in node.next_functions)
    return names


def test_on_the_kernel_each_direction_of_a_pack_is_one_autograd_node(kernel, monkeypatch):
    """Backend "auto" on the CPU takes the kernel: per direction one node for the whole pack, where the
    reference builds some 25 per step (what a pack is for, kernel/pack_function.py)."""
    monkeypatch.setenv("ODYSSEY_BACKEND", "auto")
    nets = networks("V", bidirectional=True, num_layers=2)
    x, _ = problem()
    nodes = graph_nodes(PackedNetwork(nets)(x, LENGTHS))
    assert nodes.count("PackedRecurrenceBackward") == 4
    assert len(nodes) < 60, nodes
    monkeypatch.setenv("ODYSSEY_BACKEND", "reference")
    assert len(graph_nodes(PackedNetwork(nets)(x, LENGTHS))) > 20 * STEPS * 4


def test_on_the_kernel_a_pack_refuses_a_double_backward_in_one_line(kernel, monkeypatch):
    monkeypatch.setenv("ODYSSEY_BACKEND", "fast")
    pack = PackedNetwork(networks("V"))
    out = pack(problem()[0], LENGTHS)
    with pytest.raises(RuntimeError, match="a pack has no double backward"):
        torch.autograd.grad(out.sum(), list(pack.parameters()), create_graph=True)


def test_without_lengths_every_trial_runs_every_step(pack_path):
    nets = networks("FGR", bidirectional=True, num_layers=2, readout="last")
    pack = PackedNetwork(nets)
    x = torch.randn(len(HIDDEN), STEPS, 2, 3, dtype=torch.float64)
    out = pack(x)
    for k, network in enumerate(nets):
        network.lstm.backend = "reference"
        assert_close(out[k], network(x[k]), torch.float64)


def test_ctc_gradients_are_each_trials_own(pack_path):
    """The handwriting task's loss: CTC over each trial's own input lengths."""
    nets = networks("V", bidirectional=True, num_layers=2)
    pack = PackedNetwork(nets)
    x, _ = problem()
    labels = torch.tensor([[1, 2], [3, 3]])  # a repeated label needs a blank between: 3 steps
    label_lengths = torch.tensor([[2, 1], [1, 2], [2, 1]])

    def ctc(out, k):
        return nn.functional.ctc_loss(
            out.log_softmax(-1), labels, LENGTHS[k], label_lengths[k], reduction="sum", zero_infinity=True
        )

    out = pack(x, LENGTHS)
    sum(ctc(out[k], k) for k in range(len(nets))).backward()
    for k, network in enumerate(nets):
        network.lstm.backend = "reference"
        ctc(network(x[k, : own_steps(k)], LENGTHS[k]), k).backward()
        for name, p in _trial_parameters(network).items():
            assert_close(pack.get_parameter(name).grad[k][pack.places(name, k)], p.grad, torch.float64)


@pytest.mark.parametrize("variant", ["V", "FGR", "CIFG+FGR"])
def test_a_trial_trained_in_a_pack_stores_what_it_stores_trained_alone(variant, pack_path):
    """Nesterov SGD steps on the pack and on each network alone; written back, the parameters agree and
    every padded entry is still exactly 0. Under FGR this needs the gate-to-gate mask: the padded
    units' gates are 0.5, and without it their weight_gg columns learn and then feed the real units."""
    nets = networks(variant, bidirectional=True, num_layers=2)
    alone = copy.deepcopy(nets)
    pack = PackedNetwork(nets)
    optimizer = torch.optim.SGD(pack.parameters(), lr=0.2, momentum=0.9, nesterov=True)
    optimizers = [torch.optim.SGD(n.parameters(), lr=0.2, momentum=0.9, nesterov=True) for n in alone]
    for step in range(3):
        x, target = problem(seed=step)
        run_packed(pack, x, target)
        optimizer.step()
        for k, (network, own) in enumerate(zip(alone, optimizers)):
            run_alone(network, k, x, target)
            own.step()
    for name, p in pack.named_parameters():
        assert torch.all(p[padding(pack, name)] == 0), f"{name}: a padded entry moved"
    pack.write_back(nets)
    for trained, reference in zip(nets, alone):
        for got, expected in zip(trained.parameters(), reference.parameters(), strict=True):
            assert_close(got, expected, torch.float64)


def test_write_back_is_exact_and_load_reads_it_again():
    nets = networks("FGR", bidirectional=True, num_layers=2)
    pack = PackedNetwork(nets)
    blank = [copy.deepcopy(n) for n in nets]
    for n in blank:
        for p in n.parameters():
            p.detach().zero_()
    pack.write_back(blank)
    for original, copied in zip(nets, blank):
        for a, b in zip(original.parameters(), copied.parameters(), strict=True):
            assert torch.equal(a, b)
            assert a.data_ptr() != b.data_ptr()
    again = PackedNetwork(blank)
    for name, p in pack.named_parameters():
        assert torch.equal(p, again.get_parameter(name))


@pytest.mark.parametrize("readout", ["frames", "last"])
def test_dropout_masks_come_from_each_trials_own_generator(readout):
    """Seeded alike, a trial's generator in the pack draws the masks torch's global generator draws for it
    alone: same outputs and gradients, and the generator ends in the same state."""
    dropouts = [0.3, 0.0, 0.5]
    nets = networks("CIFG", bidirectional=True, num_layers=2, readout=readout, dropouts=dropouts)
    pack = PackedNetwork(nets).train()
    x, target = problem()
    seeds = [11, 12, 13]
    generators = [torch.Generator().manual_seed(s) for s in seeds]
    out = run_packed(pack, x, target, generators)
    for k, network in enumerate(nets):
        alone, grads = run_alone(network.train(), k, x, target, seed=seeds[k])
        assert torch.equal(generators[k].get_state(), torch.get_rng_state()), "another number of draws"
        assert_close(out[k, : own_steps(k)], alone, torch.float64)
        for name, grad in grads.items():
            assert_close(pack.get_parameter(name).grad[k][pack.places(name, k)], grad, torch.float64)
    with pytest.raises(ValueError, match="generator"):
        pack(x, LENGTHS)
    pack.eval()
    assert torch.equal(pack(x, LENGTHS), pack(x, LENGTHS))  # no dropout, no generators needed


def test_networks_of_another_shape_cannot_join():
    nets = networks("V")
    with pytest.raises(ValueError, match="variant"):
        PackedNetwork([*nets, networks("NP")[0]])
    with pytest.raises(ValueError, match="num_layers"):
        PackedNetwork([*nets, networks("V", num_layers=2)[0]])
    with pytest.raises(TypeError):
        PackedNetwork([nn.Linear(3, 4)])
    pack = PackedNetwork(nets)
    with pytest.raises(ValueError, match="hidden sizes"):
        pack.write_back(nets[:2])
    x, _ = problem()
    with pytest.raises(ValueError, match=r"inputs must be \(K=3"):
        pack(x[:2], LENGTHS[:2])
    with pytest.raises(ValueError, match="lengths"):
        pack(x, LENGTHS.clamp(max=STEPS + 1) + 1)


# --- CUDA: the same property on the device ---------------------------------------------------------
# float64 on the device against the CPU's alone runs: cuBLAS and CUDA's transcendental functions
# round otherwise than the CPU, so these hold to 1e-12 (not measured here: no device in this session).


@pytest.mark.cuda
@needs_cuda
@pytest.mark.parametrize("variant", ["V", "NOG", "CIFG+NP", "FGR"])
def test_on_cuda_each_trial_computes_what_it_computes_alone(variant, monkeypatch):
    monkeypatch.setitem(TOLERANCE, torch.float64, 1e-12)
    nets = networks(variant, bidirectional=True, num_layers=2, readout="last")
    pack = PackedNetwork(copy.deepcopy(nets)).to("cuda")
    assert_trials_as_alone(pack, nets, *problem(device="cuda"))


@pytest.mark.cuda
@needs_cuda
def test_on_cuda_padded_entries_stay_zero_while_training():
    nets = networks("FGR", bidirectional=True, num_layers=2)
    pack = PackedNetwork(copy.deepcopy(nets)).to("cuda")
    optimizer = torch.optim.SGD(pack.parameters(), lr=0.2, momentum=0.9, nesterov=True)
    for step in range(4):
        run_packed(pack, *problem(seed=step, device="cuda"))
        optimizer.step()
    for name, p in pack.named_parameters():
        assert torch.all(p[padding(pack, name)] == 0), f"{name}: a padded entry moved on the device"
