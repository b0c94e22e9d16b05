"""Pen trajectories ("ink") of text lines and the per-point input features built from them.

A line is a list of strokes; a stroke is the (n, 3) array of x, y, t of the points written
with the pen down, in pen coordinates (y grows upwards) and seconds. Both sources, the
IAM-OnDB reader and the Hershey synthesiser, produce `InkLine`s; `line_features` turns one
into the network's input sequence.

Features per point (4, as in the paper: pen movement, a pen-up bit and time), computed on
the line after subsampling (every `subsample`-th point kept; the paper keeps every second):
  dx, dy  the move from the previous kept point (0 at the first point); across a pen lift
          this is the move made in the air, so no position is lost;
  time    the fourth input, one of (`fourth`):
          stroke_time  seconds since the beginning of the current stroke (the paper's);
          time         seconds since the previous kept point (0 at the first point);
          x            the horizontal position relative to the line's first point;
  pen_up  1 at a point after which the pen is lifted before the next kept point (the last
          point of a stroke without subsampling), and at the line's last point.
`fourth="time", subsample=1` are the features of earlier Odyssey versions.
The Task standardises every feature with training-set statistics.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FOURTH_FEATURES = {"stroke_time": "stroke_t", "time": "dt", "x": "x"}  # option -> name


@dataclass
class InkLine:
    """One handwritten text line: its strokes, transcription and writer."""

    id: str
    writer: str
    text: str
    strokes: list[np.ndarray]

    @property
    def points(self) -> int:
        return int(sum(len(s) for s in self.strokes))


def feature_names(fourth: str = "stroke_time") -> tuple[str, ...]:
    """Names of the four input features for the given choice of the fourth one."""
    check_fourth(fourth)
    return ("dx", "dy", FOURTH_FEATURES[fourth], "pen_up")


def check_fourth(fourth: str) -> None:
    if fourth not in FOURTH_FEATURES:
        raise ValueError(f"handwriting feature {fourth!r} unknown; expected one of "
                         f"{', '.join(FOURTH_FEATURES)}")


def check_subsample(subsample: int) -> int:
    """`subsample` as an int >= 1 (keep every subsample-th point), else a ValueError."""
    if isinstance(subsample, bool) or not isinstance(subsample, int) or subsample < 1:
        raise ValueError(f"handwriting subsample must be an integer >= 1 (2: keep every "
                         f"second point, as the paper; 1: keep all), got {subsample!r}")
    return subsample


def line_features(strokes: list[np.ndarray], fourth: str = "stroke_time",
                  subsample: int = 2) -> np.ndarray:
    """(T, 4) float32 features of a line's strokes: dx, dy, time feature, pen_up.

    T = ceil(points / subsample): points 0, subsample, 2 subsample, ... of the whole line.
    """
    check_fourth(fourth)
    check_subsample(subsample)
    strokes = [np.asarray(s, np.float64) for s in strokes if len(s)]
    lengths = [len(s) for s in strokes]
    pts = np.concatenate(strokes, axis=0)
    stroke = np.repeat(np.arange(len(strokes)), lengths)  # stroke index of each point
    start = np.repeat([s[0, 2] for s in strokes], lengths)  # its stroke's first time stamp
    keep = np.arange(0, len(pts), subsample)
    pts, stroke, start = pts[keep], stroke[keep], start[keep]
    out = np.zeros((len(pts), 4), np.float64)
    out[1:, 0:2] = np.diff(pts[:, 0:2], axis=0)
    if fourth == "stroke_time":
        out[:, 2] = pts[:, 2] - start
    elif fourth == "time":
        out[1:, 2] = np.diff(pts[:, 2])
    else:
        out[:, 2] = pts[:, 0] - pts[0, 0]
    out[:-1, 3] = stroke[1:] != stroke[:-1]  # the pen lifts before the next kept point
    out[-1, 3] = 1.0
    return out.astype(np.float32)


def strokes_from_features(features: np.ndarray) -> list[np.ndarray]:
    """Pen positions (x, y) per stroke rebuilt from raw dx, dy, ., pen_up features."""
    xy = np.cumsum(np.asarray(features[:, 0:2], np.float64), axis=0)
    ends = np.flatnonzero(features[:, 3] > 0.5) + 1
    pieces = np.split(xy, ends)
    return [p for p in pieces if len(p)]
