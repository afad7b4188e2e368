"""The layers docs/architecture.md draws are the imports the code has: dependencies point one way."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "odyssey"
CONTRACTS = {"record", "storage", "studytoml", "optuna_private", "errors"}
ROOT = {"odyssey", "_lazy"}  # the package itself (its version, its lazy-import helper)
# What each part of odyssey may import of the others; docs/architecture.md's drawing says the same.
ALLOWED = {
    "cli": {"console", "study", "analysis", "tasks", "model", *CONTRACTS},
    "console": {"analysis", "tasks", *CONTRACTS},
    "study": {"training", "model", "tasks", *CONTRACTS},
    "training": {"tasks", "errors"},  # the loop trains any nn.Module: it knows no class of model/
    "model": {"errors"},
    "tasks": {"errors"},
    "analysis": CONTRACTS,
    **{contract: {"errors"} for contract in CONTRACTS - {"errors"}},
    "errors": set(),
    "__main__": {"cli"},
}


def part(module: str) -> str:
    """odyssey.study.cells -> study; odyssey.record -> record; odyssey -> odyssey."""
    names = module.split(".")
    return names[1] if len(names) > 1 else names[0]


def imports(file: Path, text: str | None = None) -> set[str]:
    """The odyssey modules a file (or `text` as if it were that file) imports, absolute: relative imports
    resolved, `from . import x` as the module x."""
    module = ".".join(file.relative_to(PACKAGE.parent).with_suffix("").parts)
    package = module.removesuffix(".__init__") if file.name == "__init__.py" else module.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(text if text is not None else file.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.split(".")[0] == "odyssey"}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
            elif (node.module or "").split(".")[0] == "odyssey":
                base = ""
            else:
                continue
            stem = ".".join(p for p in (base, node.module) if p)
            found |= (
                {f"{stem}.{alias.name}" for alias in node.names} if not node.module or stem == "odyssey" else {stem}
            )
    return found


def test_every_import_between_the_parts_of_odyssey_points_down_the_layers():
    wrong = []
    for file in sorted(PACKAGE.rglob("*.py")):
        source = part(".".join(file.relative_to(PACKAGE.parent).with_suffix("").parts))
        if source in ROOT | {"__init__"}:
            continue
        for target in sorted(imports(file)):
            to = part(target)
            if to != source and to not in ROOT and to != "__version__" and to not in ALLOWED[source]:
                wrong.append(f"{file.relative_to(PACKAGE.parent)} imports {target} ({source} -> {to})")
    assert not wrong, "\n".join(wrong)


def test_the_layering_check_sees_a_wrong_import():
    """The check is not vacuous: analysis importing study, or training importing model, is caught."""
    for source, line in (("analysis", "from ..study import cells\n"), ("training", "from ..model.lstm import LSTM\n")):
        file = PACKAGE / source / "probe.py"
        found = {part(t) for t in imports(file, line)}
        assert found - ALLOWED[source], (source, found)


@pytest.mark.parametrize("word", ["record", "storage", "studytoml", "optuna_private"])
def test_the_architecture_page_names_every_shared_contract(word):
    page = (PACKAGE.parent / "docs" / "architecture.md").read_text(encoding="utf-8")
    assert f"{word}.py" in page, f"docs/architecture.md does not name odyssey/{word}.py"
