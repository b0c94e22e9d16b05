"""Piano rolls: (T, 88) uint8 arrays, key k (MIDI 21 + k) on at quarter-note step t; made
from a music21 score or from lists of MIDI numbers, and transposed."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

LOWEST, HIGHEST = 21, 108  # A0 .. C8, the 88 piano keys
KEYS = HIGHEST - LOWEST + 1
# Bump when the roll conversion changes, so that every cache built before is rebuilt.
ROLL_FORMAT = 1
_EPS = 1e-6


def score_to_roll(score: Any, *, where: str = "score") -> np.ndarray:
    """(T, 88) uint8 roll of a music21 stream sampled on the quarter-note grid.

    Step t is the instant t quarters after the first downbeat-aligned beat (a pickup that
    starts off the beat shifts the grid, so beats stay beats). Key k is on when a note or
    chord tone of MIDI pitch 21 + k sounds at that instant (onset <= t < onset + duration):
    held and repeated notes look alike, and notes lying between beats are not kept, as in
    JSB. Rests, unpitched notes and grace notes (no duration) add nothing.
    """
    flat = score.flatten()
    parts = getattr(score, "parts", None)
    first_part = parts[0] if parts is not None and len(parts) else score
    measures = first_part.getElementsByClass("Measure")
    pad = float(measures[0].paddingLeft) if len(measures) else 0.0
    phase = (-pad) % 1.0
    if phase > 1 - _EPS:
        phase = 0.0
    end = float(flat.highestTime)
    frames = max(0, math.ceil(end - phase - _EPS))
    roll = np.zeros((frames, KEYS), np.uint8)
    for element in flat.notes:
        onset = float(element.offset)
        stop = onset + float(element.quarterLength)
        first = math.ceil(onset - phase - _EPS)
        last = math.ceil(stop - phase - _EPS)
        if last <= first:
            continue
        for pitch in getattr(element, "pitches", ()):
            midi = int(round(pitch.ps))
            if not LOWEST <= midi <= HIGHEST:
                raise ValueError(f"{where}: note {pitch.nameWithOctave} (MIDI {midi}) at "
                                 f"offset {onset} is outside the piano range "
                                 f"{LOWEST}-{HIGHEST}")
            roll[first:last, midi - LOWEST] = 1
    return roll


def transpose_roll(roll: np.ndarray, semitones: int, where: str = "roll") -> np.ndarray:
    """The roll moved by `semitones`; an error names `where` if a note leaves 21-108."""
    if semitones == 0:
        return roll
    on = np.flatnonzero(roll.any(0))
    if len(on) and not (on[0] + semitones >= 0 and on[-1] + semitones < KEYS):
        raise ValueError(f"{where}: transposing by {semitones} semitones moves notes outside "
                         f"MIDI {LOWEST}-{HIGHEST}")
    out = np.zeros_like(roll)
    if semitones > 0:
        out[:, semitones:] = roll[:, :-semitones]
    else:
        out[:, :semitones] = roll[:, -semitones:]
    return out


def shift_to_c(tonic_pitch_class: int) -> int:
    """Semitones (-6..+5, the nearer way) that move a tonic to C."""
    return (-tonic_pitch_class + 6) % 12 - 6


def steps_to_roll(sequence: Any, where: str) -> np.ndarray:
    """(T, 88) uint8 roll of a list of steps, each a list/tuple of MIDI numbers 21-108."""
    if not isinstance(sequence, list | tuple):
        raise ValueError(f"{where}: a sequence must be a list of time steps, got "
                         f"{type(sequence).__name__}")
    if len(sequence) == 0:
        raise ValueError(f"{where}: empty sequence (no time steps)")
    roll = np.zeros((len(sequence), KEYS), np.uint8)
    for t, step in enumerate(sequence):
        if not isinstance(step, list | tuple):
            raise ValueError(f"{where}, step {t}: a time step must be a list or tuple of MIDI "
                             f"note numbers, got {type(step).__name__}")
        for note in step:
            number = float(note) if isinstance(note, int | float | np.number) else math.nan
            if not number.is_integer():
                raise ValueError(f"{where}, step {t}: {note!r} is not a MIDI note number")
            if not LOWEST <= number <= HIGHEST:
                raise ValueError(f"{where}, step {t}: note {int(number)} is outside "
                                 f"{LOWEST}-{HIGHEST}")
            roll[t, int(number) - LOWEST] = 1
    return roll
