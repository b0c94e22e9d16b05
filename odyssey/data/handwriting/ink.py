"""Pen trajectories ("ink") of text lines and the per-point input features built from them.

A line is a list of strokes; a stroke is the (n, 3) array of x, y, t of the points written
with the pen down, in pen coordinates (y grows upwards) and seconds. Both sources, the
IAM-OnDB reader and the Hershey synthesiser, produce `InkLine`s; `line_features` turns one
into the network's input sequence.

Features per point (4, as in the paper: pen movement, a pen-up bit and time):
  dx, dy  the move from the previous point (0 at the first point); across a pen lift this
          is the move made in the air, so no position is lost;
  dt      seconds since the previous point (0 at the first point), or, with
          `fourth="x"`, the horizontal position relative to the line's first point;
  pen_up  1 at the last point of each stroke (the pen leaves the surface after it).
The Task standardises every feature with training-set statistics.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FEATURES = ("dx", "dy", "dt", "pen_up")
FOURTH_FEATURES = ("time", "x")


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


def feature_names(fourth: str = "time") -> tuple[str, ...]:
    """Names of the four input features for the given choice of the fourth one."""
    check_fourth(fourth)
    return ("dx", "dy", "dt" if fourth == "time" else "x", "pen_up")


def check_fourth(fourth: str) -> None:
    if fourth not in FOURTH_FEATURES:
        raise ValueError(f"handwriting feature {fourth!r} unknown; expected one of "
                         f"{', '.join(FOURTH_FEATURES)}")


def line_features(strokes: list[np.ndarray], fourth: str = "time") -> np.ndarray:
    """(T, 4) float32 features of a line's strokes: dx, dy, dt (or x), pen_up."""
    check_fourth(fourth)
    pts = np.concatenate([np.asarray(s, np.float64) for s in strokes], axis=0)
    out = np.zeros((len(pts), 4), np.float64)
    out[1:, 0:2] = np.diff(pts[:, 0:2], axis=0)
    if fourth == "time":
        out[1:, 2] = np.diff(pts[:, 2])
    else:
        out[:, 2] = pts[:, 0] - pts[0, 0]
    ends = np.cumsum([len(s) for s in strokes]) - 1
    out[ends, 3] = 1.0
    return out.astype(np.float32)


def strokes_from_features(features: np.ndarray) -> list[np.ndarray]:
    """Pen positions (x, y) per stroke rebuilt from raw dx, dy, ., pen_up features."""
    xy = np.cumsum(np.asarray(features[:, 0:2], np.float64), axis=0)
    ends = np.flatnonzero(features[:, 3] > 0.5) + 1
    pieces = np.split(xy, ends)
    return [p for p in pieces if len(p)]
