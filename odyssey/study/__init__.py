"""A study: its study file, its cells in a storage, the trial queue, and the workers that train its trials.

A script that retrains a stored trial needs the study file, the trial's settings from its stored
parameters, its network and its seed: those are the names below, imported lazily (the worker imports
torch; the study file does not).
"""

from .._lazy import resolve

_WHERE = {
    "StudyFile": ".studyfile",
    "load_study_file": ".studyfile",
    "trial_settings": ".space",
    "network_for": ".worker",
    "derive_seed": "..record",
}

__all__ = ["StudyFile", "derive_seed", "load_study_file", "network_for", "trial_settings"]


def __getattr__(name: str) -> object:
    return resolve(__name__, _WHERE, name)
