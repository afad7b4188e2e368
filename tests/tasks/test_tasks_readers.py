"""Readers of the paper's own data sets, on small files written here in exactly their formats."""

from __future__ import annotations

import io
import pickle
import wave
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from odyssey.console import print_task_table
from odyssey.tasks import SPLITS, make_task, task_table
from odyssey.tasks.paper.timit import PHONES
from odyssey.tasks.paper.wavfile import read_wav

RATE = 16000


pytestmark = pytest.mark.usefixtures("cache")  # task data in each test's own folder


# --- TIMIT ---------------------------------------------------------------------------------------


def write_sphere(path: Path, samples: np.ndarray, big_endian: bool = False, coding: str = "pcm") -> None:
    fields = [
        "NIST_1A",
        "   1024",
        "database_id -s5 TIMIT",
        f"sample_count -i {len(samples)}",
        f"sample_rate -i {RATE}",
        "channel_count -i 1",
        "sample_n_bytes -i 2",
        f"sample_byte_format -s2 {'10' if big_endian else '01'}",
        f"sample_coding -s{len(coding)} {coding}",
        "end_head",
    ]
    header = ("\n".join(fields) + "\n").encode().ljust(1024, b" ")
    path.write_bytes(header + samples.astype(">i2" if big_endian else "<i2").tobytes())


def write_riff(path: Path, samples: np.ndarray) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(samples.astype("<i2").tobytes())


def utterance(seed: int) -> np.ndarray:
    """0.3 s: silence-ish, a tone, noise; PHN below marks them h#, aa, s."""
    rng = np.random.default_rng(seed)
    t = np.arange(1600) / RATE
    return np.concatenate([rng.normal(0, 5, 1600), 3000 * np.sin(2 * np.pi * 300 * t), rng.normal(0, 2000, 1600)])


PHN = "0 1600 h#\n1600 3200 aa\n3200 4800 s\n"


def make_timit(root: Path) -> Path:
    files = [
        ("TRAIN/DR1/FCJF0/SI1027.WAV", "sphere"),
        ("TRAIN/DR1/FCJF0/SA1.WAV", "sphere"),  # dialect sentence: left out
        ("TRAIN/DR2/MABC0/SX1.WAV", "sphere-be"),
        ("TRAIN/DR2/MABC0/SX2.WAV.wav", "riff"),  # a converted copy's name
        ("TEST/DR1/MDAB0/SI1.WAV", "riff"),  # core test speaker -> test
        ("TEST/DR3/FAKS0/SI2.WAV", "sphere"),  # other test speaker -> validation
    ]
    for number, (name, kind) in enumerate(files):
        wav = root / name
        wav.parent.mkdir(parents=True, exist_ok=True)
        samples = utterance(number)
        if kind == "riff":
            write_riff(wav, samples)
        else:
            write_sphere(wav, samples, big_endian=kind == "sphere-be")
        (wav.parent / (wav.name.split(".")[0] + ".PHN")).write_text(PHN)
    return root


def test_sphere_and_riff_headers_read_the_same_samples(tmp_path):
    samples = utterance(0).round()
    write_sphere(tmp_path / "a.wav", samples)
    write_sphere(tmp_path / "b.wav", samples, big_endian=True)
    write_riff(tmp_path / "c.wav", samples)
    for name in "abc":
        read, rate = read_wav(tmp_path / f"{name}.wav")
        assert rate == RATE and np.array_equal(read, samples)


def test_timit_reader_splits_by_speaker_and_labels_61_phones(tmp_path):
    task = make_task("timit", path=make_timit(tmp_path / "TIMIT"))
    assert [task.sizes()[s] for s in SPLITS] == [3, 1, 1]
    assert (task.input_size, task.output_size, task.bidirectional, len(PHONES)) == (39, 61, True, 61)
    (batch,) = list(task.batches("test", 1))
    frames = 1 + (4800 - 400) // 160
    assert batch.lengths.tolist() == [frames]
    # centres at 200 + 160 i: h# up to sample 1600, aa to 3200, s after
    expected = [PHONES.index("h#")] * 9 + [PHONES.index("aa")] * 10 + [PHONES.index("s")] * (frames - 19)
    assert batch.targets[:, 0].tolist() == expected


def test_timit_errors_name_the_file(tmp_path):
    with pytest.raises(ValueError, match="not a folder"):
        make_task("timit", path=tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="expected TRAIN and TEST folders"):
        make_task("timit", path=tmp_path / "empty")
    root = make_timit(tmp_path / "bad-phone")
    (root / "TRAIN/DR1/FCJF0/SI1027.PHN").write_text("0 1600 h#\n1600 4800 xx\n")
    with pytest.raises(ValueError, match=r"SI1027.PHN:2: 'xx' is not one of TIMIT's 61 phones"):
        make_task("timit", path=root)
    root = make_timit(tmp_path / "bad-wav")
    (root / "TRAIN/DR1/FCJF0/SI1027.WAV").write_bytes(b"garbage, not audio")
    with pytest.raises(ValueError, match=r"SI1027.WAV: expected a NIST SPHERE .* or RIFF WAVE header"):
        make_task("timit", path=root)
    root = make_timit(tmp_path / "shorten")
    write_sphere(root / "TRAIN/DR1/FCJF0/SI1027.WAV", utterance(0), coding="pcm,embedded-shorten-v2.00")
    with pytest.raises(ValueError, match="SI1027.WAV: SPHERE sample_coding .*sph2pipe"):
        make_task("timit", path=root)
    root = make_timit(tmp_path / "no-phn")
    (root / "TRAIN/DR1/FCJF0/SI1027.PHN").unlink()
    with pytest.raises(ValueError, match=r"SI1027.WAV: no SI1027.PHN beside it"):
        make_task("timit", path=root)


# --- IAM-OnDB ------------------------------------------------------------------------------------


def stroke_xml(strokes: list[list[tuple[int, int, float]]]) -> str:
    body = "".join(
        f'<Stroke colour="black" start_time="{s[0][2]}" end_time="{s[-1][2]}">'
        + "".join(f'<Point x="{x}" y="{y}" time="{t}"/>' for x, y, t in s)
        + "</Stroke>"
        for s in strokes
    )
    return (
        '<?xml version="1.0" encoding="ISO-8859-1"?>\n<WhiteboardCaptureSession>'
        '<WhiteboardDescription><SensorLocation corner="top_left"/></WhiteboardDescription>'
        f"<StrokeSet>{body}</StrokeSet></WhiteboardCaptureSession>"
    )


FORMS = {
    "a01-000u": ["A MOVE to stop", "Mr. Gaitskell"],
    "a01-001w": ["from nominating"],
    "b02-010": ["any more Labour"],
    "c03-003a": ["candidates.", "at a meeting"],
}


def make_iam(root: Path, split_lists: bool = False) -> Path:
    rng = np.random.default_rng(0)
    for form, lines in FORMS.items():
        folder = Path(form[:3]) / form[:7]
        text = root / "ascii" / folder / f"{form}.txt"
        text.parent.mkdir(parents=True, exist_ok=True)
        text.write_text("OCR:\n\n" + "\n".join(lines) + "\n\nCSR:\n\n" + "\n".join(lines) + "\n")
        for number, line in enumerate(lines, start=1):
            strokes = [
                [(int(x), int(y), 100 + 0.01 * i) for i, (x, y) in enumerate(rng.integers(0, 500, (10 * len(line), 2)))]
                for _ in range(3)
            ]
            xml = root / "lineStrokes" / folder / f"{form}-{number:02d}.xml"
            xml.parent.mkdir(parents=True, exist_ok=True)
            xml.write_text(stroke_xml(strokes))
    if split_lists:
        # the lists name forms or single lines
        lists = {
            "trainset.txt": "a01-000u b02-010",
            "testset_v.txt": "a01-001w",
            "testset_t.txt": "c03-003a-01",
            "testset_f.txt": "c03-003a-02",
        }
        for name, entries in lists.items():
            (root / name).write_text(entries.replace(" ", "\n") + "\n")
    return root


def decoded_texts(task, split):
    texts = []
    for batch in task.batches(split, 8):
        for labels in batch.targets.split(batch.target_lengths.tolist()):
            texts.append("".join(task.class_names[i - 1] for i in labels))
    return sorted(texts)


def test_iam_reader_pairs_strokes_with_their_transcription_lines(tmp_path):
    task = make_task("iam_ondb", path=make_iam(tmp_path / "iam"))
    assert (task.input_size, task.metric_name, task.bidirectional) == (4, "cer", True)
    everything = sorted(line for lines in FORMS.values() for line in lines)
    assert sorted(sum((decoded_texts(task, s) for s in SPLITS), [])) == everything
    assert all(task.sizes()[s] >= 1 for s in SPLITS)
    for batch in task.batches("train", 8):
        assert (batch.lengths == 30 * batch.target_lengths).all()  # 3 strokes of 10 points a char


def test_iam_reader_follows_the_task_split_lists(tmp_path):
    task = make_task("iam_ondb", path=make_iam(tmp_path / "iam", split_lists=True))
    assert decoded_texts(task, "train") == sorted(FORMS["a01-000u"] + FORMS["b02-010"])
    assert decoded_texts(task, "validation") == ["candidates.", "from nominating"]
    assert decoded_texts(task, "test") == ["at a meeting"]


def test_iam_errors_name_the_file(tmp_path):
    with pytest.raises(ValueError, match="expected IAM-OnDB's lineStrokes/ and ascii/ folders"):
        make_task("iam_ondb", path=tmp_path)
    root = make_iam(tmp_path / "broken-xml")
    (root / "lineStrokes/a01/a01-000/a01-000u-02.xml").write_text("<StrokeSet><Stroke>")
    with pytest.raises(ValueError, match=r"a01-000u-02.xml: not well-formed XML"):
        make_task("iam_ondb", path=root)
    root = make_iam(tmp_path / "no-csr")
    (root / "ascii/b02/b02-010/b02-010.txt").write_text("OCR:\n\nany more Labour\n")
    with pytest.raises(ValueError, match=r"b02-010.txt: expected a 'CSR:' line"):
        make_task("iam_ondb", path=root)
    root = make_iam(tmp_path / "no-text")
    (root / "ascii/a01/a01-001/a01-001w.txt").unlink()
    with pytest.raises(ValueError, match=r"a01-001w-01.xml: its transcription .*a01-001w.txt is missing"):
        make_task("iam_ondb", path=root)
    root = make_iam(tmp_path / "no-points")
    (root / "lineStrokes/a01/a01-001/a01-001w-01.xml").write_text(stroke_xml([]))
    with pytest.raises(ValueError, match=r"a01-001w-01.xml: expected <StrokeSet><Stroke><Point"):
        make_task("iam_ondb", path=root)


# --- JSB Chorales --------------------------------------------------------------------------------


def write_jsb(path: Path, data) -> Path:
    path.write_bytes(pickle.dumps(data, protocol=2))
    return path


def test_jsb_reader_makes_next_step_rolls(tmp_path):
    piece = [(60, 64, 67), (62, 65), (), (21.0, 108.0)]  # the public file stores floats, rests as ()
    data = {"train": [piece, piece[:2]], "valid": [piece], "test": [piece[1:]]}
    task = make_task("jsb", path=write_jsb(tmp_path / "JSB Chorales.pickle", data))
    assert [task.sizes()[s] for s in SPLITS] == [2, 1, 1]
    assert (task.input_size, task.output_size, task.metric_name, task.bidirectional) == (88, 88, "nll", False)
    (batch,) = list(task.batches("validation", 1))
    on = [sorted((np.flatnonzero(row) + 21).tolist()) for row in batch.targets[:, 0].numpy()]
    assert on == [[62, 65], [], [21, 108]]


@pytest.mark.parametrize(
    "content, message",
    [
        ({"train": [], "valid": []}, "expected a pickled dict with 'train', 'valid', 'test'"),
        ({"train": [[(60,), (200,)]], "valid": [], "test": []}, r"train piece 0: MIDI note 200 is not a piano key"),
        ({"train": [[(60,)]], "valid": [], "test": []}, "train piece 0: needs at least 2 chords"),
        ({"train": [[60, 62]], "valid": [], "test": []}, "train piece 0: not a list of chords"),
    ],
)
def test_jsb_malformed_content_gives_one_line_errors(tmp_path, content, message):
    with pytest.raises(ValueError, match=message) as err:
        make_task("jsb", path=write_jsb(tmp_path / "jsb.pickle", content))
    assert "\n" not in str(err.value) and "jsb.pickle" in str(err.value)


def test_the_task_table_reads_paper_data_sets_given_as_task_equals_path(tmp_path):
    piece = [(60,), (62,), (64,)]
    pickle_path = write_jsb(tmp_path / "jsb.pickle", {"train": [piece], "valid": [piece], "test": [piece]})
    out = io.StringIO()
    print_task_table(task_table(paths=[f"jsb={pickle_path}", f"timit={tmp_path}"]), out=Console(file=out, width=200))
    (jsb_row,) = [line for line in out.getvalue().splitlines() if line.startswith(" jsb ")]
    assert jsb_row.split() == ["jsb", "uni", "1", "1", "1", "2", "88", "88", "nll"]
    assert "expected TRAIN and TEST folders" in out.getvalue()
    with pytest.raises(ValueError, match="expected TASK=PATH"):
        task_table(paths=["jsb"])


def test_jsb_unreadable_paths(tmp_path):
    with pytest.raises(ValueError, match="missing.pickle: cannot read the JSB pickle"):
        make_task("jsb", path=tmp_path / "missing.pickle")
    (tmp_path / "text.pickle").write_text("not a pickle")
    with pytest.raises(ValueError, match="text.pickle: not a pickle"):
        make_task("jsb", path=tmp_path / "text.pickle")
