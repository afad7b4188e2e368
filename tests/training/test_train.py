"""The training protocol: learning happens, resuming from a checkpoint changes nothing, bad checkpoints restart."""

import math

import pytest
import torch

from odyssey.model.network import SequenceNetwork
from odyssey.tasks import make_task
from odyssey.training import checkpoint
from odyssey.training.config import TrainingConfig
from odyssey.training.loop import Diverged, _check_divergence, evaluate, train


@pytest.fixture(scope="module")
def task():
    return make_task("adding", seed=0, length=12, train=96, validation=32, test=32)


def network(task, seed=0):
    torch.manual_seed(seed)
    return SequenceNetwork(
        input_size=task.input_size,
        hidden_size=8,
        output_size=task.output_size,
        variant="V",
        bidirectional=task.bidirectional,
    )


HP = dict(learning_rate=0.05, hidden_size=8, momentum=0.9, input_noise=0.1)


def test_training_improves_on_the_untrained_network_and_reports_the_best_epoch(task):
    model = network(task)
    before = evaluate(model, task, "validation", batch_size=64)
    result = train(model, task, config=TrainingConfig(**HP, batch_size=8, max_epochs=6, patience=10), seed=1)
    assert result.validation < before and result.epochs == 6 and 1 <= result.best_epoch <= 6
    assert result.stopped == "max_epochs" and math.isfinite(result.test)


def test_early_stopping_after_patience_epochs_without_improvement(task):
    # A learning rate this small leaves the metric flat: improvements stop at once.
    flat = dict(learning_rate=1e-9, hidden_size=8, momentum=0.0, input_noise=0.0)
    result = train(network(task), task, config=TrainingConfig(**flat, batch_size=8, max_epochs=50, patience=2), seed=1)
    assert result.stopped == "patience" and result.epochs == result.best_epoch + 2 < 50


def test_resuming_from_a_checkpoint_gives_the_uninterrupted_result(task, tmp_path):
    config = TrainingConfig(**HP, batch_size=8, max_epochs=5, patience=10)
    whole = train(network(task), task, config=config, seed=3)

    path = tmp_path / "trial.pt"
    first = train(
        network(task),
        task,
        config=TrainingConfig(**HP, batch_size=8, max_epochs=2, patience=10),
        seed=3,
        checkpoint_path=path,
    )
    assert first.epochs == 2 and path.exists()
    # A fresh process would rebuild the model from its seed, then load the checkpoint over it.
    resumed = train(network(task, seed=99), task, config=config, seed=3, checkpoint_path=path)
    assert resumed.resumed_from == 2 and resumed.epochs == 5
    assert resumed.validation == pytest.approx(whole.validation, rel=1e-5)
    assert resumed.test == pytest.approx(whole.test, rel=1e-5)


@pytest.mark.parametrize("damage", ["truncate", "garbage", "other_model"])
def test_a_damaged_checkpoint_restarts_from_zero_with_a_warning(task, tmp_path, damage):
    path = tmp_path / "trial.pt"
    config = TrainingConfig(**HP, batch_size=8, max_epochs=2, patience=10)
    train(
        network(task),
        task,
        config=TrainingConfig(**HP, batch_size=8, max_epochs=1, patience=10),
        seed=3,
        checkpoint_path=path,
    )
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[:100])
    elif damage == "garbage":
        path.write_bytes(b"not a checkpoint")
    else:
        other = SequenceNetwork(
            input_size=task.input_size, hidden_size=5, output_size=1, variant="NP", bidirectional=False
        )
        optimizer = torch.optim.SGD(other.parameters(), lr=0.1)
        checkpoint.save(
            path, checkpoint.TrainingState(epoch=1), model=other, optimizer=optimizer, generator=torch.Generator()
        )
    fresh = train(network(task), task, config=config, seed=3)
    with pytest.warns(UserWarning, match="checkpoint unreadable"):
        restarted = train(network(task), task, config=config, seed=3, checkpoint_path=path)
    assert restarted.resumed_from == 0 and restarted.validation == pytest.approx(fresh.validation, rel=1e-5)


def test_non_finite_loss_is_divergence(task):
    explosive = dict(learning_rate=1e4, hidden_size=8, momentum=0.9, input_noise=0.0)
    with pytest.raises(Diverged, match="became"):
        train(network(task), task, config=TrainingConfig(**explosive, batch_size=8, max_epochs=20, patience=20), seed=1)


def _epochs(losses, metrics, factor=1e3):
    """Feeds _check_divergence epoch by epoch, as train() does."""
    state = checkpoint.TrainingState()
    for epoch, (loss, metric) in enumerate(zip(losses, metrics), start=1):
        state.epoch = epoch
        _check_divergence(state, train_loss=loss, metric=metric, factor=factor, name="error_rate")


def test_an_error_rate_of_zero_in_the_first_epoch_is_not_a_baseline_for_divergence():
    """Issue 25: a sensor study's validation error 0 after epoch 1, then 0.04167, was stored as diverged."""
    _epochs(losses=[0.9, 0.5, 0.4, 0.35], metrics=[0.0, 0.0, 0.04167, 0.08333])


def test_an_exploding_loss_is_divergence_and_the_reason_says_why():
    with pytest.raises(
        Diverged,
        match=r"training loss became 2000 in epoch 3, more than 1000 times the first epoch's 1 \(divergence_factor\)",
    ):
        _epochs(losses=[1.0, 0.5, 2000.0], metrics=[0.5, 0.4, 0.5])
    with pytest.raises(Diverged, match="training loss became inf in epoch 2: not a finite number"):
        _epochs(losses=[1.0, math.inf], metrics=[0.5, 0.4])
    with pytest.raises(
        Diverged, match="validation error_rate became nan in epoch 2: the network's outputs are no longer finite"
    ):
        _epochs(losses=[1.0, 0.9], metrics=[0.5, math.nan])
    _epochs(losses=[0.0, 5.0], metrics=[0.5, 0.4])  # nothing to compare a loss with but 0: only the finite check


def test_bad_training_settings_are_refused():
    with pytest.raises(ValueError, match="'patience' must be at least 1"):
        TrainingConfig(patience=0)


def test_a_checkpoint_of_another_training_with_the_same_shapes_is_not_resumed(task, tmp_path):
    """After a storage reset, say: a leftover checkpoint at the same path must not resume an unrelated trial."""
    path = tmp_path / "trial.pt"
    config = TrainingConfig(**HP, batch_size=8, max_epochs=2, patience=10)
    mine, leftover = (
        {"cell": "s/adding/V", "slot": 0, "params": {"lr": 0.1}},
        {"cell": "s/adding/V", "slot": 0, "params": {"lr": 0.3}},
    )
    train(
        network(task),
        task,
        config=TrainingConfig(**HP, batch_size=8, max_epochs=1, patience=10),
        seed=3,
        checkpoint_path=path,
        checkpoint_identity=leftover,
    )
    fresh = train(network(task), task, config=config, seed=3)
    with pytest.warns(UserWarning, match="checkpoint of another training"):
        restarted = train(network(task), task, config=config, seed=3, checkpoint_path=path, checkpoint_identity=mine)
    assert restarted.resumed_from == 0 and restarted.validation == pytest.approx(fresh.validation, rel=1e-5)
    again = train(
        network(task),
        task,
        config=TrainingConfig(**HP, batch_size=8, max_epochs=3, patience=10),
        seed=3,
        checkpoint_path=path,
        checkpoint_identity=mine,
    )
    assert again.resumed_from == 2  # its own checkpoint resumes


def _denormal_survives() -> bool:
    return (torch.tensor([1e-39]) * 1.0).item() != 0.0  # 1e-39 is below float32's smallest normal


def test_training_threads_flush_denormals_and_give_torchs_defaults_back():
    """Saturated gates make denormal floats, each an Intel microcode assist: an epoch of NFG on
    handwriting took 8 times as long with them. A study's workers train with them flushed."""
    from odyssey.training import training_threads

    threads = torch.get_num_threads()
    assert _denormal_survives()
    with training_threads(1):
        assert not _denormal_survives() and torch.get_num_threads() == 1
    assert _denormal_survives() and torch.get_num_threads() == threads


def test_a_studys_worker_trains_with_denormals_flushed(tmp_path, monkeypatch, cache):
    from odyssey.study import runner, worker
    from odyssey.study.studyfile import load_study_file

    seen = []
    real_train = worker.train_alone

    def train(*args, **kwargs):
        seen.append(_denormal_survives())
        return real_train(*args, **kwargs)

    monkeypatch.setattr(worker, "train_alone", train)
    study = tmp_path / "tiny.toml"
    study.write_text(
        'name = "tiny"\ntasks = ["adding"]\nvariants = ["V"]\ntrials = 1\n[training]\nmax_epochs = 1\n'
        "[task_options.adding]\nlength = 12\ntrain = 16\nvalidation = 8\ntest = 8\n"
    )
    runner.run(load_study_file(study), storage_url=f"sqlite:///{tmp_path}/tiny.db", progress=False)
    assert seen == [False] and _denormal_survives()
