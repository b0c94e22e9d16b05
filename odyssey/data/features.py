"""Speech features of DESIGN §3 and framewise labels from phone boundaries.

39 features per 10 ms frame: 12 MFCCs and the log frame energy (HTK style, computed by
`python_speech_features`: 25 ms Hamming window, pre-emphasis 0.97, 26 mel filters,
cepstral liftering 22), with their deltas and delta-deltas (regression over +-2 frames).
A frame's label is the phone whose segment [start, end) covers the frame's centre.
"""

from __future__ import annotations

import numpy as np
import python_speech_features as psf

SAMPLE_RATE = 16000
WINDOW_S = 0.025
HOP_S = 0.010
PREEMPHASIS = 0.97
N_FEATURES = 39
FEATURES_VERSION = 1  # bump when the numbers a given waveform yields would change

DESCRIPTION = ("12 MFCC + log energy (HTK style, python_speech_features), deltas and "
               "delta-deltas (N=2); 25 ms Hamming window, 10 ms hop, pre-emphasis 0.97, "
               "26 mel filters, 512-point FFT, lifter 22; 16 kHz audio")


def mfcc39(signal: np.ndarray, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """(frames, 39) float32 features of a mono signal (16-bit sample scale)."""
    if sample_rate != SAMPLE_RATE:
        raise ValueError(f"expected {SAMPLE_RATE} Hz audio, got {sample_rate} Hz")
    if len(signal) < int(WINDOW_S * sample_rate):
        raise ValueError(f"signal of {len(signal)} samples is shorter than one window")
    static = psf.mfcc(np.asarray(signal, np.float64), sample_rate, winlen=WINDOW_S,
                      winstep=HOP_S, numcep=13, nfilt=26, nfft=512, preemph=PREEMPHASIS,
                      ceplifter=22, appendEnergy=True, winfunc=np.hamming)
    # appendEnergy puts the log frame energy in column 0, in place of c0: 12 MFCC + energy.
    delta = psf.delta(static, 2)
    delta2 = psf.delta(delta, 2)
    return np.concatenate([static, delta, delta2], axis=1).astype(np.float32)


def frame_centres(n_frames: int) -> np.ndarray:
    """Centre time (seconds) of each analysis frame."""
    return np.arange(n_frames) * HOP_S + WINDOW_S / 2


def frame_labels(n_frames: int, ends: np.ndarray, labels: np.ndarray,
                 duration: float) -> np.ndarray:
    """Label per frame: the first phone ending after the frame's centre.

    `ends` are the segments' end times in seconds (increasing), `labels` their class
    indices. Frames whose centre lies past the last segment or past the audio (`duration`
    seconds) are cut: the returned array may be shorter than `n_frames`, and the caller
    trims the features to its length.
    """
    ends = np.asarray(ends, np.float64)
    if len(ends) != len(labels) or len(ends) == 0:
        raise ValueError("need one end time per phone label, and at least one phone")
    if np.any(np.diff(ends) < 0):
        raise ValueError("phone end times must not decrease")
    centres = frame_centres(n_frames)
    keep = int(np.sum(centres < min(float(ends[-1]), duration)))
    idx = np.searchsorted(ends, centres[:keep], side="right")
    return np.asarray(labels, np.int16)[idx]


def utterance_frames(signal: np.ndarray, sample_rate: int, ends: np.ndarray,
                     labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Features (T, 39) float32 and aligned labels (T,) int16 of one utterance."""
    feats = mfcc39(signal, sample_rate)
    y = frame_labels(len(feats), ends, labels, len(signal) / sample_rate)
    if len(y) == 0:
        raise ValueError("no frame centre falls inside the labelled audio")
    return feats[: len(y)], y
