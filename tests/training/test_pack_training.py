"""Trials trained in a pack (odyssey.training.pack) against each trained alone by `train`: the same
results, curves and weights; each stops at its own epoch, a diverging one leaves and the others go on,
a place freed is filled, a killed pack resumes packed and alone (and an alone one packed), and the
packed update is torch's optimizer, trial by trial.

Small tasks of random sequences (3 to 9 steps, so each step's trials differ in length) made here in
float64: a framewise one and a CTC one, one or two directions. Each member of a pack differs from
the others in learning rate, momentum, hidden size, input noise, dropout, clipping, weight decay,
patience and max_epochs.

Tolerance, as max |packed - alone| / max(1, max |alone|) over curves, results and every epoch's weights:
measured on 2026-12-07 (torch 2.13, one thread, the AMD EPYC) at most 7.2e-16 for the trials that
train normally, after 2 to 4 epochs, and 6.3e-14 for the weights of the diverging trial (lr 10,
momentum 0.99) when it leaves. The packed forward's batched matmuls sum in another order than the
C++ kernel alone; the optimizer update itself is bit for bit. TOLERANCE leaves a margin of 16 over
the worst. Every test here fails when the property it names is broken (checked by changing the code:
one learning rate, weight decay, dropout or noise generator for the pack, clipping over the pack, no
rows for a short batch, the dropout state left out of checkpoints, the optimizer state not written
back, Adam's step count shared, no look at the running loss mid-epoch, a plain multiply-add for
Nesterov's).
"""

from __future__ import annotations

import copy
import dataclasses
import shutil

import numpy as np
import pytest
import torch

from odyssey.model import PackedNetwork, SequenceNetwork
from odyssey.tasks.core.objectives import CTCTranscription, FramewiseClassification
from odyssey.tasks.core.sequences import Dataset, Sequences
from odyssey.tasks.core.task import SequenceTask
from odyssey.training.config import TrainingConfig
from odyssey.training.loop import Diverged, TrainingResult, train
from odyssey.training.pack import Member, train_pack
from odyssey.training.pack_optim import PackedOptimizer, clip_per_trial

TOLERANCE = 1e-12

# Three trials of one cell: B stalls (lr 1e-9) and stops by patience at epoch 2, A at max_epochs 3,
# C at max_epochs 4 with its gradient clipped hard and weight decay.
A = dict(learning_rate=0.05, hidden_size=4, momentum=0.9, input_noise=0.1, dropout=0.3, max_epochs=3, patience=5)
B = dict(learning_rate=1e-9, hidden_size=6, momentum=0.0, max_epochs=4, patience=1, gradient_clip=0.5)
C = dict(
    learning_rate=0.1,
    hidden_size=3,
    momentum=0.5,
    input_noise=0.2,
    dropout=0.2,
    max_epochs=4,
    patience=5,
    gradient_clip=0.05,
    weight_decay=1e-3,
)
STOPS = [(3, "max_epochs"), (2, "patience"), (4, "max_epochs")]


@pytest.fixture(autouse=True)
def one_thread():
    """The numbers above are one thread's; a busy 2-core machine also runs these 10 times faster so."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class Float64:
    """A task whose batches come in float64 (the tasks serve float32), for tight comparisons."""

    def __init__(self, task: SequenceTask) -> None:
        self._task = task

    def __getattr__(self, name):
        return getattr(self._task, name)

    def batches(self, *args, **kwargs):
        for batch in self._task.batches(*args, **kwargs):
            yield dataclasses.replace(batch, inputs=batch.inputs.double())


def tiny_task(kind: str, *, bidirectional: bool, train: int = 10) -> Float64:
    rng = np.random.default_rng(0)
    splits = {}
    for split, count in zip(("train", "validation", "test"), (train, 4, 4)):
        lengths = rng.integers(3, 10, count)
        inputs = [rng.standard_normal((t, 3)).astype(np.float32) for t in lengths]
        if kind == "ctc":
            targets = [rng.integers(1, 4, rng.integers(1, 3)) for _ in lengths]
        else:
            targets = [rng.integers(0, 4, t) for t in lengths]
        splits[split] = Sequences(inputs, targets)
    objective = CTCTranscription(3) if kind == "ctc" else FramewiseClassification(4)
    return Float64(SequenceTask(kind, Dataset(splits), objective, bidirectional=bidirectional))


@dataclasses.dataclass
class Case:
    variant: str
    task: Float64
    configs: list[TrainingConfig]

    def network(self, k: int, *, seed: int | None = None) -> tuple[SequenceNetwork, torch.Tensor]:
        """Trial k's network as a worker builds it (seeded, then made), and the global generator's state after."""
        config = self.configs[k]
        torch.manual_seed(k if seed is None else seed)
        network = SequenceNetwork(
            input_size=self.task.input_size,
            hidden_size=config.hidden_size,
            output_size=self.task.output_size,
            variant=self.variant,
            bidirectional=self.task.bidirectional,
            num_layers=config.num_layers,
            dropout=config.dropout,
        ).double()
        return network, torch.get_rng_state()


def case(
    variant="V",
    kind="frames",
    *,
    bidirectional=False,
    num_layers=2,
    batch_size=1,
    optimizer="sgd",
    trials=None,
    train=10,
):
    shared = dict(num_layers=num_layers, batch_size=batch_size, optimizer=optimizer)
    if optimizer == "adam":
        shared["momentum"] = 0.0
    configs = [TrainingConfig(**(t | shared)) for t in (trials or [A, B, C])]
    return Case(variant, tiny_task(kind, bidirectional=bidirectional, train=train), configs)


@dataclasses.dataclass
class Run:
    outcome: TrainingResult | Exception
    curve: list[float]  # each epoch's validation metric
    epochs: list[torch.Tensor]  # each epoch's weights, flat
    weights: list[torch.Tensor]  # at the end: the best epoch's


def recorder(curve, epochs, network, stop_at=None, hear=None):
    """on_epoch: records the metric and the weights (a packed trial's network holds the pack's then)."""

    def on_epoch(epoch, metric, best):
        curve.append(metric)
        epochs.append(torch.cat([p.detach().flatten() for p in network.parameters()]))
        if hear is not None:
            hear(epoch)
        if epoch == stop_at:
            raise KeyboardInterrupt

    return on_epoch


def alone(c: Case, *, folder=None, seeds=None, kill_at=None) -> list[Run]:
    """Each trial of the case trained alone by `train`; kill_at: its on_epoch raises KeyboardInterrupt then."""
    runs = []
    for k, config in enumerate(c.configs):
        network, _ = c.network(k, seed=seeds and seeds[k])
        curve, epochs = [], []
        path = folder / f"trial-{k}.pt" if folder else None
        on_epoch = recorder(curve, epochs, network, kill_at)
        try:
            outcome = train(network, c.task, config=config, seed=50 + k, checkpoint_path=path, on_epoch=on_epoch)
        except Diverged as err:
            outcome = err
        except KeyboardInterrupt:
            if kill_at is None:
                raise
            continue  # killed: its checkpoint stays
        runs.append(Run(outcome, curve, epochs, [p.detach().clone() for p in network.parameters()]))
    return runs


def packed(c: Case, *, folder=None, size=None, kill=None, seeds=None, on_epoch=None, device="cpu") -> list[Run]:
    """The case's trials trained in a pack on `device` (their networks on the CPU); kill=(k, epoch): trial k's
    on_epoch raises KeyboardInterrupt then; on_epoch(k, epoch) hears each trial's epochs."""
    members, records, networks = [], [], []
    for k, config in enumerate(c.configs):
        network, rng_state = c.network(k, seed=seeds and seeds[k])
        curve, epochs = [], []
        hear = (lambda epoch, k=k: on_epoch(k, epoch)) if on_epoch else None
        on_epoch_k = recorder(curve, epochs, network, kill[1] if kill and kill[0] == k else None, hear)
        path = folder / f"trial-{k}.pt" if folder else None
        members.append(Member(network, config, 50 + k, checkpoint_path=path, on_epoch=on_epoch_k, rng_state=rng_state))
        records.append((curve, epochs))
        networks.append(network)
    outcomes = train_pack(members, c.task, pack=lambda nets: PackedNetwork(nets).to(device), size=size)
    return [Run(o, *r, [p.detach() for p in n.parameters()]) for o, r, n in zip(outcomes, records, networks)]


def differences(got: list[Run], expected: list[Run]) -> float:
    """The largest relative difference of curves, results and weights; asserts what must be equal."""
    worst = 0.0
    for g, e in zip(got, expected, strict=True):
        assert type(g.outcome) is type(e.outcome), (g.outcome, e.outcome)
        if isinstance(e.outcome, Exception):
            assert str(g.outcome) == str(e.outcome)
        else:
            fields = ("epochs", "best_epoch", "stopped", "resumed_from")
            assert [getattr(g.outcome, f) for f in fields] == [getattr(e.outcome, f) for f in fields]
            worst = max(worst, _relative(g.outcome.validation, e.outcome.validation))
            worst = max(worst, _relative(g.outcome.test, e.outcome.test))
        assert len(g.curve) == len(e.curve) == len(g.epochs) == len(e.epochs)
        worst = max([worst, *(_relative(a, b) for a, b in zip(g.curve, e.curve))])
        for a, b in zip([*g.epochs, *g.weights], [*e.epochs, *e.weights], strict=True):
            worst = max(worst, ((a - b).abs().max() / max(1.0, b.abs().max().item())).item())
    return worst


def _relative(a: float, b: float) -> float:
    return abs(a - b) / max(1.0, abs(b))


def assert_as_alone(got: list[Run], expected: list[Run], *, tolerance: float = TOLERANCE) -> None:
    worst = differences(got, expected)
    assert worst <= tolerance, f"a trial in the pack differs from itself alone by {worst:.3g}"


@pytest.mark.parametrize(
    "variant, kind, bidirectional, num_layers, batch_size, optimizer",
    [
        ("V", "frames", False, 2, 1, "sgd"),
        ("CIFG", "frames", True, 2, 1, "sgd"),
        ("FGR", "ctc", True, 2, 1, "sgd"),
        ("NP", "ctc", False, 1, 1, "sgd"),
        ("V", "ctc", True, 2, 1, "adam"),
        ("NIG+NOAF+FGR", "frames", True, 2, 3, "sgd"),  # batches of 3 and a last one of 1 (10 sequences)
    ],
)
def test_each_trial_of_a_pack_trains_as_it_trains_alone(
    variant, kind, bidirectional, num_layers, batch_size, optimizer
):
    c = case(
        variant, kind, bidirectional=bidirectional, num_layers=num_layers, batch_size=batch_size, optimizer=optimizer
    )
    expected = alone(c)
    got = packed(c)
    assert_as_alone(got, expected)
    assert [(r.outcome.epochs, r.outcome.stopped) for r in got] == STOPS  # each left at its own epoch


def test_a_trial_that_diverges_leaves_and_the_others_go_on():
    exploding = dict(A, learning_rate=10.0, momentum=0.99, max_epochs=4, divergence_factor=1.5)
    c = case("V", "frames", trials=[A, exploding, C])
    expected = alone(c)
    assert "in epoch 2, more than 1.5 times the first epoch's" in str(expected[1].outcome)
    got = packed(c)
    assert_as_alone(got, expected)


def test_a_freed_place_takes_the_next_trial_mid_epoch():
    """Two places for three trials. The first diverges; train_epoch's look at the running loss finds it
    at step 32 of 40, so C joins at step 33 and its epochs end between A's: A1, C1, A2, C2, ..."""
    exploding = dict(A, learning_rate=1e300)
    c = case("CIFG", "ctc", bidirectional=True, trials=[exploding, A, C], train=40)
    expected = alone(c)
    assert str(expected[0].outcome) == "training loss became nan in epoch 1: not a finite number"
    order = []
    got = packed(c, size=2, on_epoch=lambda k, epoch: order.append(f"{'XAC'[k]}{epoch}"))
    assert order == ["A1", "C1", "A2", "C2", "A3", "C3", "C4"]
    assert_as_alone(got, expected)


def test_a_killed_pack_resumes_in_a_pack_and_alone_and_a_killed_trial_alone_resumes_in_a_pack(tmp_path):
    """Killed after epoch 1 (the last trial's on_epoch raises KeyboardInterrupt; each trial has saved its
    epoch 1): every trial resumes from its own checkpoint, in a pack or alone, to its uninterrupted result.
    Fresh processes would build the networks anew (other seeds here: the checkpoint overrides them)."""
    c = case("FGR", "frames", bidirectional=True)
    uninterrupted = alone(c)
    killed = tmp_path / "killed"
    with pytest.raises(KeyboardInterrupt):
        packed(c, folder=killed, kill=(2, 1))
    resumed_alone, alone_folder = tmp_path / "alone", tmp_path / "alone-killed"
    shutil.copytree(killed, resumed_alone)
    for k in range(3):
        assert torch.load(killed / f"trial-{k}.pt", weights_only=True)["epoch"] == 1

    got = packed(c, folder=killed, seeds=[7, 8, 9])
    for run in uninterrupted:
        run.outcome = dataclasses.replace(run.outcome, resumed_from=1)
        run.curve, run.epochs = run.curve[1:], run.epochs[1:]  # on_epoch hears the epochs trained after the resume
    assert_as_alone(got, uninterrupted)
    assert_as_alone(alone(c, folder=resumed_alone, seeds=[7, 8, 9]), uninterrupted)

    alone_folder.mkdir()
    assert alone(c, folder=alone_folder, kill_at=1) == []  # each killed after its epoch 1
    packed_file = torch.load(resumed_alone / "trial-0.pt", weights_only=True)
    alone_file = torch.load(alone_folder / "trial-0.pt", weights_only=True)
    assert packed_file.keys() == alone_file.keys()
    assert packed_file["optimizer"]["param_groups"] == alone_file["optimizer"]["param_groups"]
    assert_as_alone(packed(c, folder=alone_folder, seeds=[7, 8, 9]), uninterrupted)


# --- CUDA: the pack on the device; each trial's network, optimizer, generators and checkpoint on the CPU ---
# float64. cuBLAS and CUDA's exp and tanh round otherwise than the CPU, and training grows a difference in
# the last bits over its epochs; CUDA_TOLERANCE is not measured (no GPU was lent to the session that wrote
# these): the CPU's own packed-against-alone difference is 7.2e-16 after 2 to 4 epochs (above).
CUDA_TOLERANCE = 1e-9
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device; none here")


@pytest.mark.cuda
@needs_cuda
@pytest.mark.parametrize(
    "variant, kind, bidirectional, batch_size, optimizer",
    [("V", "frames", False, 1, "sgd"), ("FGR", "ctc", True, 1, "sgd"), ("NIG+NOAF", "frames", True, 3, "adam")],
)
def test_on_cuda_each_trial_of_a_pack_trains_as_it_trains_alone_on_the_cpu(
    variant, kind, bidirectional, batch_size, optimizer
):
    c = case(variant, kind, bidirectional=bidirectional, batch_size=batch_size, optimizer=optimizer)
    got = packed(c, device="cuda")
    assert_as_alone(got, alone(c), tolerance=CUDA_TOLERANCE)
    assert [(r.outcome.epochs, r.outcome.stopped) for r in got] == STOPS
    assert all(p.device.type == "cpu" for run in got for p in run.weights)  # the trials' own networks stay


@pytest.mark.cuda
@needs_cuda
def test_a_pack_killed_on_cuda_resumes_alone_on_the_cpu_and_in_a_pack_on_cuda(tmp_path):
    c = case("CIFG", "frames", bidirectional=True)
    uninterrupted = alone(c)
    killed = tmp_path / "killed"
    with pytest.raises(KeyboardInterrupt):
        packed(c, folder=killed, kill=(2, 1), device="cuda")
    saved = torch.load(killed / "trial-0.pt", weights_only=True)
    tensors = [v for v in saved["optimizer"]["state"][0].values() if isinstance(v, torch.Tensor)]
    assert tensors and all(t.device.type == "cpu" for t in tensors)  # a checkpoint resumes on any machine
    resumed_alone = tmp_path / "alone"
    shutil.copytree(killed, resumed_alone)
    for run in uninterrupted:
        run.outcome = dataclasses.replace(run.outcome, resumed_from=1)
        run.curve, run.epochs = run.curve[1:], run.epochs[1:]
    assert_as_alone(alone(c, folder=resumed_alone, seeds=[7, 8, 9]), uninterrupted, tolerance=CUDA_TOLERANCE)
    assert_as_alone(packed(c, folder=killed, seeds=[7, 8, 9], device="cuda"), uninterrupted, tolerance=CUDA_TOLERANCE)


def test_trials_of_another_batch_size_or_optimizer_cannot_join():
    c = case()
    c.configs[2] = dataclasses.replace(c.configs[2], batch_size=2)
    with pytest.raises(ValueError, match="share batch_size"):
        packed(c)
    c = case()
    c.configs[1] = dataclasses.replace(c.configs[1], optimizer="adam", momentum=0.0)
    with pytest.raises(ValueError, match="share optimizer"):
        packed(c)


# --- the packed update and clipping against torch's, on the same gradients ---------------------------------


def networks_with_gradients(hidden=(4, 6, 3), steps=3):
    """Three networks of one shape, a pack of them, and per step gradients: random on each trial's entries,
    zero on the padding."""
    made = []
    for k, h in enumerate(hidden):
        torch.manual_seed(k)
        made.append(SequenceNetwork(input_size=3, hidden_size=h, output_size=4, variant="FGR", bidirectional=True))
        made[-1].double()
    pack = PackedNetwork(made)
    gradients = []
    for step in range(steps):
        torch.manual_seed(100 + step)
        grads = {}
        for name, p in pack.named_parameters():
            grads[name] = torch.zeros_like(p)
            for k in range(len(hidden)):
                place = pack.places(name, k)
                grads[name][k][place] = torch.randn(grads[name][k][place].shape, dtype=p.dtype)
        gradients.append(grads)
    return made, pack, gradients


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_the_packed_update_is_each_trials_torch_optimizer_bit_for_bit(optimizer):
    from odyssey.training.optim import build_optimizer

    trials = [(0.1, 0.9, 0.0), (0.03, 0.0, 1e-2), (0.5, 0.5, 1e-3)]  # lr, momentum (SGD: 0 is plain), weight decay
    configs = [
        TrainingConfig(
            learning_rate=lr, momentum=m if optimizer == "sgd" else 0.0, weight_decay=wd, optimizer=optimizer
        )
        for lr, m, wd in trials
    ]
    nets, pack, gradients = networks_with_gradients()
    alone_nets = copy.deepcopy(nets)
    own = [build_optimizer(n, config) for n, config in zip(alone_nets, configs)]
    packed_own = [build_optimizer(n, config) for n, config in zip(nets, configs)]
    for _ in range(2):  # the last trial comes with two updates behind it (resumed, or from an earlier pack)
        for network, opt in ((nets[2], packed_own[2]), (alone_nets[2], own[2])):
            torch.manual_seed(5)
            for p in network.parameters():
                p.grad = torch.randn_like(p)
            opt.step()
    pack.load(nets)
    fused = PackedOptimizer(pack, nets, packed_own)
    for grads in gradients:
        for name, p in pack.named_parameters():
            p.grad = grads[name].clone()
        fused.step()
        for k, (network, opt) in enumerate(zip(alone_nets, own)):
            for name, p in pack.trial_parameters(network).items():
                p.grad = grads[name][k][pack.places(name, k)].clone()
            opt.step()
    pack.write_back(nets)
    fused.write_back(nets, packed_own)
    for a, b in zip(nets, alone_nets):
        assert all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters(), strict=True))
    for mine, theirs in zip(packed_own, own):
        mine, theirs = mine.state_dict(), theirs.state_dict()
        assert mine["param_groups"] == theirs["param_groups"] and mine["state"].keys() == theirs["state"].keys()
        for index, state in theirs["state"].items():
            assert state.keys() == mine["state"][index].keys()
            assert all(torch.equal(state[key], mine["state"][index][key]) for key in state)
    for name, p in pack.named_parameters():  # the padding never moved
        padding = torch.ones_like(p, dtype=torch.bool)
        for k in range(3):
            padding[k][pack.places(name, k)] = False
        assert torch.all(p[padding] == 0)


def test_clipping_scales_each_trials_gradient_by_its_own_norm():
    nets, pack, gradients = networks_with_gradients(steps=1)
    limits = torch.tensor([0.5, float("inf"), 100.0], dtype=torch.float64)  # clipped, not clipped, not reached
    for name, p in pack.named_parameters():
        p.grad = gradients[0][name].clone()
    clip_per_trial([p for _, p in pack.named_parameters()], limits)
    for k, (network, limit) in enumerate(zip(nets, limits.tolist())):
        own = pack.trial_parameters(network)
        for name, p in own.items():
            p.grad = gradients[0][name][k][pack.places(name, k)].clone()
        if limit != float("inf"):
            torch.nn.utils.clip_grad_norm_(network.parameters(), limit)
        for name, p in own.items():
            torch.testing.assert_close(
                pack.get_parameter(name).grad[k][pack.places(name, k)], p.grad, rtol=1e-15, atol=0
            )
