"""The search space: the one key -> setting mapping, choices and steps, conditional momentum, and a
study searching layers, dropout and the optimizer end to end."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import optuna
import pytest
import torch

from odyssey.model.network import SequenceNetwork
from odyssey.study.space import PAPER_SPACE, Choice, ParamRange, distributions, draw, inactive, suggest, trial_settings
from odyssey.study.studyfile import StudyFileError, load_study_file
from odyssey.training.config import (
    OPTIMIZERS,
    SPACE_KEYS,
    TRAINING_KEYS,
    TrainingConfig,
    space_setting,
    stored_training,
)
from odyssey.training.optim import BUILDERS, build_optimizer

BASE = """
name = "s"
tasks = ["adding"]
variants = ["V"]
trials = 2
"""


def load(tmp_path: Path, text: str):
    path = tmp_path / "s.toml"
    path.write_text(BASE + text)
    return load_study_file(path)


def test_every_space_key_maps_to_a_field_and_every_optimizer_has_a_builder():
    assert all(space_setting(key).field in TrainingConfig.__dataclass_fields__ for key in SPACE_KEYS)
    assert tuple(BUILDERS) == OPTIMIZERS
    assert list(SPACE_KEYS)[:4] == list(PAPER_SPACE)  # drawn first, in the paper's order, as before
    # The order of drawing: random-search values depend on it, so reordering TrainingConfig's fields must not change it.
    assert SPACE_KEYS == ("learning_rate", "hidden_size", "one_minus_momentum", "input_noise", "batch_size",
                          "num_layers", "dropout", "forget_bias", "optimizer", "weight_decay",
                          "gradient_clip")  # fmt: skip


def test_a_stored_training_table_holds_what_it_held_before_one_schema():
    """Study files stored before one schema keep their digest: [training] never holds the searched
    fields, and the settings added later only where set."""
    assert set(TRAINING_KEYS) == {"batch_size", "max_epochs", "patience", "eval_batch_size", "max_seconds",
                                  "forget_bias", "divergence_factor", "optimizer", "weight_decay", "gradient_clip",
                                  "num_layers", "dropout"}  # fmt: skip
    assert stored_training(TrainingConfig(learning_rate=0.5, hidden_size=3, momentum=0.5, input_noise=0.5)) == {
        "batch_size": 1, "max_epochs": 150, "patience": 15, "eval_batch_size": 64, "max_seconds": None,
        "forget_bias": 0.0, "divergence_factor": 1e3}  # fmt: skip
    assert stored_training(TrainingConfig(dropout=0.1))["dropout"] == 0.1


def test_trial_settings_give_one_config_with_the_values_over_the_training_table():
    values = {
        "learning_rate": 0.01,
        "hidden_size": 9,
        "one_minus_momentum": 0.25,
        "input_noise": 0.1,
        "batch_size": 4,
        "num_layers": 2,
        "dropout": 0.2,
        "optimizer": "sgd",
        "weight_decay": 1e-4,
        "gradient_clip": 1.0,
        "forget_bias": 1.0,
    }
    config = trial_settings(TrainingConfig(max_epochs=3), values)
    assert (config.learning_rate, config.hidden_size, config.momentum, config.input_noise) == (0.01, 9, 0.75, 0.1)
    assert (
        config.batch_size,
        config.num_layers,
        config.dropout,
        config.optimizer,
        config.weight_decay,
        config.gradient_clip,
        config.forget_bias,
        config.max_epochs,
    ) == (4, 2, 0.2, "sgd", 1e-4, 1.0, 1.0, 3)
    config = trial_settings(
        TrainingConfig(),
        {k: values[k] for k in ("learning_rate", "hidden_size", "input_noise")} | {"optimizer": "adam"},
    )
    assert config.momentum == 0.0 and config.optimizer == "adam"


def test_the_paper_space_draws_what_it_drew_and_a_conditional_key_leaves_the_others_alone():
    paper = draw(PAPER_SPACE, np.random.default_rng(5))
    assert set(paper) == set(PAPER_SPACE)
    wider = {**PAPER_SPACE, "optimizer": Choice(("sgd", "adam")), "num_layers": Choice((1, 2, 3))}
    seen = set()
    for seed in range(40):
        values = draw(wider, np.random.default_rng(seed))
        base = draw(PAPER_SPACE, np.random.default_rng(seed))
        assert all(values[k] == base[k] for k in PAPER_SPACE if k in values)
        assert ("one_minus_momentum" in values) == (values["optimizer"] == "sgd")
        assert inactive(wider, values) == ([] if values["optimizer"] == "sgd" else ["one_minus_momentum"])
        seen.add(values["optimizer"])
    assert seen == {"sgd", "adam"}


def test_a_fixed_log_scaled_value_is_queued_exactly():
    # exp(log(0.01)) is 0.010000000000000004: Optuna refused to queue a trial with `learning_rate = 0.01`.
    fixed = ParamRange(0.01, 0.01, log=True)
    value = draw({"learning_rate": fixed}, np.random.default_rng(0))["learning_rate"]
    assert distributions({"learning_rate": fixed})["learning_rate"]._contains(value)


def test_steps_and_choices_draw_on_their_grid_and_match_their_distributions():
    space = {
        "batch_size": ParamRange(8, 64, integer=True, step=8),
        "dropout": ParamRange(0.0, 0.5, step=0.1),
        "optimizer": Choice(("sgd", "adam")),
    }
    dists = distributions(space)
    for seed in range(30):
        values = draw(space, np.random.default_rng(seed))
        assert values["batch_size"] % 8 == 0 and isinstance(values["batch_size"], int)
        assert abs(values["dropout"] * 10 - round(values["dropout"] * 10)) < 1e-9
        for name, value in values.items():
            assert dists[name]._contains(dists[name].to_internal_repr(value))


def test_suggest_asks_momentum_only_of_sgd_trials():
    space = {**PAPER_SPACE, "optimizer": Choice(("sgd", "adam"))}
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(20):
        trial = study.ask()
        values = suggest(trial, space)
        study.tell(trial, 0.0)
    for trial in study.trials:
        assert ("one_minus_momentum" in trial.params) == (trial.params["optimizer"] == "sgd")
    assert {t.params["optimizer"] for t in study.trials} == {"sgd", "adam"}
    assert list(values) == [k for k in space if k in values]


@pytest.mark.parametrize(
    "text, expected",
    [
        (
            "[space]\nnum_layers = { choices = [1, 2] }\ndropout = { low = 0.0, high = 0.5, step = 0.1 }\n"
            "optimizer = { choices = ['sgd', 'adam'] }\n",
            None,
        ),
        (
            "[space]\noptimizer = 'rmsprop'\n",
            "'space.optimizer': optimizer must be one of 'sgd', 'adam', got 'rmsprop'",
        ),
        ("[space]\noptimizer = { choices = [] }\n", "'space.optimizer.choices' must be a non-empty list"),
        ("[space]\nnum_layers = { choices = [1, 1] }\n", "must be a non-empty list of different values"),
        ("[space]\nnum_layers = { choices = [1, 2.5] }\n", "'space.num_layers.choices' must hold whole numbers"),
        ("[space]\nnum_layers = 0\n", "'space.num_layers' must lie where num_layers is at least 1"),
        ("[space]\ndropout = { low = 0.0, high = 1.0 }\n", "'space.dropout' must lie where dropout is in [0, 1)"),
        ("[space]\nbatch_size = { low = 8, high = 60, step = 8 }\n", "must be a multiple of step 8"),
        (
            "[space]\nbatch_size = { low = 8, high = 64, step = 8, log = true }\n",
            "cannot be both log-scaled and stepped",
        ),
        (
            "[space]\nbatch_size = { low = 8, high = 64, step = 2.5 }\n",
            "'space.batch_size.step' must be a whole number > 0",
        ),
        ("[space]\ndropout = { low = 0.1, high = 0.2, grid = 3 }\n", "unknown key 'space.dropout.grid'"),
        ("[space]\nlayers = 2\n", "unknown key 'space.layers'"),
        (
            "[training]\nnum_layers = 2\n[space]\nnum_layers = { choices = [1, 2] }\n",
            "'num_layers' is set under both [training] and [space]",
        ),
        ("[training]\nlearning_rate = 0.1\n", "'learning_rate' belongs under [space], not [training]"),
        ("[training]\noptimizer = 'adamw'\n", "'training.optimizer' must be one of 'sgd', 'adam', got 'adamw'"),
        ("[training]\ndropout = 1.5\n", "'training.dropout' must be in [0, 1), got 1.5"),
        ("[training]\ngradient_clip = -1\n", "'training.gradient_clip' must be a number > 0"),
        (
            "[training]\noptimizer = 'adam'\n[space]\none_minus_momentum = 0.1\n",
            "'space.one_minus_momentum' applies only with optimizer 'sgd'",
        ),
    ],
)
def test_space_and_training_keys_are_checked_with_one_line_errors(tmp_path, text, expected):
    if expected is None:
        spec = load(tmp_path, text)
        assert spec.space["num_layers"] == Choice((1, 2)) and spec.space["optimizer"] == Choice(("sgd", "adam"))
        assert spec.space["dropout"] == ParamRange(0.0, 0.5, step=0.1)
        assert list(spec.space) == [k for k in SPACE_KEYS if k in spec.space]
        return
    with pytest.raises(StudyFileError) as err:
        load(tmp_path, text)
    assert expected in str(err.value) and "\n" not in str(err.value), str(err.value)


def test_a_fixed_adam_drops_momentum_from_the_space_and_the_spec_stays_as_before_by_default(tmp_path):
    spec = load(tmp_path, "[training]\noptimizer = 'adam'\nweight_decay = 0.001\n")
    assert "one_minus_momentum" not in spec.space and spec.training.optimizer == "adam"
    assert spec.canonical()["training"]["optimizer"] == "adam" and "dropout" not in spec.canonical()["training"]
    plain = load(tmp_path, "")
    stored = plain.canonical()
    assert set(stored["training"]) == {
        "batch_size",
        "max_epochs",
        "patience",
        "eval_batch_size",
        "max_seconds",
        "forget_bias",
        "divergence_factor",
    }
    assert "task_sources" not in stored and all(
        set(v) == {"low", "high", "log", "integer"} for v in stored["space"].values()
    )


def test_stacked_layers_dropout_adam_clipping_and_weight_decay_train():
    from odyssey.tasks import make_task
    from odyssey.training import train

    task = make_task("adding", seed=0, length=6, train=32, validation=8, test=8)
    torch.manual_seed(0)
    net = SequenceNetwork(
        input_size=2, hidden_size=5, output_size=1, variant="CIFG", bidirectional=True, num_layers=3, dropout=0.3
    )
    assert (
        net.lstm.num_layers == 3 and net.lstm.dropout == 0.3 and net.lstm.switches.coupled_gates
    )  # every layer of the cell's variant
    assert net.lstm.weight_ih_l1.shape == (15, 10) and net.lstm.weight_ih_l2_reverse.shape == (15, 10)
    x, lengths = torch.randn(6, 4, 2), torch.tensor([6, 5, 3, 1])
    net.eval()
    assert torch.equal(net(x, lengths), net(x, lengths))  # dropout only while training
    net.train()
    assert not torch.equal(net(x, lengths), net(x, lengths))
    config = TrainingConfig(
        learning_rate=0.01,
        hidden_size=5,
        batch_size=8,
        max_epochs=2,
        optimizer="adam",
        gradient_clip=0.5,
        weight_decay=1e-3,
    )
    assert isinstance(build_optimizer(net, config), torch.optim.Adam)
    assert train(net, task, config=config, seed=0).epochs == 2
    sgd = build_optimizer(net, TrainingConfig(learning_rate=0.1, hidden_size=5, momentum=0.9, weight_decay=0.01))
    assert isinstance(sgd, torch.optim.SGD) and sgd.defaults["nesterov"] and sgd.defaults["weight_decay"] == 0.01


def test_gradient_clipping_bounds_every_update(monkeypatch):
    from odyssey.tasks import make_task
    from odyssey.training import loop as train_module

    norms = []
    original = torch.nn.utils.clip_grad_norm_

    def recording(parameters, max_norm):
        parameters = list(parameters)
        total = original(parameters, max_norm)
        norms.append(float(torch.norm(torch.stack([p.grad.norm() for p in parameters if p.grad is not None]))))
        return total

    monkeypatch.setattr(train_module.nn.utils, "clip_grad_norm_", recording)
    task = make_task("adding", seed=0, length=6, train=16, validation=8, test=8)
    net = SequenceNetwork(input_size=2, hidden_size=4, output_size=1, variant="V", bidirectional=False)
    config = TrainingConfig(learning_rate=0.01, hidden_size=4, batch_size=4, max_epochs=1, gradient_clip=1e-3)
    train_module.train(net, task, config=config, seed=0)
    assert len(norms) == 4 and max(norms) <= 1e-3 * 1.001


STUDY = """
name = "layers"
tasks = ["adding"]
variants = ["V"]
trials = 8
seed = 2
[training]
batch_size = 16
max_epochs = 1
[space]
hidden_size = { low = 4, high = 6 }
learning_rate = { low = 1e-3, high = 1e-2, log = true }
num_layers = { choices = [1, 2] }
dropout = { low = 0.0, high = 0.4 }
optimizer = { choices = ["sgd", "adam"] }
[task_options.adding]
length = 5
train = 32
validation = 8
test = 8
"""


def test_a_study_searching_layers_dropout_and_the_optimizer_stores_momentum_only_for_sgd(tmp_path, cache, cli):
    (tmp_path / "layers.toml").write_text(STUDY)
    cli("run", "layers.toml", cwd=tmp_path)
    trials = optuna.load_study(study_name="layers/adding/V", storage=f"sqlite:///{tmp_path}/results/layers.db").trials
    assert [t.state.name for t in trials] == ["COMPLETE"] * 8
    assert {t.params["optimizer"] for t in trials} == {"sgd", "adam"} and {t.params["num_layers"] for t in trials} == {
        1,
        2,
    }
    for t in trials:
        sgd = t.params["optimizer"] == "sgd"
        assert ("one_minus_momentum" in t.params) == sgd
        assert t.user_attrs.get("inactive_params") == (None if sgd else ["one_minus_momentum"])
        assert 0.0 <= t.params["dropout"] <= 0.4
    counts = {(t.params["hidden_size"], t.params["num_layers"]): t.user_attrs["parameter_count"] for t in trials}
    compared = [h for h in range(4, 7) if (h, 1) in counts and (h, 2) in counts]
    assert compared and all(counts[h, 2] > counts[h, 1] for h in compared)  # the second layer is built
    cli("report", "layers.toml", cwd=tmp_path)
