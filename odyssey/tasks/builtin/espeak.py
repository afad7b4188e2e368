"""Speech and its phone timing from espeak-ng (the `espeakng-loader` wheel), through ctypes.

The engine keeps hidden state between utterances (the glottal phase and a random generator),
so the same text comes out a few samples different each time it is spoken in one process, and
`espeak_ng_SetRandSeed` or re-initialising does not reset it. Determinism therefore comes from
isolation: every group of jobs is spoken by a fresh interpreter running this file, and the groups
depend only on the job list, not on how many run in parallel.

This file imports nothing from odyssey so that the worker starts fast (`python -P` keeps this
folder off sys.path, so sibling modules cannot shadow the standard library).
"""

from __future__ import annotations

import ctypes
import io
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np

SAMPLE_RATE = 22050  # what espeak-ng's voices are made at; the worker checks it
JOBS_PER_WORKER = 8  # fixed, never derived from the CPU count: it decides the engine's state

# speak_lib.h
AUDIO_OUTPUT_SYNCHRONOUS = 2
INITIALIZE_PHONEME_EVENTS = 0x0001
INITIALIZE_DONT_EXIT = 0x8000
EVENT_LIST_TERMINATED, EVENT_PHONEME = 0, 7
POS_CHARACTER, CHARS_UTF8 = 1, 1
PARAMETER = {"rate": 1, "pitch": 3, "range": 4}


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),  # milliseconds
        ("sample", ctypes.c_int),  # samples since the start of this utterance
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    ]


_Callback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))


def synthesise(jobs: list[dict], processes: int | None = None) -> list[list[tuple[np.ndarray, np.ndarray, list[str]]]]:
    """Speak every job in isolated worker processes.

    A job is {"voice": "en-us+m3", "rate": words per minute, "pitch": 0-99, "range": 0-99,
    "texts": [...]}. Returns, per job and text, (int16 audio at SAMPLE_RATE, phone start samples,
    phone names without stress marks).
    """
    groups = [jobs[i : i + JOBS_PER_WORKER] for i in range(0, len(jobs), JOBS_PER_WORKER)]
    with ThreadPoolExecutor(max_workers=processes or os.cpu_count() or 1) as pool:
        results = list(pool.map(_run_worker, groups))
    return [job for group in results for job in group]


def _run_worker(group: list[dict]) -> list[list[tuple[np.ndarray, np.ndarray, list[str]]]]:
    done = subprocess.run(
        [sys.executable, "-P", os.path.abspath(__file__)],
        input=json.dumps(group).encode(),
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        message = done.stderr.decode(errors="replace").strip().splitlines()
        raise RuntimeError(f"espeak-ng worker failed: {message[-1] if message else done.returncode}")
    with np.load(io.BytesIO(done.stdout), allow_pickle=False) as data:
        return [
            [
                (data[f"audio_{j}_{t}"], data[f"starts_{j}_{t}"], data[f"phones_{j}_{t}"].tolist())
                for t in range(len(job["texts"]))
            ]
            for j, job in enumerate(group)
        ]


class _Engine:
    """One initialised espeak-ng in this process (worker side only)."""

    def __init__(self) -> None:
        import espeakng_loader

        self.lib = ctypes.CDLL(espeakng_loader.get_library_path())
        self.lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        self.lib.espeak_Synth.argtypes = [
            ctypes.c_char_p,
            ctypes.c_size_t,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.c_void_p,
            ctypes.c_void_p,
        ]
        self.lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        data = espeakng_loader.get_data_path().encode()
        self.rate = self.lib.espeak_Initialize(
            AUDIO_OUTPUT_SYNCHRONOUS, 0, data, INITIALIZE_PHONEME_EVENTS | INITIALIZE_DONT_EXIT
        )
        if self.rate != SAMPLE_RATE:
            raise RuntimeError(f"espeak_Initialize returned {self.rate}, not {SAMPLE_RATE} Hz (data: {data.decode()})")
        self._audio: list[np.ndarray] = []
        self._phones: list[tuple[int, str]] = []
        self._callback = _Callback(self._collect)  # kept referenced: the library calls it later
        self.lib.espeak_SetSynthCallback(self._callback)

    def _collect(self, wav, samples, events) -> int:
        if samples > 0:
            self._audio.append(np.ctypeslib.as_array(wav, (samples,)).copy())
        i = 0
        while events[i].type != EVENT_LIST_TERMINATED:
            if events[i].type == EVENT_PHONEME:
                name = events[i].id.string.decode("utf-8", "replace")
                self._phones.append((events[i].sample, name.replace("'", "").replace(",", "")))
            i += 1
        return 0  # carry on

    def speak(self, job: dict) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        if self.lib.espeak_SetVoiceByName(job["voice"].encode()) != 0:
            raise RuntimeError(f"espeak-ng has no voice {job['voice']!r}")
        for name, code in PARAMETER.items():
            self.lib.espeak_SetParameter(code, int(job[name]), 0)
        out = []
        for text in job["texts"]:
            self._audio, self._phones = [], []
            encoded = text.encode() + b"\0"
            status = self.lib.espeak_Synth(encoded, len(encoded), 0, POS_CHARACTER, 0, CHARS_UTF8, None, None)
            self.lib.espeak_Synchronize()
            if status != 0 or not self._audio:
                raise RuntimeError(f"espeak_Synth failed ({status}) on {text!r}")
            starts = np.array([0] + [s for s, _ in self._phones], dtype=np.int64)
            # Before the first phone event the engine is silent; name that stretch like its pauses.
            phones = np.array(["_"] + [p for _, p in self._phones])
            out.append((np.concatenate(self._audio).astype(np.int16), starts, phones))
        return out


def _worker_main() -> None:
    group = json.load(sys.stdin)
    engine = _Engine()
    arrays = {}
    for j, job in enumerate(group):
        for t, (audio, starts, phones) in enumerate(engine.speak(job)):
            arrays.update({f"audio_{j}_{t}": audio, f"starts_{j}_{t}": starts, f"phones_{j}_{t}": phones})
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    sys.stdout.buffer.write(buffer.getvalue())


if __name__ == "__main__":
    _worker_main()
