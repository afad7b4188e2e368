"""What odyssey.optuna_private relies on in Optuna, checked on real storages: an Optuna release that
changes any of it fails here, with a message naming the attribute, table or column that changed."""

from __future__ import annotations

import math

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import TrialState

from odyssey import optuna_private
from odyssey.storage import open_storage

OPTUNA = f"Optuna {optuna.__version__}"
# The columns optuna_private's SQL names (move_state's UPDATE, trial_rows' and intermediate_rows' SELECTs), per
# Optuna model.
COLUMNS = {
    "TrialModel": {"trial_id", "study_id", "number", "state", "datetime_start", "datetime_complete"},
    "TrialValueModel": {"trial_id", "objective", "value", "value_type"},
    "TrialParamModel": {"trial_id", "param_name", "param_value", "distribution_json"},
    "TrialIntermediateValueModel": {"trial_id", "step", "intermediate_value", "intermediate_value_type"},
}
X = {"x": FloatDistribution(0.0, 1.0), "kind": CategoricalDistribution(("a", "b"))}


@pytest.fixture(params=["memory", "sqlite", "journal"])
def storage(request, tmp_path):
    if request.param == "memory":
        return optuna.storages.InMemoryStorage()
    suffix = {"sqlite": "sqlite:///{}.db", "journal": "journal://{}.log"}[request.param]
    return open_storage(suffix.format(tmp_path / "private"))


def _study(storage) -> optuna.Study:
    study = optuna.create_study(storage=storage, study_name="private")
    study.add_trial(
        optuna.trial.create_trial(state=TrialState.WAITING, params={"x": 0.5, "kind": "b"}, distributions=X)
    )
    study.add_trial(
        optuna.trial.create_trial(
            state=TrialState.COMPLETE, value=math.inf, params={"x": 0.25}, distributions={"x": X["x"]}
        )
    )
    study.add_trial(optuna.trial.create_trial(state=TrialState.COMPLETE, value=1.5, params={}, distributions={}))
    return study


def _has(obj: object, attr: str, used_by: str) -> None:
    assert hasattr(obj, attr), (
        f"{OPTUNA}: {type(obj).__name__} has no attribute {attr!r} any more (optuna_private.{used_by} reads it)"
    )


def test_the_private_attributes_exist_on_real_studies_and_trials(storage):
    study = _study(storage)
    _has(study, "_storage", "storage_of")
    _has(study, "_study_id", "study_id_of")
    frozen_study = next(s for s in storage.get_all_studies() if s.study_name == "private")
    _has(frozen_study, "_study_id", "study_id_of")
    frozen = study.get_trials(deepcopy=False)[0]
    _has(frozen, "_trial_id", "trial_id_of")
    trial = optuna_private.trial_handle(study, optuna_private.trial_id_of(frozen))
    _has(trial, "_trial_id", "trial_id_of")

    assert isinstance(optuna_private.storage_of(study), optuna.storages.BaseStorage), (
        f"{OPTUNA}: Study._storage is no BaseStorage"
    )
    assert optuna_private.study_id_of(study) == optuna_private.study_id_of(frozen_study), (
        f"{OPTUNA}: Study._study_id and FrozenStudy._study_id differ"
    )
    stored = optuna_private.storage_of(study).get_trial(optuna_private.trial_id_of(trial))
    assert (stored.number, trial.number) == (frozen.number, frozen.number), (
        f"{OPTUNA}: Trial(study, trial_id) no longer names the stored trial"
    )


def test_the_rdb_backend_is_found_behind_optunas_cache(tmp_path):
    storage = open_storage(f"sqlite:///{tmp_path / 'cache.db'}")
    study = optuna.create_study(storage=storage, study_name="cached")
    wrapped = optuna_private.storage_of(study)
    if wrapped is not storage:  # Optuna wraps an RDBStorage in its cache for studies
        _has(wrapped, "_backend", "rdb_backend")
    assert optuna_private.rdb_backend(wrapped) is storage, (
        f"{OPTUNA}: the RDBStorage behind {type(wrapped).__name__} is not where rdb_backend looks"
    )
    assert optuna_private.rdb_backend(optuna.storages.InMemoryStorage()) is None


def test_the_rdb_models_have_the_tables_and_columns_the_sql_names():
    from optuna.storages._rdb import models

    for model, columns in COLUMNS.items():
        assert hasattr(models, model), (
            f"{OPTUNA}: optuna.storages._rdb.models.{model} is gone (optuna_private's SQL uses it)"
        )
        missing = columns - {c.name for c in getattr(models, model).__table__.columns}
        assert not missing, (
            f"{OPTUNA}: {model} ({getattr(models, model).__tablename__}) lost the columns {sorted(missing)} "
            "that optuna_private's SQL names"
        )
    kinds = {kind.name for kind in models.TrialValueModel.TrialValueType}
    assert {"INF_POS", "INF_NEG"} <= kinds, (
        f"{OPTUNA}: TrialValueModel.TrialValueType has {sorted(kinds)}; analysis/rdb.py reads INF_POS and INF_NEG"
    )
    kinds = {kind.name for kind in models.TrialIntermediateValueModel.TrialIntermediateValueType}
    assert {"INF_POS", "INF_NEG", "NAN"} <= kinds, (
        f"{OPTUNA}: TrialIntermediateValueModel.TrialIntermediateValueType has {sorted(kinds)}; analysis/rdb.py "
        "reads INF_POS, INF_NEG and NAN"
    )


def test_the_heartbeat_base_class_has_the_methods_record_heartbeat_calls(tmp_path):
    from optuna.storages._heartbeat import BaseHeartbeat

    for method in optuna_private.HEARTBEAT_METHODS:
        assert callable(getattr(BaseHeartbeat, method, None)), (
            f"{OPTUNA}: BaseHeartbeat.{method} is gone (optuna_private.record_heartbeat calls it)"
        )
    storage = open_storage(f"sqlite:///{tmp_path / 'beat.db'}")
    study = _study(storage)
    trial_id = optuna_private.trial_id_of(study.get_trials(deepcopy=False)[0])
    assert optuna_private.move_state(study, trial_id, old=TrialState.WAITING, new=TrialState.RUNNING)
    assert optuna_private.record_heartbeat(optuna_private.storage_of(study), trial_id), (
        f"{OPTUNA}: an RDB storage with a heartbeat interval is no BaseHeartbeat"
    )
    backend = optuna_private.rdb_backend(optuna_private.storage_of(study))
    backend.grace_period = -1  # as if the worker had not beaten for longer than the grace
    assert backend._get_stale_trial_ids(optuna_private.study_id_of(study)) == [trial_id], (
        f"{OPTUNA}: the recorded heartbeat is not what fail_stale_trials reads"
    )
    journal = optuna.create_study(storage=open_storage(f"journal://{tmp_path / 'beat.log'}"))
    journal.add_trial(optuna.trial.create_trial(state=TrialState.WAITING, params={}, distributions={}))
    assert not optuna_private.record_heartbeat(
        optuna_private.storage_of(journal), 0
    )  # no heartbeat of its own: queue.beat writes one


def test_move_state_moves_once_on_each_storage(storage):
    study = _study(storage)
    trial_id = optuna_private.trial_id_of(study.get_trials(deepcopy=False)[0])
    assert optuna_private.move_state(study, trial_id, old=TrialState.WAITING, new=TrialState.RUNNING)
    assert not optuna_private.move_state(
        study, trial_id, old=TrialState.WAITING, new=TrialState.RUNNING
    )  # another process took it first
    moved = optuna_private.storage_of(study).get_trial(trial_id)
    assert moved.state == TrialState.RUNNING and moved.datetime_start is not None, (
        f"{OPTUNA}: the UPDATE no longer reads back as a started trial"
    )
    assert optuna_private.move_state(study, trial_id, old=TrialState.RUNNING, new=TrialState.FAIL)
    failed = optuna_private.storage_of(study).get_trial(trial_id)
    assert failed.state == TrialState.FAIL and failed.datetime_complete is not None


def test_trial_rows_read_what_optuna_reads(tmp_path):
    storage = open_storage(f"sqlite:///{tmp_path / 'rows.db'}")
    study = _study(storage)
    rows = optuna_private.trial_rows(optuna_private.rdb_backend(storage), optuna_private.study_id_of(study))
    by_trial = {}
    for number, state, value, kind, param, internal, distribution in rows:
        by_trial.setdefault(number, {"state": state, "value": value, "kind": kind, "params": {}})
        if param is not None:
            by_trial[number]["params"][param] = optuna.distributions.json_to_distribution(
                distribution
            ).to_external_repr(internal)
    for trial in study.get_trials(deepcopy=False):
        read = by_trial[trial.number]
        assert read["state"] == trial.state.name and read["params"] == trial.params, (
            f"{OPTUNA}: trial_rows read trial {trial.number} as {read}"
        )
    assert (by_trial[1]["kind"], by_trial[2]["value"], by_trial[0]["value"]) == ("INF_POS", 1.5, None)


def test_halving_pruners_mark_rungs_and_hyperband_brackets_follow_the_slot():
    study = optuna.create_study(
        study_name="hyperband/adding/V", pruner=optuna.pruners.SuccessiveHalvingPruner(min_resource=1)
    )
    trial = study.ask()
    trial.report(0.5, 1)
    trial.should_prune()
    marks = optuna_private.rung_marks(study.trials[0])
    assert marks == {f"{optuna_private.RUNG_MARK}0": 0.5}, (
        f"{OPTUNA}: SuccessiveHalvingPruner's rung marks are now {study.trials[0].system_attrs} "
        "(queue.requeue leaves them off a retry, queue.should_prune gives them back)"
    )
    _has(optuna.pruners.HyperbandPruner, "_get_bracket_id", "HyperbandBySlot")
    pruner = optuna_private.HyperbandBySlot(bracket_key="slot", min_resource=1, max_resource=6, reduction_factor=3)
    study = optuna.create_study(study_name="hyperband/adding/V", pruner=pruner)
    for attrs in ({"slot": 0}, {}, {"slot": 0}):  # slot 0's trial, a trial of no slot, slot 0's retry
        study.add_trial(
            optuna.trial.create_trial(state=TrialState.WAITING, params={}, distributions={}, system_attrs=attrs)
        )
    pruner.prune(study, study.trials[0])  # the brackets exist from the first prune on
    brackets = [pruner._get_bracket_id(study, t) for t in study.trials]
    # By number, trials 0, 1 and 2 of this cell fall in brackets 1, 0 and 0 (crc32 over budgets 3 + 2).
    assert brackets == [1, 0, 1], f"{OPTUNA}: HyperbandBySlot's brackets are {brackets}, not [1, 0, 1]"


def test_intermediate_rows_read_the_curves_optuna_reads(tmp_path):
    storage = open_storage(f"sqlite:///{tmp_path / 'curves.db'}")
    study = _study(storage)
    curve = {0: 2.0, 1: math.inf, 2: -math.inf, 3: math.nan, 5: 0.5}
    study.add_trial(
        optuna.trial.create_trial(
            state=TrialState.PRUNED,
            value=0.5,
            params={"x": 0.1},
            distributions={"x": X["x"]},
            intermediate_values=curve,
        )
    )
    rows = optuna_private.intermediate_rows(optuna_private.rdb_backend(storage), optuna_private.study_id_of(study))
    read = {step: (value, kind) for number, step, value, kind in rows if number == 3}
    assert len(rows) == len(curve) and {number for number, *_ in rows} == {3}, (
        f"{OPTUNA}: intermediate_rows read {rows}"
    )
    assert read == {
        0: (2.0, "FINITE"),
        1: (None, "INF_POS"),
        2: (None, "INF_NEG"),
        3: (None, "NAN"),
        5: (0.5, "FINITE"),
    }, f"{OPTUNA}: intermediate_rows read {read} where Optuna stored {curve}"
