"""The walk from `odyssey run` to the training loop, as a reader takes it.

Runs a one-trial study in this process and stops as train() starts. The walk is the functions on the
call stack at that moment (the path) and every odyssey function they call directly (what a reader
looks up on the way), in the order of their first call; it counts their files, leaving out tasks/ and
model/ (building the task and the network, a walk of their own), and how often the walk comes back
to a file it has left.

    python benchmarks/code_walk.py [--show]

Issue 26, on the 2-core Zen 5 of 2026-12-07: at 6daaeb7, 34 functions in 10 files with 15 returns;
after the moves, 34 functions in 10 files with 7 returns (35 once issue 23 read
the learning curve a retry resumes).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = str(ROOT / "odyssey")
STUDY = """name = "walk"
tasks = ["adding"]
variants = ["V"]
trials = 1
[training]
max_epochs = 1
[task_options.adding]
length = 10
train = 20
validation = 10
test = 10
"""


class Reached(Exception):
    """train() was called: the walk ends here."""


def trace() -> list[tuple[str, str, object, object]]:
    """Every call into odyssey until train(): (file, function, caller frame, frame)."""
    calls = []

    def profile(frame, event, arg):
        file = frame.f_code.co_filename
        if event != "call" or not file.startswith(PACKAGE) or "/model/kernel/" in file:
            return
        rel = os.path.relpath(file, ROOT)
        calls.append((rel, frame.f_code.co_name, frame.f_back, frame))
        if "/training/" in rel and frame.f_code.co_name == "train":
            raise Reached

    sys.path.insert(0, str(ROOT))  # this checkout's odyssey, whichever one is installed
    from odyssey.cli import app

    folder = Path(tempfile.mkdtemp())
    (folder / "walk.toml").write_text(STUDY)
    sys.setprofile(profile)
    try:
        app(["run", str(folder / "walk.toml"), "--storage", f"sqlite:///{folder}/walk.db"], standalone_mode=False)
    except Reached:
        pass
    finally:
        sys.setprofile(None)
    return calls


def walk(calls: list) -> tuple[list[str], list[tuple[str, str]]]:
    path, frame = [], calls[-1][3]
    while frame is not None:
        if frame.f_code.co_filename.startswith(PACKAGE):
            path.append(frame)
        frame = frame.f_back
    on_path = {id(f) for f in path}
    seen, steps = set(), []
    for rel, name, caller, frame in calls:
        direct = id(frame) in on_path or (caller is not None and id(caller) in on_path)
        key = (rel, frame.f_code.co_firstlineno)
        if direct and not name.startswith("<") and key not in seen:
            seen.add(key)
            steps.append((rel, name))
    names = [f"{f.f_code.co_filename.split('odyssey/')[-1]}:{f.f_code.co_name}" for f in reversed(path)]
    return names, [(rel, name) for rel, name in steps if "/tasks/" not in rel and "/model/" not in rel]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--show", action="store_true", help="print every step")
    args = parser.parse_args()
    os.environ.setdefault("ODYSSEY_BACKEND", "reference")  # no kernel compile inside the walk
    path, steps = walk(trace())
    files = [rel for rel, _ in steps]
    files = [rel for i, rel in enumerate(files) if i == 0 or files[i - 1] != rel]
    if args.show:
        print("\n".join(f"{rel.removeprefix('odyssey/')}: {name}" for rel, name in steps))
    print("path:", " -> ".join(path))
    print(f"walk: {len(steps)} functions in {len(set(files))} files, {len(files) - len(set(files))} returns to a file")


if __name__ == "__main__":
    main()
