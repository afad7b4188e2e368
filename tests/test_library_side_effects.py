"""odyssey as a library: importing it changes nothing global, and it prints nothing itself.

A library user's warning filters and logging stay theirs: Optuna's verbosity is set by the CLI, and
the ExperimentalWarning that Optuna raises on every call of its heartbeat API is silenced around
those calls only. Library functions return rows, documents and lines; odyssey/cli.py and
odyssey/console.py print them.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

# Run in a fresh interpreter: pytest and the other tests have imported (and configured) everything already.
# The third-party packages odyssey imports at module level are imported first: what they change is theirs.
WALK = r"""
import ast, importlib, logging, pkgutil, sys, warnings
import odyssey

modules = [m.name for m in pkgutil.walk_packages(odyssey.__path__, "odyssey.") if not m.name.endswith("__main__")]
third_party = set()
for name in modules:
    tree = ast.parse(open(importlib.util.find_spec(name).origin, encoding="utf-8").read())
    for node in tree.body:
        if isinstance(node, ast.Import):
            roots = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and not node.level:
            roots = [node.module]
        else:
            roots = []
        third_party |= {
            r.split(".")[0] for r in roots if r.split(".")[0] not in sys.stdlib_module_names | {"odyssey", "__future__"}
        }
for name in sorted(third_party):
    importlib.import_module(name)

import optuna

def state():
    root, library = logging.getLogger(), logging.getLogger("optuna")
    return {
        "warnings.filters": list(warnings.filters),
        "optuna verbosity": optuna.logging.get_verbosity(),
        "root logger": (root.level, list(root.handlers)),
        "optuna logger": (library.level, list(library.handlers), library.propagate),
    }

before = state()
for name in modules:
    importlib.import_module(name)
after = state()
print(len(modules), "modules")
for key in before:
    if key == "warnings.filters" and before[key] != after[key]:
        added = [f for f in after[key] if f not in before[key]]
        removed = [f for f in before[key] if f not in after[key]]
        print(f"{key} changed: added {added}, removed {removed}")
    elif before[key] != after[key]:
        print(f"{key} changed: {before[key]!r} -> {after[key]!r}")
"""


def test_importing_every_odyssey_module_leaves_warnings_and_logging_alone(root):
    result = subprocess.run([sys.executable, "-c", WALK], cwd=root, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert int(lines[0].split()[0]) > 50  # the walk found the package
    assert lines[1:] == []


CONSOLE = {"cli.py", "console.py", "__main__.py"}
MAY_PRINT = {
    # A first-use compile takes about half a minute inside any forward pass, the CLI's or a notebook's:
    # its progress lines go to stderr wherever odyssey runs.
    "model/kernel/build.py",
    "tasks/builtin/espeak.py",  # its synthesis subprocess hands the audio to the parent over its stdout
}


def _prints(path: Path) -> list[str]:
    """Where a module prints: print(), sys.stdout or sys.stderr, or an import of Rich."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print":
            found.append(f"print() on line {node.lineno}")
        elif (
            isinstance(node, ast.Attribute)
            and node.attr in ("stdout", "stderr")
            and isinstance(node.value, ast.Name)
            and node.value.id == "sys"
        ):
            found.append(f"sys.{node.attr} on line {node.lineno}")
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            found += [f"import of {n} on line {node.lineno}" for n in names if n.split(".")[0] == "rich"]
    return found


def test_library_modules_print_nothing(root):
    package = root / "odyssey"
    modules = {
        p.relative_to(package).as_posix(): p
        for p in package.rglob("*.py")
        if p.relative_to(package).as_posix() not in CONSOLE
    }
    assert len(modules) > 50
    printing = {name: _prints(path) for name, path in modules.items() if name not in MAY_PRINT}
    assert {name: where for name, where in printing.items() if where} == {}
