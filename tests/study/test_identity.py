"""A study's identity: the stored study file against the one given, variant names, and checkpoints."""

import optuna
import pytest

from odyssey.errors import ConfigError
from odyssey.storage import open_storage
from odyssey.study import cells
from odyssey.study.runner import prepare_study
from odyssey.study.studyfile import StudyFileError, parse_study

BASE = {"name": "same", "tasks": ["adding"], "variants": ["V"], "trials": 2, "training": {"max_epochs": 1}}


def spec(**changes):
    return parse_study({**BASE, **changes})


@pytest.fixture
def storage(tmp_path):
    return open_storage(f"sqlite:///{tmp_path / 'same.db'}")


def refusal(storage, **changes) -> str:
    with pytest.raises(cells.StudyMismatch) as refused:
        cells.prepare(spec(**changes), storage)
    return str(refused.value)


def test_a_file_with_other_cells_and_another_protocol_is_refused(storage):
    cells.prepare(spec(), storage)
    message = refusal(storage, variants=["NP"], training={"max_epochs": 5})  # no cell in common with the stored ones
    assert "training.max_epochs 1 -> 5" in message and "variants +NP -V" in message
    assert not any(s.study_name.endswith("/NP") for s in optuna.get_all_study_summaries(storage))  # nothing created


def test_a_refusal_names_exactly_what_changed(storage):
    cells.prepare(spec(), storage)
    assert "(changed: seed 0 -> 4);" in refusal(storage, seed=4)  # not "tasks, variants" as well
    cells.prepare(spec(), storage)  # the same file again: accepted
    with pytest.raises(cells.StudyMismatch, match=r"changed: trials 2 -> 1\).*--extend accepts only more"):
        cells.prepare(spec(trials=1), storage, extend=True)


def test_extend_accepts_more_trials_tasks_and_variants_and_new_tasks_options(storage):
    cells.prepare(spec(), storage)
    more = spec(trials=3, variants=["V", "CIFG"], tasks=["adding", "copy"], task_options={"copy": {"delay": 5}})
    with pytest.raises(cells.StudyMismatch, match="--extend"):
        cells.prepare(more, storage)
    cells.prepare(more, storage, extend=True)
    cell = optuna.load_study(study_name="same/adding/V", storage=storage)
    assert len(cell.trials) == 3 and cell.user_attrs["study_spec"]["trials"] == 3
    with pytest.raises(cells.StudyMismatch, match="task_options.adding"):  # options of a task that already ran
        cells.prepare(
            spec(
                trials=3,
                variants=["V", "CIFG"],
                tasks=["adding", "copy"],
                task_options={"adding": {"length": 9}, "copy": {"delay": 5}},
            ),
            storage,
            extend=True,
        )


def test_prepare_checks_task_options_before_creating_anything(tmp_path):
    url = f"sqlite:///{tmp_path / 'typo.db'}"
    with pytest.raises(ConfigError, match="no option 'lenght'"):
        prepare_study(spec(task_options={"adding": {"lenght": 20}}), storage_url=url)
    assert not optuna.get_all_study_summaries(open_storage(url))
    prepare_study(spec(task_options={"adding": {"length": 20}}), storage_url=url)  # the fixed file is a new study


@pytest.mark.parametrize(
    "names, expected",
    [
        (["cifg"], ("CIFG",)),
        (["NP+CIFG", "V"], ("CIFG+NP", "V")),
        (["np + nig", "fgr"], ("NIG+NP", "FGR")),
        (["V+NP"], ("NP",)),
    ],
)
def test_variant_names_are_canonical(names, expected):
    assert spec(variants=names).variants == expected


@pytest.mark.parametrize("names", [["CIFG", "cifg"], ["CIFG+NP", "NP+CIFG"], ["NP", "V+NP"]])
def test_one_variant_spelled_twice_is_refused(names):
    with pytest.raises(StudyFileError, match="names one variant twice"):
        spec(variants=names)


def test_checkpoint_identity_separates_studies_protocols_slots_and_parameters():
    from odyssey.study.worker import checkpoint_identity

    base = checkpoint_identity(spec(), "adding", "V", 0, {"learning_rate": 0.1})
    assert base == checkpoint_identity(
        spec(trials=5, description="more"), "adding", "V", 0, {"learning_rate": 0.1}
    )  # extending keeps it
    for other in (
        checkpoint_identity(spec(name="other"), "adding", "V", 0, {"learning_rate": 0.1}),
        checkpoint_identity(spec(training={"max_epochs": 2}), "adding", "V", 0, {"learning_rate": 0.1}),
        checkpoint_identity(spec(), "adding", "V", 1, {"learning_rate": 0.1}),
        checkpoint_identity(spec(), "adding", "V", 0, {"learning_rate": 0.2}),
        checkpoint_identity(spec(variants=["CIFG"]), "adding", "CIFG", 0, {"learning_rate": 0.1}),
    ):
        assert other != base
