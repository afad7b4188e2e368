"""What the user can fix is one line and exit 2; a stop is exit 130; a bug in odyssey says where it happened."""

import dataclasses
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

PREPARED = "sqlite:///{tmp}/prepared.db"


@pytest.mark.parametrize(
    "args, expected",
    [
        (["run", "{bad}"], "{bad}: unknown key 'epochs'; expected one of"),
        (
            ["status", "--storage", "sqlite:///{tmp}/absent.db"],
            "sqlite:///{tmp}/absent.db: no storage yet (the file {tmp}/absent.db does not exist): run the study first",
        ),
        (
            ["run", "{study}", "--storage", "postgresql+psycopg2://user:secret@127.0.0.1:1/db"],
            "postgresql+psycopg2://user:***@127.0.0.1:1/db: cannot open storage",
        ),
        (
            ["run", "{study}", "--storage", "postgresql://user:secret@127.0.0.1:1/db"],
            'connection to server at "127.0.0.1", port 1 failed',
        ),
        (
            ["run", "{study}", "--storage", "sqlite:///{tmp}/no/such/folder/x.db"],
            "the folder {tmp}/no/such/folder does not exist",
        ),
        (["prepare", "{typo}", "--storage", PREPARED], "task 'vowels' has no option 'lenght'"),
        (["status", "--storage", "sqlite:///{tmp}/plain.db"], "no odyssey study in this storage; it holds: plain"),
        (
            ["report", "--storage", "sqlite:///{tmp}/plain.db"],
            "the storage holds no odyssey study (for plain Optuna studies, use `odyssey importance`)",
        ),
        # issue 25: these said "the folder results does not exist (create it, or check the path)"
        (
            ["status", "{study}"],
            "sqlite:///results/tiny.db: no storage yet (the file results/tiny.db does not exist): "
            "run the study first (odyssey run STUDY.toml)",
        ),
        (
            ["report", "{study}"],
            "sqlite:///results/tiny.db: no storage yet (the file results/tiny.db does not exist): "
            "run the study first (odyssey run STUDY.toml)",
        ),
        # issue 25: SQLAlchemy's "Can't load plugin: sqlalchemy.dialects:postgres"
        (
            ["run", "{study}", "--storage", "postgres://user:secret@127.0.0.1:1/db"],
            "postgres://user:***@127.0.0.1:1/db: unknown storage scheme 'postgres://'; write postgresql://user:***@127.0.0.1:1/db",
        ),
        # issue 24: where packs train; a machine without that GPU says so before any worker starts
        (["run", "{study}", "--device", "tpu"], "--device 'tpu': expected cpu, cuda, or cuda:N for the N-th GPU"),
        (["run", "{study}", "--device", "cuda:63", "--storage", PREPARED], "--device cuda:63: "),
    ],
    ids=[
        "study-file",
        "no-storage",
        "password",
        "postgresql-driver",
        "missing-folder",
        "prepare-typo",
        "plain-optuna",
        "report-plain-optuna",
        "status-before-a-run",
        "report-before-a-run",
        "postgres-scheme",
        "device-kind",
        "absent-gpu",
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, args, expected, cache, tiny_study, cli):
    import optuna

    (tmp_path / "bad.toml").write_text('name = "x"\ntasks = ["vowels"]\nvariants = ["V"]\ntrials = 1\nepochs = 3\n')
    tiny_study()
    (tmp_path / "typo.toml").write_text((tmp_path / "tiny.toml").read_text() + "[task_options.vowels]\nlenght = 20\n")
    optuna.create_study(storage=f"sqlite:///{tmp_path}/plain.db", study_name="plain")
    names = {
        "bad": tmp_path / "bad.toml",
        "study": tmp_path / "tiny.toml",
        "typo": tmp_path / "typo.toml",
        "tmp": tmp_path,
    }
    result = cli(*(a.format(**names) for a in args), cwd=tmp_path, check=False)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and expected.format(**names) in lines[0], result.stderr
    assert "secret" not in result.stderr and not (tmp_path / "no").exists()


def test_a_prepare_refused_for_a_typo_leaves_nothing_to_refuse_the_fixed_file(
    tmp_path, cache, tiny_study, cli, storage_url
):
    study = tiny_study()
    typo = tmp_path / "typo.toml"
    typo.write_text(study.read_text() + "[task_options.vowels]\nlenght = 20\n")
    assert cli("prepare", str(typo), "--storage", storage_url, cwd=tmp_path, check=False).returncode == 2
    cli("prepare", str(study), "--storage", storage_url, cwd=tmp_path)  # not "study file changed"


def test_sigterm_at_any_moment_of_start_up_is_a_clean_stop(tmp_path, cache, tiny_study, odyssey_command):
    study = tiny_study(max_epochs=50)
    for delay in (0.3, 1.0, 2.0, 4.0):
        process = subprocess.Popen(
            [*odyssey_command, "run", str(study)], cwd=tmp_path, stderr=subprocess.PIPE, text=True
        )
        time.sleep(delay)
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=120)
        assert "Traceback" not in err, err
        # before odyssey's handler is installed the default one ends the process, before anything started
        assert process.returncode in (130, -signal.SIGTERM), (delay, process.returncode, err)


LOST_STOP = """
import os, signal, weakref
from odyssey.study.stopping import STOP

STOP.install()
class Thing: pass
def broken(_): raise ValueError("a real error in a callback")
a = Thing(); ref_a = weakref.ref(a, broken); del a
# The signal lands while Python runs a weakref callback, as it did in a CI run during start-up.
b = Thing(); ref_b = weakref.ref(b, lambda _: os.kill(os.getpid(), signal.SIGTERM)); del b
print("stopping" if STOP.event.is_set() else "not stopping")
"""


def test_a_stop_python_could_not_raise_prints_no_traceback_and_other_lost_errors_still_do(root):
    """A SIGTERM inside a weakref callback: Python prints "Exception ignored in ..." and a traceback of
    odyssey's handler."""
    result = subprocess.run([sys.executable, "-c", LOST_STOP], cwd=root, capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "stopping", result.stderr
    assert "KeyboardInterrupt" not in result.stderr and "stopping.py" not in result.stderr, result.stderr
    assert result.stderr.count("Traceback") == 1 and "ValueError: a real error in a callback" in result.stderr, (
        result.stderr
    )


def test_more_jobs_than_work_or_cores_start_no_idle_workers(tmp_path, cache, monkeypatch, tiny_study):
    from odyssey.study import runner
    from odyssey.study.studyfile import load_study_file

    spec = load_study_file(tiny_study(trials=1))
    url = f"sqlite:///{tmp_path}/jobs.db"
    started = []
    monkeypatch.setattr(
        runner, "_run_workers", lambda spec, url, storage, ckpt, jobs, threads, progress: started.append(jobs)
    )
    monkeypatch.setattr(runner, "_run_here", lambda *args: started.append(1))
    runner.run(spec, storage_url=url, jobs=999, progress=False)
    assert started == [min(2, runner.cores())]  # two unfinished trials (two cells), capped at the cores
    runner.run(spec, storage_url=url, jobs=999, force_jobs=True, progress=False)
    assert started[-1] == 2  # forced: still no more workers than trials to run


def test_a_bug_prints_a_short_traceback_and_where_the_whole_one_is(monkeypatch, capsys):
    import odyssey.cli

    def broken():
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(odyssey.cli, "app", broken)
    monkeypatch.delenv("ODYSSEY_DEBUG", raising=False)
    with pytest.raises(SystemExit) as ended:
        odyssey.cli.main()
    err = capsys.readouterr().err
    assert ended.value.code == 1 and "error: a bug in odyssey: ZeroDivisionError: division by zero" in err
    log = err.split("the whole traceback: ")[1].split(" ")[0]
    assert "Traceback (most recent call last)" in open(log).read() and "in broken" in err
    os.unlink(log)


def test_python_m_odyssey_is_the_command_line(root):
    """Issue 25: `python -m odyssey` failed (no __main__)."""
    result = subprocess.run(
        [sys.executable, "-m", "odyssey", "--version"], cwd=root, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0 and result.stdout.startswith("odyssey "), result.stderr


def test_the_live_table_shows_a_dash_for_a_cell_without_a_complete_trial():
    """Issue 25: 'best nan' for cells without trials."""
    from rich.console import Console

    from odyssey.console import _progress_table

    rows = [{"cell": "s/t/V", "complete": 0, "failed": 0, "planned": 3, "now": "", "best": float("nan")}]
    console = Console(width=120, record=True)
    console.print(_progress_table(rows, started=0.0, done_at_start=0, jobs=1))
    row = next(line for line in console.export_text().splitlines() if "s/t/V" in line)
    assert "nan" not in row and row.rstrip(" │").endswith(" -"), row


def run_main(monkeypatch, capsys, *args: str) -> tuple[int, str]:
    """`odyssey ARGS` in this process (no torch import per call): the exit status and stderr."""
    import odyssey.cli

    monkeypatch.setattr(sys, "argv", ["odyssey", *args])
    monkeypatch.delenv("ODYSSEY_DEBUG", raising=False)
    with pytest.raises(SystemExit) as ended:
        odyssey.cli.main()
    return ended.value.code, capsys.readouterr().err


USER_FIXABLE = {  # issue 25: each was "a bug in odyssey ... please report it", exit 1, with a traceback
    "vowels-option": (
        "[task_options.vowels]\nvalidation_fraction = 2.0\n",
        {},
        "vowels: validation_fraction must lie in (0, 1), got 2.0",
    ),
    "adding-option": ("[task_options.adding]\nlength = 1\n", {}, "adding: length must be at least 2"),
    "jsb-pickle": (
        '[task_options.jsb]\npath = "absent.pickle"\n',
        {},
        "absent.pickle: cannot read the JSB pickle (No such file or directory)",
    ),
    "backend": (
        "",
        {"ODYSSEY_BACKEND": "quick"},
        "environment variable ODYSSEY_BACKEND must be one of auto, fast, reference, got 'quick'",
    ),
}


@pytest.mark.parametrize("case", USER_FIXABLE)
def test_user_fixable_errors_of_built_in_tasks_and_settings_are_one_line(
    tmp_path, cache, monkeypatch, capsys, case, tiny_study, storage_url
):
    options, env, expected = USER_FIXABLE[case]
    study = tiny_study(trials=1)
    task = options.split(".", 1)[1].split("]")[0] if options else "vowels"
    study.write_text(study.read_text().replace('tasks = ["vowels"]', f'tasks = ["{task}"]') + options)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(tmp_path)
    code, err = run_main(monkeypatch, capsys, "run", str(study), "--storage", storage_url)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith(f"error: {expected}"), err


def test_report_out_onto_a_file_or_where_nothing_can_be_written_is_one_line(
    tmp_path, cache, monkeypatch, capsys, tiny_study, cli, storage_url
):
    cli("prepare", str(tiny_study(trials=1)), "--storage", storage_url, cwd=tmp_path)
    (tmp_path / "a-file").write_text("mine")
    code, err = run_main(monkeypatch, capsys, "report", "--storage", storage_url, "--out", str(tmp_path / "a-file"))
    assert (
        code == 2
        and err == f"error: --out {tmp_path / 'a-file'}: is a file; expected a folder (it is created if missing)\n"
    )
    code, err = run_main(
        monkeypatch, capsys, "report", "--storage", storage_url, "--out", str(tmp_path / "a-file" / "report")
    )
    assert (
        code == 2
        and err.startswith(f"error: --out {tmp_path / 'a-file' / 'report'}: cannot write there (")
        and len(err.splitlines()) == 1
    ), err
    assert (tmp_path / "a-file").read_text() == "mine"


def _make_read_only(path) -> bool:
    """chattr +i: read-only even for root (chmod is not), where the filesystem and privileges allow it."""
    return (
        subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode == 0
        if shutil.which("chattr")
        else False
    )


def test_a_read_only_storage_is_one_line_and_status_still_reads_it(
    tmp_path, cache, monkeypatch, capsys, tiny_study, cli, storage_url
):
    study = tiny_study(trials=1)
    cli("prepare", str(study), "--storage", storage_url, cwd=tmp_path)
    if os.geteuid() != 0:
        os.chmod(tmp_path / "s.db", 0o444)
    elif not _make_read_only(tmp_path / "s.db"):
        pytest.skip("running as root where chattr +i is not allowed: no way to make a file read-only")
    try:
        code, err = run_main(monkeypatch, capsys, "run", str(study), "--storage", storage_url)
        assert (
            code == 2
            and err
            == f"error: {storage_url}: cannot write to the storage, so odyssey run and prepare cannot use it "
            f"(status and report only read it): the file {tmp_path / 's.db'} is read-only\n"
        )
        assert "tiny/vowels/V" in cli("status", "--storage", storage_url, cwd=tmp_path).stdout
    finally:
        subprocess.run(["chattr", "-i", str(tmp_path / "s.db")], capture_output=True)
        os.chmod(tmp_path / "s.db", 0o644)


def test_a_stop_that_python_could_not_raise_still_stops_at_the_next_epoch(tmp_path, cache, monkeypatch, tiny_study):
    """SIGINT raised inside a destructor is swallowed ("Exception ignored in ..."): the run must still
    stop, exit 130."""
    from odyssey.errors import Interrupted
    from odyssey.study import runner, worker
    from odyssey.study.stopping import STOP
    from odyssey.study.studyfile import load_study_file

    real_train = worker.train_alone

    def train(training, task):
        def first_epoch_swallows_a_stop(epoch, metric, best):
            if epoch == 1:
                STOP.event.set()  # what the signal handler leaves behind when its KeyboardInterrupt is lost
            training.on_epoch(epoch, metric, best)

        return real_train(dataclasses.replace(training, on_epoch=first_epoch_swallows_a_stop), task)

    monkeypatch.setattr(worker, "train_alone", train)
    spec = load_study_file(tiny_study(max_epochs=3, trials=1))
    url = f"sqlite:///{tmp_path}/stop.db"
    with pytest.raises(Interrupted):
        runner.run(spec, storage_url=url, progress=False)
    import optuna

    first = optuna.load_study(study_name="tiny/vowels/V", storage=url).trials
    assert [t.state.name for t in first] == ["FAIL", "WAITING"] and first[0].user_attrs["interrupted"]


BROKEN_TASK = """
from odyssey.tasks import make_task


def make(*, seed):
    task = make_task("adding", seed=seed, length=5, train=8, validation=4, test=4)

    def loss(outputs, batch):
        raise ZeroDivisionError("in the loss")

    task.loss = loss
    return task
"""


def test_a_worker_that_hits_a_bug_says_where_its_whole_traceback_is(tmp_path, cache, cli):
    (tmp_path / "brokentask.py").write_text(BROKEN_TASK)
    study = tmp_path / "broken.toml"
    study.write_text('name = "broken"\ntasks = ["broken"]\nvariants = ["V", "NP"]\ntrials = 1\nretries = 0\n'
                     '[training]\nmax_epochs = 1\n[task_options.broken]\nsource = "brokentask:make"\n')  # fmt: skip
    result = cli("run", str(study), "--jobs", "2", cwd=tmp_path, check=False)
    # The toy task's 4 validation sequences draw the small-validation warning first; the bug is one line.
    lines = [line for line in result.stderr.strip().splitlines() if not line.startswith("warning: ")]
    assert (
        result.returncode == 2
        and len(lines) == 1
        and "stopped on a bug in odyssey: ZeroDivisionError: in the loss" in lines[0]
    ), result.stderr
    log = tmp_path / "results" / "broken" / "logs" / lines[0].split("results/broken/logs/")[1].split(")")[0]
    assert "Traceback (most recent call last)" in log.read_text() and "in loss" in log.read_text()


def test_the_kernel_is_built_before_any_trial_starts(tmp_path, cache, monkeypatch, tiny_study):
    from odyssey.study import runner
    from odyssey.study.studyfile import load_study_file

    order = []
    monkeypatch.setattr(runner, "build_kernel", lambda: order.append("kernel"))
    monkeypatch.setattr(runner, "_run_here", lambda *args: order.append("trials"))
    runner.run(load_study_file(tiny_study(trials=1)), storage_url=f"sqlite:///{tmp_path}/k.db", progress=False)
    assert order == [
        "kernel",
        "trials",
    ]  # so no trial's seconds include a compile, and its line shows before the live table


def test_the_command_line_quiets_optunas_info_lines(monkeypatch, capsys):
    """The CLI sets Optuna's verbosity; importing odyssey does not (a library user's setting stays theirs)."""
    import optuna

    before = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.INFO)
    try:
        assert run_main(monkeypatch, capsys, "variants")[0] == 0
        assert optuna.logging.get_verbosity() == optuna.logging.WARNING
    finally:
        optuna.logging.set_verbosity(before)


def test_an_unavailable_kernel_is_a_warning_not_a_print(monkeypatch, capsys):
    """The runner says it once, as a warning the CLI prints as one line, not on the library's stdout."""
    from odyssey.errors import OdysseyWarning
    from odyssey.model import kernel
    from odyssey.model.kernel import dispatch
    from odyssey.study import runner

    def unavailable():
        raise kernel.KernelUnavailable("odyssey's C++ LSTM kernel is unavailable: c++: command not found")

    monkeypatch.setattr(dispatch, "chosen_backend", lambda backend: "auto")
    monkeypatch.setattr(kernel, "load", unavailable)
    with pytest.warns(OdysseyWarning, match=r"command not found; the workers use the slower reference LSTM"):
        runner.build_kernel()
    assert capsys.readouterr().out == ""
