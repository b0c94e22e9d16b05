"""Synthetic online handwriting: text lines drawn as pen trajectories with Hershey fonts.

A stand-in for IAM-OnDB that builds offline. Glyphs are the single-stroke Latin fonts of
the PyPI package `Hershey-Fonts` (MIT): `futural` (sans), `scripts` (script) and `cursive`
(joined script). A "writer" is one font plus a style (slant, width, size, letter and word
spacing, how readily letters are joined, pen speed, tremor, baseline drift, pauses) and
their own version of every glyph (a random affine change and a smooth warp); each line adds
its own rotation, scale, drift and speed, and each letter a small warp of its own.
`variation` scales the deformations, tremor, drift, rotation and size noise (1: default,
2: a harder corpus). The pen path is then sampled in time at a fixed rate with a speed that
drops in curves (the two-thirds power law of handwriting, v ~ curvature^(-1/3)), so points
crowd where the pen is slow, as a tablet records them. Pen-up moves between strokes and
letters appear as jumps with their air time.

Units: positions in cap heights (base line to cap line of the font = 1), y upwards; time in
seconds of a device sampling at `SAMPLE_RATE`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import cache, lru_cache

import numpy as np

from .ink import InkLine
from .text import CHARSET, LineText

FONTS = ("futural", "scripts", "cursive")
#: changes whenever the synthesiser's output changes, so that old caches are not reused
GENERATOR_VERSION = 2
SAMPLE_RATE = 100.0  # points per second of pen-down time
STEP = 0.02  # arc-length step (cap heights) of the densified path before time sampling


@cache
def font_glyphs(name: str) -> dict[str, tuple[tuple[np.ndarray, ...], float]]:
    """char -> (strokes (n, 2) in cap heights with x from 0 and y up from the base line, width)."""
    from HersheyFonts import HersheyFonts

    font = HersheyFonts()
    try:
        font.load_default_font(name)
    except ValueError as e:
        raise ValueError(f"hershey.fonts: unknown Hershey font {name!r}; single-stroke Latin "
                         f"fonts are {', '.join(FONTS)}") from e
    opts = font.render_options
    cap = float(opts["base_line"] - opts["cap_line"])
    glyphs = font.all_glyphs
    out = {}
    for ch in CHARSET:
        if ch not in glyphs:
            raise ValueError(f"Hershey font {name!r} has no glyph for {ch!r}")
        g = glyphs[ch]
        strokes = tuple((np.array(s, np.float64) - (g.left_offset, opts["base_line"]))
                        * (1.0, -1.0) / cap for s in g.strokes)
        out[ch] = (strokes, g.char_width / cap)
    return out


@dataclass(frozen=True)
class Writer:
    """A synthetic writer: a font and a handwriting style, fixed for all their lines."""

    id: str
    font: str
    slant: float  # shear: x += slant * y
    width: float  # horizontal scale of the glyphs
    size: float  # cap height in output units
    letter_gap: float  # extra space between letters, cap heights
    word_gap: float  # scale of the space glyph's advance
    join: float  # letters of a word closer than this (cap heights) are joined pen-down
    speed: float  # pen speed on straight parts, cap heights per second
    jitter: float  # std of the pen tremor, cap heights
    drift: float  # amplitude of baseline drift, cap heights
    pause: float  # mean pause at a pen lift, seconds
    shape: float  # size of the writer's own deformation of each glyph, cap heights
    seed: int  # seeds the writer's glyph deformations
    variation: float = 1.0  # scale of all random deformations and noise

    def to_dict(self) -> dict:
        return asdict(self)


def sample_writer(writer_id: str, font: str, rng: np.random.Generator, variation: float = 1.0
                  ) -> Writer:
    """A random style for `font`; `variation` scales its noise and deformations."""
    cursive = font != "futural"
    return Writer(
        id=writer_id, font=font,
        slant=float(rng.uniform(-0.1, 0.45)),
        width=float(rng.uniform(0.8, 1.25)),
        size=float(np.exp(rng.normal(0.0, 0.15))),
        letter_gap=float(rng.uniform(-0.04, 0.12)),
        word_gap=float(rng.uniform(0.8, 1.5)),
        join=float(rng.uniform(0.05, 0.6) if cursive else rng.uniform(0.0, 0.3)),
        speed=float(rng.uniform(24.0, 36.0)),
        jitter=float(rng.uniform(0.002, 0.012)) * variation,
        drift=float(rng.uniform(0.0, 0.15)) * variation,
        pause=float(rng.uniform(0.03, 0.15)),
        shape=float(rng.uniform(0.01, 0.04)) * variation,
        seed=int(rng.integers(2**31)),
        variation=variation,
    )


def warp(points: np.ndarray, centres: np.ndarray, amplitudes: np.ndarray, width: float
         ) -> np.ndarray:
    """Move points by a smooth displacement field (Gaussian bumps): shared points stay shared."""
    d2 = ((points[:, None, :] - centres[None, :, :]) ** 2).sum(-1)
    return points + np.exp(-d2 / (2 * width**2)) @ amplitudes


def random_field(rng: np.random.Generator, box_width: float, amplitude: float
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Centres over a glyph's box and 2-D amplitudes of a displacement field."""
    centres = np.column_stack([rng.uniform(0, max(box_width, 0.2), 5), rng.uniform(-0.4, 1.1, 5)])
    return centres, rng.normal(0.0, amplitude, (5, 2))


@lru_cache(maxsize=8192)
def writer_glyph(font: str, seed: int, shape: float, ch: str, variation: float = 1.0
                 ) -> tuple[tuple[np.ndarray, ...], float]:
    """A writer's own version of a glyph: a fixed random affine change and smooth warp."""
    strokes, advance = font_glyphs(font)[ch]
    rng = np.random.default_rng([seed, ord(ch)])
    affine = np.array([[1 + rng.normal(0, 0.08 * variation), rng.normal(0, 0.08 * variation)],
                       [0.0, 1 + rng.normal(0, 0.06 * variation)]])
    centres, amplitudes = random_field(rng, advance, shape)
    out = tuple(warp(s @ affine.T, centres, amplitudes, 0.3) for s in strokes)
    return out, advance * float(affine[0, 0])


def layout(text: str, writer: Writer, rng: np.random.Generator | None = None
           ) -> list[tuple[int, int, np.ndarray]]:
    """Strokes of `text` set on a line: [(character index, word index, (n, 2) points)].

    Each glyph is the writer's own version of it; with `rng`, each instance is also warped
    a little on its own, so no two copies of a letter are the same.
    """
    out = []
    x, word = 0.0, 0
    for k, ch in enumerate(text):
        strokes, advance = writer_glyph(writer.font, writer.seed, writer.shape, ch,
                                        writer.variation)
        if ch == " ":
            x += advance * writer.word_gap * writer.width
            word += 1
            continue
        if rng is not None and strokes:
            centres, amplitudes = random_field(rng, advance, 0.3 * writer.shape)
            strokes = tuple(warp(s, centres, amplitudes, 0.3) for s in strokes)
        for s in strokes:
            out.append((k, word, s * (writer.width, 1.0) + (x, 0.0)))
        x += advance * writer.width + writer.letter_gap
    return out


def join_strokes(strokes: list[tuple[int, int, np.ndarray]], join: float) -> list[np.ndarray]:
    """Merge strokes the pen would not leave: touching ones, and close letters of a word."""
    out: list[np.ndarray] = []
    prev_char = prev_word = -1
    for char, word, s in strokes:
        if out:
            gap = float(np.hypot(*(s[0] - out[-1][-1])))
            same_char = char == prev_char
            if gap < 1e-6 or (not same_char and word == prev_word and gap < join):
                out[-1] = np.concatenate([out[-1], s[1:] if gap < 1e-6 else s])
                prev_char, prev_word = char, word
                continue
        out.append(s)
        prev_char, prev_word = char, word
    return out


def transform(strokes: list[np.ndarray], writer: Writer, rng: np.random.Generator
              ) -> list[np.ndarray]:
    """Slant, rotation, baseline drift and size of one line (writer style + line noise)."""
    angle = np.deg2rad(rng.normal(0.0, 1.5 * writer.variation))
    scale = writer.size * float(np.exp(rng.normal(0.0, 0.05 * writer.variation)))
    wavelength = rng.uniform(4.0, 15.0)
    phase = rng.uniform(0.0, 2 * np.pi)
    drift = writer.drift * rng.uniform(0.3, 1.0)
    c, s_ = np.cos(angle), np.sin(angle)
    out = []
    for s in strokes:
        x = s[:, 0] + writer.slant * s[:, 1]
        y = s[:, 1] + drift * np.sin(2 * np.pi * s[:, 0] / wavelength + phase)
        out.append(scale * np.stack([c * x - s_ * y, s_ * x + c * y], axis=1))
    return out


def sample_in_time(stroke: np.ndarray, speed: float, rate: float = SAMPLE_RATE
                   ) -> tuple[np.ndarray, float]:
    """Points of one stroke sampled every 1/rate s at a curvature-dependent speed; duration."""
    seg = np.hypot(*np.diff(stroke, axis=0).T)
    arc = np.concatenate([[0.0], np.cumsum(seg)])
    total = float(arc[-1])
    if total < STEP:
        return stroke[:1].copy(), 1.0 / rate
    n = max(3, int(np.ceil(total / STEP)) + 1)
    s = np.linspace(0.0, total, n)
    keep = np.concatenate([[True], seg > 0])
    xy = np.stack([np.interp(s, arc[keep], stroke[keep, 0]),
                   np.interp(s, arc[keep], stroke[keep, 1])], axis=1)
    d = np.diff(xy, axis=0)
    heading = np.unwrap(np.arctan2(d[:, 1], d[:, 0]))
    turn = np.abs(np.diff(heading)) / (s[1] - s[0])  # curvature at interior points
    kernel = np.ones(5) / 5.0
    curvature = np.convolve(np.concatenate([[turn[0]], turn, [turn[-1]]]), kernel, "same")
    v = speed / np.cbrt(1.0 + 0.5 * curvature)
    t = np.concatenate([[0.0], np.cumsum((s[1] - s[0]) / (0.5 * (v[1:] + v[:-1])))])
    duration = float(t[-1])
    ts = np.arange(0.0, duration, 1.0 / rate)
    if duration - ts[-1] > 0.25 / rate:
        ts = np.append(ts, duration)
    pts = np.stack([np.interp(ts, t, xy[:, 0]), np.interp(ts, t, xy[:, 1])], axis=1)
    return pts, duration


def draw_line(text: str, writer: Writer, rng: np.random.Generator, line_id: str = ""
              ) -> InkLine:
    """The pen trajectory of `text` written by `writer` (strokes of x, y, t)."""
    placed = layout(text, writer, rng)
    if not placed:
        raise ValueError(f"nothing to draw in line {text!r}")
    strokes = transform(join_strokes(placed, writer.join), writer, rng)
    speed = writer.speed * writer.size * float(np.exp(rng.normal(0.0, 0.1)))
    out = []
    t = 0.0
    for k, s in enumerate(strokes):
        if k:
            air = float(np.hypot(*(s[0] - strokes[k - 1][-1])))
            t += air / (1.5 * speed) + writer.pause * float(rng.lognormal(0.0, 0.5))
        pts, duration = sample_in_time(s, speed * float(np.exp(rng.normal(0.0, 0.08))))
        tremor = rng.normal(0.0, writer.jitter, pts.shape)
        if len(pts) > 2:
            tremor[1:-1] = (tremor[:-2] + 2 * tremor[1:-1] + tremor[2:]) / 2.0
        pts = pts + tremor
        times = t + np.linspace(0.0, duration, len(pts)) if len(pts) > 1 else np.array([t])
        out.append(np.column_stack([pts, times]))
        t += duration
    return InkLine(id=line_id, writer=writer.id, text=text, strokes=out)


def writer_lines(seed: int, split: str, index: int, font: str, n_lines: int,
                 min_chars: int, max_chars: int, word_list: str | None,
                 variation: float = 1.0) -> tuple[Writer, list[InkLine]]:
    """All lines of one writer; seeded by (seed, split, index) alone, so any worker agrees."""
    split_code = {"train": 0, "valid": 1, "test": 2}[split]
    rng = np.random.default_rng([seed, split_code, index])
    writer = sample_writer(f"{split}-{index:03d}", font, rng, variation)
    make_text = LineText(min_chars, max_chars, word_list)
    lines = [draw_line(make_text(rng), writer, rng, f"{writer.id}-{j:02d}")
             for j in range(n_lines)]
    return writer, lines
