"""Reading 16-bit PCM speech files with either header found in TIMIT copies: NIST SPHERE (the
LDC original) or RIFF WAVE (converted copies)."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np

from ...errors import DataError

SPHERE_MAGIC = b"NIST_1A"


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    """(samples as float64 in int16 units, sample rate) of a mono 16-bit file; ValueError naming
    the file when it is neither a SPHERE nor a RIFF PCM file."""
    with open(path, "rb") as f:
        magic = f.read(7)
    if magic == SPHERE_MAGIC:
        return _read_sphere(path)
    if magic[:4] == b"RIFF":
        return _read_riff(path)
    raise DataError(f"{path}: expected a NIST SPHERE ('NIST_1A') or RIFF WAVE header, found {magic!r}")


def _read_sphere(path: Path) -> tuple[np.ndarray, int]:
    raw = path.read_bytes()
    try:
        header_size = int(raw[:1024].split(b"\n")[1])
        fields = {}
        # Header lines are "name -type value" (e.g. "sample_rate -i 16000") up to "end_head".
        for line in raw[:header_size].decode("ascii").split("\n")[2:]:
            if line.strip() == "end_head":
                break
            if line.strip():
                name, _, value = line.split(None, 2)
                fields[name] = value.strip()
        coding = fields.get("sample_coding", "pcm")
        order = "<" if fields.get("sample_byte_format", "01") == "01" else ">"
        count = int(fields.get("sample_count", (len(raw) - header_size) // 2))
        rate = int(fields["sample_rate"])
    except (IndexError, KeyError, ValueError, UnicodeDecodeError):
        raise DataError(f"{path}: malformed NIST SPHERE header (needs sample_rate and sample_count)") from None
    if coding != "pcm":
        raise DataError(f"{path}: SPHERE sample_coding {coding!r}; expected plain pcm (decompress with sph2pipe)")
    if fields.get("sample_n_bytes", "2") != "2" or fields.get("channel_count", "1") != "1":
        raise DataError(f"{path}: expected mono 16-bit SPHERE samples")
    if header_size + 2 * count > len(raw):
        raise DataError(f"{path}: SPHERE header promises {count} samples, the file holds fewer")
    samples = np.frombuffer(raw, dtype=f"{order}i2", count=count, offset=header_size)
    return samples.astype(np.float64), rate


def _read_riff(path: Path) -> tuple[np.ndarray, int]:
    try:
        with wave.open(str(path), "rb") as w:
            if w.getsampwidth() != 2:
                raise DataError(f"{path}: expected 16-bit PCM samples, found {8 * w.getsampwidth()}-bit")
            channels, rate = w.getnchannels(), w.getframerate()
            samples = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    except (wave.Error, EOFError) as err:
        raise DataError(f"{path}: malformed RIFF WAVE file ({err})") from None
    # A stereo copy keeps its first channel; TIMIT itself is mono.
    return samples[::channels].astype(np.float64), rate
