"""odyssey's public surface: each package's `__all__`, what importing a package costs, and who keeps to it.

A package names in `__all__` what a user or a script may import from it, and most resolve those names
lazily (odyssey/_lazy.py): a name whose module does not define it would fail only when first used,
so every one is resolved here. The replication's scripts are the project's own example of a script
written against odyssey: they import only names some package's `__all__` holds.
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
import subprocess
import sys
import types
from pathlib import Path

import pytest

import odyssey

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ["odyssey", *(m.name for m in pkgutil.walk_packages(odyssey.__path__, "odyssey.") if m.ispkg)]


@pytest.mark.parametrize("package", PACKAGES)
def test_every_name_in_a_packages_all_resolves(package: str):
    module = importlib.import_module(package)
    assert module.__all__, f"{package} names nothing public"
    assert len(set(module.__all__)) == len(module.__all__), f"{package}.__all__ repeats a name"
    for name in module.__all__:
        value = getattr(module, name)  # the lazy import happens here
        # A public name that is also a submodule's would be replaced by the submodule once that is imported.
        assert name == "__version__" or not isinstance(value, types.ModuleType), f"{package}.{name} is a module"


def test_importing_the_packages_imports_neither_torch_nor_scikit_learn():
    """`import odyssey` and `import odyssey.analysis` stay cheap (reports, the CLI's analysis commands);
    so do the lazy packages whose modules need torch (study, training, model) until a name is used."""
    code = (
        "import sys\n"
        "import odyssey, odyssey.analysis\n"
        "assert not {'torch', 'sklearn'} & set(sys.modules), sorted({'torch', 'sklearn'} & set(sys.modules))\n"
        "import odyssey.study, odyssey.training, odyssey.model\n"
        "assert 'torch' not in sys.modules, 'torch imported by a package __init__'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("script", sorted((ROOT / "replication").glob("*.py")), ids=lambda p: p.name)
def test_the_replication_scripts_use_only_public_names(script: Path):
    for node in ast.walk(ast.parse(script.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            assert not [a.name for a in node.names if a.name.startswith("odyssey.")], (
                f"{script.name}: imports a module of odyssey"
            )
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "odyssey":
            public = importlib.import_module(node.module).__all__ if node.module in PACKAGES else []
            private = [a.name for a in node.names if a.name not in public]
            assert not private, (
                f"{script.name}: from {node.module} import {', '.join(private)}, not in a package's __all__"
            )
