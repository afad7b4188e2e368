"""A package's public names, imported from their modules on first use (PEP 562's module `__getattr__`).

The packages' `__init__.py` name what a user or a script may import from them, but importing each
module up front would make `import odyssey.study.studyfile` pay for torch (through the worker) and
`import odyssey.analysis.trials` for scikit-learn and matplotlib. So each package keeps a table of
name -> module and resolves a name when it is first asked for.
"""

from __future__ import annotations

import sys
from importlib import import_module


def resolve(package: str, where: dict[str, str], name: str) -> object:
    """`name` of `package`, from its module in `where` (relative to the package); kept in the package after."""
    if name not in where:
        # AttributeError, not KeyError: `from package import submodule` asks this first and then imports the submodule.
        raise AttributeError(f"module {package!r} has no attribute {name!r}")
    value = getattr(import_module(where[name], package), name)
    setattr(sys.modules[package], name, value)
    return value
