"""odyssey: which parts of a recurrent architecture, and which hyperparameters, actually matter.

`odyssey.LSTM` is imported lazily so that reports and the CLI's analysis commands never pay for torch;
`odyssey.FanovaImportanceEvaluator` (an Optuna importance evaluator) lazily too, so that a bare
`import odyssey` pays for neither torch nor scikit-learn.
"""

from importlib.metadata import PackageNotFoundError, version

from .model.variants import VARIANTS, VariantSwitches, resolve_variant

# Deprecated: VariantSwitches' name before the glossary gave "spec" one meaning (the stored study file);
# kept so code written against odyssey.CellSpec still runs, and left out of __all__.
CellSpec = VariantSwitches

try:
    __version__ = version("odyssey")
except PackageNotFoundError:  # a checkout run as `python cli.py` without installing
    __version__ = "0.1.0+local"

__all__ = ["LSTM", "FanovaImportanceEvaluator", "VARIANTS", "VariantSwitches", "resolve_variant", "__version__"]


def __getattr__(name: str):
    if name == "LSTM":
        from .model.lstm import LSTM

        return LSTM
    if name == "FanovaImportanceEvaluator":
        from .analysis.evaluator import FanovaImportanceEvaluator

        return FanovaImportanceEvaluator
    raise AttributeError(f"module 'odyssey' has no attribute {name!r}")
