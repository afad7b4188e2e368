"""Loading odyssey cells from a storage: which trials count, their states and the analysis scales."""

from __future__ import annotations

import math

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from odyssey.analysis.scales import scale_of
from odyssey.analysis.study_analysis import cell_counts
from odyssey.analysis.trials import load_odyssey_trials

DISTS = {"learning_rate": FloatDistribution(1e-6, 1e-2, log=True)}


def _add(study: optuna.Study, state: TrialState, **attrs) -> None:
    system = attrs.pop("system_attrs", {})
    value = 0.5 if state == TrialState.COMPLETE else None
    trial = optuna.trial.create_trial(
        state=state,
        value=value,
        params={"learning_rate": 1e-3},
        distributions=DISTS,
        user_attrs=attrs,
        system_attrs=system,
    )
    study.add_trial(trial)


def test_cells_count_slots_not_retries_and_keep_states():
    storage = optuna.storages.InMemoryStorage()
    study = optuna.create_study(storage=storage, study_name="s/chorales/V")
    study.set_user_attr("odyssey_study", "s")  # no task/variant attributes: read from the name
    _add(study, TrialState.COMPLETE, test_metric=0.4, seconds=3.0, parameter_count=100, metric="nll")
    _add(study, TrialState.FAIL, failure="diverged")
    _add(study, TrialState.FAIL)  # a crashed worker's trial, retried below: its retry holds the slot
    _add(study, TrialState.WAITING, system_attrs={"retry_history": [2]})
    _add(study, TrialState.RUNNING)
    _add(study, TrialState.PRUNED, stopped="pruned", epochs=2)  # stopped by its pruner: final, and never complete
    trials = load_odyssey_trials(storage, "s")
    assert cell_counts(trials.frame).iloc[0].to_dict() == {
        "task": "chorales",
        "variant": "V",
        "complete": 1,
        "pruned": 1,
        "failed": 1,
        "running": 1,
        "waiting": 1,
    }
    assert trials.metrics == {"chorales": "nll"}  # from the trials when the study does not say
    done = trials.complete()
    assert len(done) == 1 and done.loc[0, "test_metric"] == 0.4 and done.loc[0, "params_learning_rate"] == 1e-3
    assert trials.frame.loc[trials.frame.state == "FAIL", "failure"].tolist() == ["diverged"]
    assert math.isnan(trials.frame.loc[trials.frame.state == "RUNNING", "value"].iloc[0])


def test_a_task_whose_first_cell_has_no_trials_yet_still_names_its_metric():
    storage = optuna.storages.InMemoryStorage()
    for variant in ("CIFG", "V", "NP"):  # CIFG sorts first and has nothing finished
        study = optuna.create_study(storage=storage, study_name=f"s/speech/{variant}")
        study.set_user_attr("odyssey_study", "s")
        if variant == "V":
            _add(study, TrialState.COMPLETE, test_metric=0.4, metric="frame_error")
    assert load_odyssey_trials(storage, "s").metrics == {"speech": "frame_error"}


@pytest.mark.parametrize(
    ("distribution", "low", "high", "label"),
    [
        (FloatDistribution(1e-6, 1e-2, log=True), -6.0, -2.0, "log10(p)"),
        (IntDistribution(20, 200, log=True), math.log10(20), math.log10(200), "log10(p)"),
        (IntDistribution(1, 3), 0.5, 3.5, "p"),  # each integer owns a cell of width 1
        (FloatDistribution(0.0, 1.0), 0.0, 1.0, "p"),
        (CategoricalDistribution(["a", "b", "c"]), -0.5, 2.5, "p"),
    ],
)
def test_analysis_scales_come_from_the_distribution(distribution, low, high, label):
    scale = scale_of("p", distribution)
    assert scale.low == pytest.approx(low) and scale.high == pytest.approx(high) and scale.label == label
    if isinstance(distribution, CategoricalDistribution):
        assert scale.transform(["c", "a"]).tolist() == [2.0, 0.0]


MIXED = {
    "lr": FloatDistribution(1e-5, 1e-1, log=True),
    "optimizer": CategoricalDistribution(["sgd", "adam"]),
    "num_layers": IntDistribution(1, 3),
    "dropout": FloatDistribution(0.0, 0.5, step=0.1),
    "momentum": FloatDistribution(0.0, 0.99),  # only with sgd
}


def _mixed_trials() -> list:
    trials = []
    for k in range(12):
        params = {
            "lr": 10 ** (-5 + k / 3),
            "optimizer": "sgd" if k % 3 == 0 else "adam",
            "num_layers": 1 + k % 3,
            "dropout": round(0.1 * (k % 6), 1),
        }
        if params["optimizer"] == "sgd":
            params["momentum"] = 0.05 * k
        state = TrialState.FAIL if k == 5 else TrialState.RUNNING if k == 6 else TrialState.COMPLETE
        value = None if state != TrialState.COMPLETE else math.inf if k == 9 else -math.inf if k == 10 else 0.1 * k
        trials.append(
            optuna.trial.create_trial(
                state=state, value=value, params=params, distributions={p: MIXED[p] for p in params}
            )
        )
    return trials


@pytest.fixture(params=["sqlite", "postgresql"])
def rdb_url(request, tmp_path):
    """A new SQLite file, or a new database on the distributed tests' PostgreSQL server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'm.db'}"
    return request.getfixturevalue("postgres")


def test_one_query_on_an_rdb_storage_reads_what_optuna_reads(rdb_url):
    import sqlalchemy

    from odyssey.analysis.trials import load_optuna_trials, open_existing
    from odyssey.optuna_private import rdb_backend

    url = rdb_url
    optuna.create_study(storage=url, study_name="m").add_trials(_mixed_trials())
    memory = optuna.storages.InMemoryStorage()
    optuna.create_study(storage=memory, study_name="m").add_trials(_mixed_trials())
    storage = open_existing(url)
    queries = []
    sqlalchemy.event.listen(rdb_backend(storage).engine, "before_cursor_execute", lambda *args: queries.append(args[2]))
    fast = load_optuna_trials(storage, "m")
    assert len([q for q in queries if "trial_params" in q]) == 1  # the trials, their values and parameters at once
    slow = load_optuna_trials(memory, "m")
    assert fast.scales == slow.scales
    columns = ["number", "state", "value", *(c for c in slow.frame.columns if c.startswith("params_"))]
    a, b = fast.frame[columns].astype(object), slow.frame[columns].astype(object)
    assert a.where(a.notna(), None).values.tolist() == b.where(b.notna(), None).values.tolist()
    assert fast.frame.loc[9, "value"] == math.inf and fast.frame.loc[10, "value"] == -math.inf
    assert fast.frame["params_momentum"].notna().sum() == 4 and fast.frame.loc[3, "params_optimizer"] == "sgd"


def test_float_steps_and_single_values_on_their_scales():
    step = scale_of("d", FloatDistribution(0.0, 0.5, step=0.1))
    assert (step.low, step.high) == pytest.approx(
        (-0.05, 0.55)
    )  # equal cells: the end values weigh as much as the rest
    assert scale_of("a", CategoricalDistribution(["tanh"])).single and scale_of("n", IntDistribution(2, 2)).single
    assert not scale_of("n", IntDistribution(1, 2)).single


def _imported(path, package: str) -> set[str]:
    """The modules a source file imports, relative imports resolved against its package, lazy ones included."""
    import ast

    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1]) if node.level else ""
            module = ".".join(part for part in (base, node.module) if part)
            found |= {module} | {f"{module}.{alias.name}" for alias in node.names}
    return found


def test_analysis_imports_no_study_training_model_or_torch(root):
    """analysis reads storages through the shared contracts (odyssey.record, .storage, .optuna_private,
    .studytoml), never through study: the layering the architecture page shows. Checked for every
    analysis module and every odyssey module they import (the package root aside)."""
    source = root / "odyssey"
    forbidden = ("odyssey.study", "odyssey.training", "odyssey.model", "odyssey.tasks", "torch")
    todo = {f"odyssey.analysis.{p.stem}": p for p in (source / "analysis").glob("*.py")}
    seen, bad = set(), []
    while todo:
        name, path = todo.popitem()
        seen.add(name)
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for module in _imported(path, package):
            if any(module == f or module.startswith(f"{f}.") for f in forbidden):
                bad.append(f"{name} imports {module}")
            parts = module.split(".")
            for candidate in (root.joinpath(*parts).with_suffix(".py"), root.joinpath(*parts, "__init__.py")):
                if module.startswith("odyssey.") and module not in seen and candidate.is_file():
                    todo[module] = candidate
    assert not bad, "; ".join(sorted(set(bad)))
