"""`odyssey-data show handwriting`: sample lines drawn from their features, with their text."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .ink import strokes_from_features


def pick_samples(manifest: dict, n: int) -> list[tuple[str, int]]:
    """(split, index) of `n` lines, cycling through the splits, each from a new writer."""
    if n < 1:
        raise ValueError(f"show: --n must be at least 1, got {n}")
    picked: list[tuple[str, int]] = []
    seen: set[str] = set()
    cursors = {name: 0 for name in ("train", "valid", "test")}
    while len(picked) < n:
        progressed = False
        for name in ("train", "valid", "test"):
            writers = manifest["splits"][name]["line_writers"]
            k = cursors[name]
            while k < len(writers) and writers[k] in seen:
                k += 1
            if k < len(writers):
                picked.append((name, k))
                seen.add(writers[k])
                cursors[name] = k + 1
                progressed = True
            if len(picked) == n:
                break
        if not progressed:  # fewer writers than n: allow repeats
            seen.clear()
            if all(cursors[s] >= len(manifest["splits"][s]["line_writers"]) for s in cursors):
                break
    return picked


def draw_samples(corpus: dict, manifest: dict, n: int, out: Path) -> Path:
    """A PNG of `n` lines: pen-down strokes, pen-up moves and the transcription of each."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    charset = manifest["charset"]
    picked = pick_samples(manifest, n)
    unit = "cap heights" if manifest.get("synthetic") else "tablet units"
    fig, axes = plt.subplots(len(picked), 1, figsize=(12, 1.55 * len(picked) + 0.9),
                             squeeze=False)
    for ax, (split, k) in zip(axes[:, 0], picked, strict=True):
        inputs, targets, ids = corpus[split]
        x, y = inputs[k], targets[k]
        strokes = strokes_from_features(x)
        for a, b in zip(strokes[:-1], strokes[1:], strict=True):
            ax.plot([a[-1, 0], b[0, 0]], [a[-1, 1], b[0, 1]], color="0.75", lw=0.6,
                    ls=(0, (2, 2)), zorder=1)
        for s in strokes:
            ax.plot(s[:, 0], s[:, 1], color="#1f3b73", lw=1.1, solid_capstyle="round",
                    zorder=2)
        xy = np.concatenate(strokes)
        ax.plot(xy[:, 0], xy[:, 1], ls="none", marker=".", ms=1.2, color="#e07b39",
                alpha=0.6, zorder=3)
        text = "".join(charset[int(c) - 1] for c in y)
        writer = manifest["splits"][split]["line_writers"][k]
        ax.set_title(f"\u201c{text}\u201d", loc="left", fontsize=11, family="DejaVu Sans")
        ax.set_title(f"{split} \u00b7 writer {writer} \u00b7 {ids[k]} \u00b7 {len(x)} points "
                     f"\u00b7 {len(strokes)} strokes", loc="right", fontsize=7.5, color="0.35")
        ax.set_aspect("equal", adjustable="datalim")
        ax.tick_params(labelsize=7)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
    axes[-1, 0].set_xlabel(f"x ({unit})", fontsize=9)
    fig.supylabel(f"y ({unit}, up)", fontsize=9)
    source = ("synthetic Hershey-font lines (a stand-in for IAM-OnDB)"
              if manifest.get("synthetic") else "IAM-OnDB")
    handles = [plt.Line2D([], [], color="#1f3b73", lw=1.2, label="pen down"),
               plt.Line2D([], [], color="#e07b39", ls="none", marker=".",
                          label="recorded points"),
               plt.Line2D([], [], color="0.6", lw=0.8, ls=(0, (2, 2)),
                          label="pen up (move in air)")]
    fig.legend(handles=handles, loc="upper right", ncol=3, fontsize=8, frameon=False)
    fig.suptitle(f"Handwriting corpus: {source}", x=0.01, ha="left", fontsize=11)
    fig.tight_layout(rect=(0.01, 0, 1, 0.97))
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out

