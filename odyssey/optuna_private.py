"""Every use of Optuna's private API, and every SQL statement on Optuna's tables, in one place.

Optuna's public API has no atomic state move (the queue needs one: see move_state), no way to
reach a study's storage and ids from a Study, and reads a whole FrozenTrial per trial (see
trial_rows). What odyssey relies on here may change in any Optuna release:
tests/test_optuna_private.py checks each piece on real storages and names what changed.
"""

from __future__ import annotations

from datetime import datetime
from types import SimpleNamespace
from typing import TYPE_CHECKING

import optuna
from optuna.storages import BaseStorage, RDBStorage
from optuna.storages._heartbeat import BaseHeartbeat
from optuna.trial import FrozenTrial, TrialState

if TYPE_CHECKING:
    from optuna.study._frozen import FrozenStudy  # what get_all_studies returns; Optuna exports it nowhere public

# What SuccessiveHalvingPruner (and HyperbandPruner's brackets) name the system attribute holding a trial's
# value at rung k, f"{RUNG_MARK}{k}" (optuna.pruners._successive_halving._completed_rung_key).
RUNG_MARK = "completed_rung_"
HEARTBEAT_METHODS = ("get_heartbeat_interval", "record_heartbeat")  # what record_heartbeat calls on a BaseHeartbeat


def rung_marks(trial: FrozenTrial) -> dict[str, float]:
    """The values a halving pruner recorded for a trial, one per rung it judged the trial at."""
    return {key: value for key, value in trial.system_attrs.items() if key.startswith(RUNG_MARK)}


class HyperbandBySlot(optuna.pruners.HyperbandPruner):
    """Optuna's HyperbandPruner with each trial's bracket drawn from a system attribute (`bracket_key`: the
    slot) where the trial has one, from its number (Optuna's rule) otherwise. A retry is a new trial with
    a new number, which Optuna would put in another bracket: one whose rungs its slot was never judged at."""

    def __init__(self, *, bracket_key: str, **options) -> None:
        super().__init__(**options)
        self._bracket_key = bracket_key

    def _get_bracket_id(self, study: optuna.Study, trial: FrozenTrial) -> int:
        # Optuna's own draw (crc32 of the study's name and a number, over the brackets' budgets), of the slot;
        # a trial's slot is its number wherever it was queued in order, so a first try keeps Optuna's bracket.
        number = trial.system_attrs.get(self._bracket_key, trial.number)
        return super()._get_bracket_id(study, SimpleNamespace(number=number))


def storage_of(optuna_study: optuna.Study) -> BaseStorage:
    """The storage an Optuna study reads and writes through (for an RDB storage, Optuna's cache in front of it)."""
    return optuna_study._storage


def study_id_of(optuna_study: optuna.Study | FrozenStudy) -> int:
    """The storage's id of an Optuna study: what the storage's own methods take."""
    return optuna_study._study_id


def trial_id_of(trial: optuna.Trial | FrozenTrial) -> int:
    """The storage's id of a trial (its number counts within the study only)."""
    return trial._trial_id


def trial_handle(optuna_study: optuna.Study, trial_id: int) -> optuna.Trial:
    """A running trial the caller took itself (queue.claim), as the objective's `Trial` (Optuna's docs advise
    against constructing one directly)."""
    return optuna.Trial(optuna_study, trial_id)


def rdb_backend(storage: BaseStorage) -> RDBStorage | None:
    """The RDBStorage behind `storage` (Optuna wraps it in a cache for studies), else None (a journal, in memory)."""
    backend = getattr(storage, "_backend", storage)
    return backend if isinstance(backend, RDBStorage) else None


def record_heartbeat(storage: BaseStorage, trial_id: int) -> bool:
    """Optuna's heartbeat for a trial, on the database's clock; False where the storage keeps none (a journal,
    or an RDB storage opened without a heartbeat interval)."""
    if isinstance(storage, BaseHeartbeat) and storage.get_heartbeat_interval() is not None:
        storage.record_heartbeat(trial_id)
        return True
    return False


def move_state(optuna_study: optuna.Study, trial_id: int, *, old: TrialState, new: TrialState) -> bool:
    """old -> new if the trial is still `old`, atomically; False if another process moved it first.

    One `UPDATE ... WHERE state = old` on a database: Optuna's own read-then-write is atomic under
    PostgreSQL's row locks but not on SQLite, which ignores SELECT ... FOR UPDATE (two processes
    took one queued trial in 14 of 30 tries).
    """
    storage = storage_of(optuna_study)
    rdb = rdb_backend(storage)
    if rdb is None:
        try:  # a journal storage replays its log in order: the first transition written wins
            return storage.set_trial_state_values(trial_id, state=new)
        except optuna.exceptions.UpdateFinishedTrialError:
            return False
    import sqlalchemy
    from optuna.storages._rdb import models

    stamp = {"datetime_start": datetime.now()} if new == TrialState.RUNNING else {"datetime_complete": datetime.now()}
    with rdb.engine.begin() as connection:
        moved = connection.execute(
            sqlalchemy.update(models.TrialModel)
            .where(models.TrialModel.trial_id == trial_id, models.TrialModel.state == old)
            .values(state=new, **stamp)
        ).rowcount
    return moved == 1


def trial_rows(backend: RDBStorage, study_id: int, *, objective: int = 0) -> list[tuple]:
    """One study's trials straight from the tables, in one SELECT: a row per (trial, parameter) of
    (number, state name, value, value type name, parameter name, internal value, distribution JSON);
    a trial without parameters has one row with None there, one without a value None for it.

    Optuna builds a FrozenTrial per trial with every attribute and intermediate value, which is
    most of the time `odyssey importance` takes on thousands of trials. The tables are Optuna's
    own models, so the query follows Optuna's schema rather than restating it.
    """
    import sqlalchemy as sa
    from optuna.storages._rdb import models

    trials, values, params = (
        models.TrialModel.__table__,
        models.TrialValueModel.__table__,
        models.TrialParamModel.__table__,
    )
    query = (
        sa.select(
            trials.c.number,
            trials.c.state,
            values.c.value,
            values.c.value_type,
            params.c.param_name,
            params.c.param_value,
            params.c.distribution_json,
        )
        .select_from(
            trials.outerjoin(
                values, sa.and_(values.c.trial_id == trials.c.trial_id, values.c.objective == objective)
            ).outerjoin(params, params.c.trial_id == trials.c.trial_id)
        )
        .where(trials.c.study_id == study_id)
    )
    with backend.engine.connect() as connection:
        rows = connection.execute(query).all()
    # Enum columns come back as Optuna's enums (TrialState is an IntEnum: pandas would keep only the int).
    return [(r[0], getattr(r[1], "name", r[1]), r[2], getattr(r[3], "name", r[3]), *r[4:]) for r in rows]


def intermediate_rows(backend: RDBStorage, study_id: int) -> list[tuple]:
    """One study's learning curves straight from the tables, in one SELECT: a row per reported
    value of (trial number, step, value, value type name); the value is None where its type is
    INF_POS, INF_NEG or NAN (Optuna stores those by type alone). No rows for a study without curves."""
    import sqlalchemy as sa
    from optuna.storages._rdb import models

    trials, values = models.TrialModel.__table__, models.TrialIntermediateValueModel.__table__
    query = (
        sa.select(trials.c.number, values.c.step, values.c.intermediate_value, values.c.intermediate_value_type)
        .select_from(values.join(trials, values.c.trial_id == trials.c.trial_id))
        .where(trials.c.study_id == study_id)
    )
    with backend.engine.connect() as connection:
        rows = connection.execute(query).all()
    return [(r[0], r[1], r[2], getattr(r[3], "name", r[3])) for r in rows]
