"""Speech features in numpy: 25 ms / 10 ms frames, log-mel energies, MFCCs with deltas, and a
phone label per frame (shared by the synthetic speech task and the TIMIT reader)."""

from __future__ import annotations

import functools

import numpy as np
from scipy.fft import dct

WINDOW_S, STEP_S = 0.025, 0.010
PRE_EMPHASIS = 0.97
MEL_BANDS = 26  # filters behind the MFCCs (HTK's default); log-mel features use LOG_MEL_BANDS
LOG_MEL_BANDS = 40
DELTA_WINDOW = 2


def frame_count(samples: int, rate: int) -> int:
    window, step = round(WINDOW_S * rate), round(STEP_S * rate)
    return 0 if samples < window else 1 + (samples - window) // step


def frames(signal: np.ndarray, rate: int) -> np.ndarray:
    """(n_frames, window) Hamming-windowed, pre-emphasised frames."""
    window, step = round(WINDOW_S * rate), round(STEP_S * rate)
    signal = np.asarray(signal, dtype=np.float64)
    signal = np.append(signal[:1], signal[1:] - PRE_EMPHASIS * signal[:-1])
    n = frame_count(len(signal), rate)
    starts = np.arange(n)[:, None] * step
    return signal[starts + np.arange(window)] * np.hamming(window)


@functools.lru_cache(maxsize=8)
def mel_filterbank(bands: int, fft_size: int, rate: int) -> np.ndarray:
    """(fft_size // 2 + 1, bands): a column per triangular filter, evenly spaced on the mel scale up
    to rate/2. Columns, so that `power @ filters` multiplies contiguous arrays (a transposed view
    makes that product many times slower)."""
    mel = lambda hz: 2595 * np.log10(1 + hz / 700)  # noqa: E731
    hz = lambda m: 700 * (10 ** (m / 2595) - 1)  # noqa: E731
    edges = hz(np.linspace(0, mel(rate / 2), bands + 2))
    bins = np.fft.rfftfreq(fft_size, 1 / rate)
    rising = (bins[None, :] - edges[:-2, None]) / (edges[1:-1, None] - edges[:-2, None])
    falling = (edges[2:, None] - bins[None, :]) / (edges[2:, None] - edges[1:-1, None])
    filters = np.ascontiguousarray(np.clip(np.minimum(rising, falling), 0, None).T)
    filters.flags.writeable = False  # shared by the cache
    return filters


def _power_spectrum(signal: np.ndarray, rate: int) -> tuple[np.ndarray, int]:
    windowed = frames(signal, rate)
    fft_size = 1 << int(np.ceil(np.log2(windowed.shape[1])))
    return np.abs(np.fft.rfft(windowed, fft_size)) ** 2, fft_size


def log_mel(signal: np.ndarray, rate: int, bands: int = LOG_MEL_BANDS) -> np.ndarray:
    """(n_frames, bands) log mel-filterbank energies."""
    power, fft_size = _power_spectrum(signal, rate)
    return np.log(power @ mel_filterbank(bands, fft_size, rate) + 1e-10).astype(np.float32)


def mfcc_energy_deltas(signal: np.ndarray, rate: int) -> np.ndarray:
    """(n_frames, 39): 12 MFCCs (c1-c12) + log energy, then their first and second derivatives,
    the paper's TIMIT features."""
    power, fft_size = _power_spectrum(signal, rate)
    log_bands = np.log(power @ mel_filterbank(MEL_BANDS, fft_size, rate) + 1e-10)
    cepstra = dct(log_bands, type=2, norm="ortho", axis=1)[:, 1:13]
    energy = np.log(power.sum(axis=1) + 1e-10)[:, None]
    static = np.hstack([cepstra, energy])
    first = deltas(static)
    return np.hstack([static, first, deltas(first)]).astype(np.float32)


def deltas(features: np.ndarray, width: int = DELTA_WINDOW) -> np.ndarray:
    """Regression slopes over +-width frames (HTK's formula), edges padded by repetition."""
    padded = np.pad(features, ((width, width), (0, 0)), mode="edge")
    n = len(features)
    slope = sum(
        k * (padded[width + k : width + k + n] - padded[width - k : width - k + n]) for k in range(1, width + 1)
    )
    return slope / (2 * sum(k * k for k in range(1, width + 1)))


def frame_labels(starts: np.ndarray, labels: np.ndarray, n_frames: int, rate: int) -> np.ndarray:
    """The label of the segment under each frame's centre; segment i runs from starts[i] (in
    samples, ascending) to the next start. Centres before the first start take the first label."""
    window, step = round(WINDOW_S * rate), round(STEP_S * rate)
    centres = np.arange(n_frames) * step + window // 2
    index = np.searchsorted(starts, centres, side="right") - 1
    return labels[np.clip(index, 0, len(labels) - 1)]


# What the `features` option of a speech task may name.
EXTRACTORS = {"mfcc": mfcc_energy_deltas, "logmel": log_mel}
