"""The paper's figures, drawn on matplotlib `Figure` objects (no pyplot state, any backend).

Each function returns the Figure; `save` writes it as PNG and PDF. Notebooks display the returned
figures directly; the report saves them under results/<sweep>/figures/.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib import colors, ticker
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from .fanova import FanovaResult
from .load import order_variants, space_of
from .stats import BASELINE, BETTER, SAME, WORSE

WORSE_COLOR = "#c0392b"
BETTER_COLOR = "#1e8449"
PLAIN_COLOR = "#2e86c1"
PARAM_COLOR = "#d5d8dc"
UNTESTED_COLOR = "#fdfefe"
SUBSET_TITLES = {"all": "all trials", "best": "best {pct:g} % by validation score"}


def save(fig: Figure, folder: str | Path, stem: str,
         formats: Sequence[str] = ("png", "pdf")) -> Path:
    """Write `fig` as folder/stem.<format> (PNG at 150 dpi); returns the first file written."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{stem}.{fmt}" for fmt in formats]
    if not paths:
        raise ValueError("save: no figure formats given (expected e.g. png, pdf)")
    for path in paths:
        fig.savefig(path, dpi=150)
    return paths[0]


def log_ticks(axis, low: float, high: float) -> None:
    """Readable ticks on a log axis: 1-2-5 steps in plain numbers when the range is narrow."""
    if high / low <= 1000:
        axis.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
        axis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        axis.set_minor_formatter(ticker.NullFormatter())


LOG_SPAN = 4.0  # a value axis whose bulk spans more than this factor is drawn in log scale


def log_worthy(low: float, high: float, span: float = LOG_SPAN) -> bool:
    """Whether positive values from `low` to `high` span more than `span` times (log axis)."""
    return bool(np.isfinite(low) and np.isfinite(high) and low > 0 and high / low > span)


def shift(y: float, frac: float, low: float, high: float, log: bool) -> float:
    """y moved by `frac` of the axis range [low, high], in the axis's own (log or linear) scale."""
    if log:
        return float(np.exp(np.log(y) + frac * np.log(high / low)))
    return float(y + frac * ((high - low) or 1.0))


def value_axis(ax, low: float, high: float, *, margin: float = 0.03, headroom: float = 0.08
               ) -> bool:
    """Y range [low, high] plus margins, in log scale when it spans > LOG_SPAN; True if log."""
    log = log_worthy(low, high)
    if log:
        ax.set_yscale("log")
        log_ticks(ax.yaxis, low, high)
        ax.yaxis.set_minor_formatter(ticker.NullFormatter())
    ax.set_ylim(shift(low, -margin, low, high, log), shift(high, headroom, low, high, log))
    return log


def bulk_top(values: np.ndarray, iqr: float = 3.0, whole: float = 10.0) -> float:
    """Upper axis limit from the bulk: min(max, Q3 + iqr * IQR) (Tukey's far-out fence).

    Positive values within a factor `whole` of each other are all shown (the axis is then in
    log scale where they span more than LOG_SPAN): only values far beyond are cut off.
    """
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return 1.0
    if values.min() > 0 and values.max() <= whole * values.min():
        return float(values.max())
    q1, q3 = np.percentile(values, [25, 75])
    return float(min(values.max(), q3 + iqr * (q3 - q1))) if q3 > q1 else float(values.max())


def mark_off_scale(ax, x: float, n: int, top: float, color: str = "black") -> None:
    """A triangle at the top edge at x with the number of values above the axis."""
    if n:
        ax.plot([x], [top], marker="^", color=color, markersize=7, clip_on=False, zorder=5)
        ax.annotate(f"{n} off scale", (x, top), xytext=(10, -3), textcoords="offset points",
                    ha="left", va="top", fontsize="x-small", color=color,
                    annotation_clip=False)


def _box_stats(values: np.ndarray, label: str, top: float = np.inf) -> dict:
    q1, med, q3 = np.percentile(values, [25, 50, 75])
    return {"label": label, "med": min(med, top), "q1": min(q1, top), "q3": min(q3, top),
            "whislo": values.min(), "whishi": min(values.max(), top),
            "mean": min(values.mean(), top), "fliers": []}


def _verdict_boxes(ax, frame: pd.DataFrame, variants: list[str], verdicts: dict[str, str],
                   metric: str, width: float = 0.5) -> bool:
    """One box per variant of `metric` on `ax`, coloured and starred by its verdict against V.

    Box 25-75 %, whiskers the full range, white dot the mean, line the median; the y range
    comes from the bulk (`bulk_top`), values above it counted in a mark at the top edge.
    Returns whether a variant without a verdict (not tested) was drawn.
    """
    limit = bulk_top(frame[metric].to_numpy(float))
    stats, above = [], []
    for v in variants:
        values = frame.loc[frame["variant"] == v, metric].to_numpy(float)
        stats.append(_box_stats(values, v, limit))
        above.append(int((values > limit).sum()))
    if not stats:
        return False
    pos = np.arange(len(variants))
    boxes = ax.bxp(stats, positions=pos, widths=width, showmeans=True, patch_artist=True,
                   meanprops={"marker": "o", "markerfacecolor": "white",
                              "markeredgecolor": "black", "markersize": 5},
                   medianprops={"color": "black", "linewidth": 1.5})
    untested = False
    for patch, v in zip(boxes["boxes"], variants, strict=True):
        color = {WORSE: WORSE_COLOR, BETTER: BETTER_COLOR, SAME: PLAIN_COLOR,
                 BASELINE: PLAIN_COLOR}.get(verdicts.get(v, ""), UNTESTED_COLOR)
        untested |= color == UNTESTED_COLOR
        patch.set_facecolor(colors.to_rgba(color, 0.55))
        patch.set_edgecolor("black")
    top = max(s["whishi"] for s in stats)
    low = min(s["whislo"] for s in stats)
    log = value_axis(ax, low, top, headroom=0.12)
    for i, v in enumerate(variants):
        if verdicts.get(v) in (WORSE, BETTER):
            ax.text(i, shift(stats[i]["whishi"], 0.02, low, top, log), "*",
                    ha="center", va="bottom", fontsize=14, fontweight="bold",
                    color=WORSE_COLOR if verdicts[v] == WORSE else BETTER_COLOR)
    for i, n in enumerate(above):
        mark_off_scale(ax, i, n, shift(top, 0.12, low, top, log))
    return untested


def variant_boxes(data: dict[str, pd.DataFrame], tests: pd.DataFrame, task: str, *,
                  metric: str = "test_metric", metric_label: str = "test metric",
                  fraction: float = 0.1) -> Figure:
    """Box plots of one task: a panel for all trials and one for the best `fraction`.

    `data` maps subset ("all", "best") to complete trials. Box 25-75 %, whiskers the full range,
    white dot the mean, line the median; variants significantly worse / better than V are red /
    green with a star; grey bars behind (right axis) are the mean parameter count. The y range
    comes from the bulk (`bulk_top`); values above it are counted in a mark at the top edge.
    """
    subsets = [s for s in ("all", "best") if s in data]
    untested_shown = False
    fig = Figure(figsize=(10, 3.6 * len(subsets)), layout="constrained")
    axes = fig.subplots(len(subsets), 1, squeeze=False)[:, 0]
    for ax, subset in zip(axes, subsets, strict=True):
        frame = data[subset]
        frame = frame[frame["task"] == task]
        variants = order_variants(frame["variant"])
        verdicts = {}
        if not tests.empty:
            sel = tests[(tests["task"] == task) & (tests["subset"] == subset)]
            verdicts = dict(zip(sel["variant"], sel["verdict"], strict=True))
        params = [frame.loc[frame["variant"] == v, "parameter_count"].mean()
                  if "parameter_count" in frame else np.nan for v in variants]
        pos = np.arange(len(variants))
        twin = ax.twinx()
        if np.isfinite(params).any():
            twin.bar(pos, params, width=0.8, color=PARAM_COLOR, zorder=0)
            twin.set_ylabel("mean parameter count", color="#7b7d7d")
            twin.tick_params(axis="y", colors="#7b7d7d")
            twin.yaxis.set_major_formatter(ticker.EngFormatter())
        else:
            twin.set_yticks([])
        ax.set_zorder(twin.get_zorder() + 1)
        ax.patch.set_visible(False)
        untested_shown |= _verdict_boxes(ax, frame, variants, verdicts, metric)
        ax.set_xticks(pos, variants)
        ax.set_ylabel(metric_label + (" (log scale)" if ax.get_yscale() == "log" else ""))
        title = SUBSET_TITLES[subset].format(pct=100 * fraction)
        ns = frame.groupby("variant").size()
        if len(ns):
            title += (f" (n = {ns.min()} per variant" if ns.min() == ns.max()
                      else f" (n = {ns.min()}-{ns.max()} per variant") + ")"
        ax.set_title(f"{task}: {title}", loc="left")
        ax.grid(axis="y", alpha=0.3)
    handles = [Patch(facecolor=colors.to_rgba(WORSE_COLOR, 0.55), edgecolor="black",
                     label="significantly worse than V"),
               Patch(facecolor=colors.to_rgba(BETTER_COLOR, 0.55), edgecolor="black",
                     label="significantly better than V"),
               Patch(facecolor=colors.to_rgba(PLAIN_COLOR, 0.55), edgecolor="black",
                     label="no significant difference / V")]
    if untested_shown:
        handles.append(Patch(facecolor=UNTESTED_COLOR, edgecolor="black",
                             label="not tested (too few trials)"))
    handles.append(Patch(facecolor=PARAM_COLOR, label="mean parameter count (right axis)"))
    fig.legend(handles=handles, loc="outside lower center", ncols=3 if len(handles) > 4 else 4,
               frameon=False,
               fontsize="small")
    return fig


def paper_boxes(best: pd.DataFrame, tests: pd.DataFrame, tasks: Sequence[str], *,
                paper: dict[str, dict[str, str]], metric: str = "test_metric",
                labels: dict[str, str] | None = None, fraction: float = 0.1) -> Figure:
    """The paper's Fig. 3 for this sweep: one panel per task, the best `fraction` per variant.

    Boxes as in `variant_boxes` (25-75 %, whiskers the full range, white dot the mean, colour
    and star the verdict against V). Under each variant's name, the paper's own best-10 %
    mean for that task (`paper`: task -> variant -> text, "*" significantly different from V),
    as text: its corpora differ from ours, so the numbers are compared, not drawn on our axis.
    """
    labels = labels or {}
    tasks = [t for t in tasks if (best["task"] == t).any()]
    fig = Figure(figsize=(max(5.0, 4.6 * len(tasks)), 4.6), layout="constrained")
    axes = fig.subplots(1, max(1, len(tasks)), squeeze=False)[0]
    for ax, task in zip(axes, tasks, strict=False):
        frame = best[best["task"] == task]
        variants = order_variants(frame["variant"])
        sel = tests[(tests["task"] == task) & (tests["subset"] == "best")]
        verdicts = dict(zip(sel["variant"], sel["verdict"], strict=True))
        _verdict_boxes(ax, frame, variants, verdicts, metric, width=0.55)
        pos = np.arange(len(variants))
        log = ax.get_yscale() == "log"
        ours = paper.get(task, {})
        ax.set_xticks(pos, [f"{v}\n{ours.get(v, '-')}" for v in variants], fontsize="x-small")
        ax.set_ylabel(labels.get(task, metric) + (" (log scale)" if log else ""))
        n = frame.groupby("variant").size()
        ax.set_title(f"{task}: best {100 * fraction:g} % (n = {n.min()}"
                     + (f"-{n.max()}" if n.max() != n.min() else "") + " per variant)",
                     loc="left", fontsize="medium")
        ax.grid(axis="y", alpha=0.3)
    handles = [Patch(facecolor=colors.to_rgba(WORSE_COLOR, 0.55), edgecolor="black",
                     label="significantly worse than V (*)"),
               Patch(facecolor=colors.to_rgba(BETTER_COLOR, 0.55), edgecolor="black",
                     label="significantly better than V"),
               Patch(facecolor=colors.to_rgba(PLAIN_COLOR, 0.55), edgecolor="black",
                     label="no significant difference / V"),
               Patch(facecolor=UNTESTED_COLOR, edgecolor="black", label="not tested"),
               Patch(facecolor="none", edgecolor="none",
                     label="under each name: the paper's best-10 % mean (* differs from V)")]
    fig.legend(handles=handles, loc="outside lower center", ncols=3, frameon=False,
               fontsize="small")
    return fig


def marginals(result: FanovaResult, *, metric_label: str = "metric", title: str = "",
              size: int = 100) -> Figure:
    """Predicted marginal of each hyperparameter with a one-standard-deviation band over trees."""
    names = result.names
    fig = Figure(figsize=(3.4 * len(names), 3.3), layout="constrained")
    axes = fig.subplots(1, len(names), sharey=True, squeeze=False)[0]
    main = result.main_effects()
    curves = [result.marginal(hp.name, size) for hp in result.space]
    for ax, hp, m in zip(axes, result.space, curves, strict=True):
        ax.plot(m["value"], m["mean"], color=PLAIN_COLOR, linewidth=2)
        ax.fill_between(m["value"], m["mean"] - m["std"], m["mean"] + m["std"],
                        color=PLAIN_COLOR, alpha=0.25, linewidth=0, label="±1 std over trees")
        if hp.log:
            ax.set_xscale("log")
            log_ticks(ax.xaxis, hp.low, hp.high)
        ax.set_xlim(hp.low, hp.high)
        ax.set_xlabel(hp.display + (" (log scale)" if hp.log else ""))
        frac = main.loc[hp.name]
        ax.set_title(f"main effect {100 * frac['mean']:.1f} ± {100 * frac['std']:.1f} %",
                     fontsize="medium")
        ax.grid(alpha=0.3)
    # the range of the curves themselves: a band that one odd tree widens is clipped
    low = min(float(m["mean"].min()) for m in curves)
    high = max(float(m["mean"].max()) for m in curves)
    capped = result.cap is not None and result.n_capped > 0
    if capped:  # the capped trials' level: a plateau there is "at least this bad"
        high = max(high, float(result.cap))
        for ax in axes:
            ax.axhline(result.cap, color="#7b7d7d", linestyle=":", linewidth=1.2,
                       label=(f"cap: {result.n_capped} of {result.n_samples} trials above "
                              f"set to {result.cap:.4g}"))
    log = value_axis(axes[0], low, high, margin=0.12, headroom=0.12)
    axes[0].set_ylabel(f"predicted {metric_label}" + (" (log scale)" if log else ""))
    axes[0].legend(loc="best", fontsize="small")
    if title:
        fig.suptitle(title)
    return fig


def _pair_colors(n: int) -> list:
    from matplotlib import colormaps
    return [colormaps["Pastel2"](i % 8) for i in range(n)]


def variance_fractions(results: dict[str, FanovaResult]) -> Figure:
    """Stacked bars per task: each main effect, each pairwise interaction, and the rest."""
    from matplotlib import colormaps
    tasks = list(results)
    names = results[tasks[0]].names if tasks else []
    pair_terms = [f"{a} x {b}" for a, b in ((names[i], names[j]) for i, j in
                                           results[tasks[0]].pairs)] if tasks else []
    main_cols = [colormaps["tab10"](i) for i in range(len(names))]
    pair_cols = _pair_colors(len(pair_terms))
    fig = Figure(figsize=(11, 1.2 + 0.9 * max(1, len(tasks))), layout="constrained")
    ax = fig.subplots()
    for row, task in enumerate(tasks):
        table = results[task].fractions().set_index("term")
        left = 0.0
        segments = ([(n, main_cols[i], None) for i, n in enumerate(names)]
                    + [(p, pair_cols[i], "//") for i, p in enumerate(pair_terms)]
                    + [("higher order", "#bfc9ca", "..")])
        for term, color, hatch in segments:
            width = max(0.0, float(table.loc[term, "mean"])) if term in table.index else 0.0
            ax.barh(row, width, left=left, color=color, hatch=hatch, edgecolor="white",
                    height=0.6)
            if width >= 0.04:
                ax.text(left + width / 2, row, f"{100 * width:.0f}%", ha="center",
                        va="center", fontsize="small")
            left += width
    ax.set_yticks(range(len(tasks)), [f"{t}\n(all variants\npooled)" if results[t].fallback
                                      else t for t in tasks])
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.xaxis.set_major_formatter(ticker.PercentFormatter(1.0))
    ax.set_xlabel("fraction of the variance of the predicted test metric (mean over trees)")
    handles = ([Patch(facecolor=c, label=f"{n} (main)") for n, c in zip(names, main_cols,
                                                                      strict=True)]
               + [Patch(facecolor=c, hatch="//", edgecolor="white", label=p)
                  for p, c in zip(pair_terms, pair_cols, strict=True)]
               + [Patch(facecolor="#bfc9ca", hatch="..", edgecolor="white",
                        label="higher order (rest)")])
    fig.legend(handles=handles, loc="outside lower center", ncols=4, frameon=False,
               fontsize="small")
    return fig


def variant_importance(shares: pd.DataFrame, task: str) -> Figure:
    """Heat map for one task: variant (rows) x hyperparameter (columns), main-effect share.

    `shares` holds columns task, variant, hyperparameter, mean (fraction of variance).
    """
    sel = shares[shares["task"] == task]
    table = sel.pivot(index="variant", columns="hyperparameter", values="mean")
    table = table.reindex(order_variants(table.index))
    fig = Figure(figsize=(1.6 + 1.6 * table.shape[1], 1.0 + 0.45 * table.shape[0]),
                 layout="constrained")
    ax = fig.subplots()
    img = ax.imshow(table.to_numpy(float), cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
    for (i, j), v in np.ndenumerate(table.to_numpy(float)):
        ax.text(j, i, f"{100 * v:.0f}%", ha="center", va="center",
                color="black" if v > 0.6 else "white", fontsize="small")
    ax.set_xticks(range(table.shape[1]), table.columns)
    ax.set_yticks(range(table.shape[0]), table.index)
    ax.set_title(f"{task}: main-effect share of each hyperparameter, per variant")
    fig.colorbar(img, ax=ax, format=ticker.PercentFormatter(1.0), label="fraction of variance")
    return fig


def interaction_maps(result: FanovaResult, *, top: int = 3, metric_label: str = "metric",
                     title: str = "", size: int = 40) -> Figure:
    """Heat maps of the predicted joint marginal of the `top` strongest pairs."""
    pairs = result.interactions().head(top)
    fig = Figure(figsize=(4.3 * max(1, len(pairs)), 3.8), layout="constrained")
    axes = fig.subplots(1, max(1, len(pairs)), squeeze=False)[0]
    spaces = {hp.name: hp for hp in result.space}
    for ax, ((first, second), row) in zip(axes, pairs.iterrows(), strict=False):
        xa, xb, mean, _ = result.pair_marginal(first, second, size)
        mesh = ax.pcolormesh(xb, xa, mean, shading="nearest", cmap="viridis_r")
        for axis, name in (("x", second), ("y", first)):
            hp = spaces[name]
            if hp.log:
                getattr(ax, f"set_{axis}scale")("log")
                log_ticks(getattr(ax, f"{axis}axis"), hp.low, hp.high)
            getattr(ax, f"set_{axis}label")(hp.display)
        ax.set_title(f"interaction {100 * row['mean']:.1f} ± {100 * row['std']:.1f} %",
                     fontsize="medium")
        fig.colorbar(mesh, ax=ax, label=f"predicted {metric_label} (lower is better)")
    if title:
        fig.suptitle(title)
    return fig


def learning_rate_scatter(frame: pd.DataFrame, task: str, *, metric: str = "test_metric",
                          metric_label: str = "metric", variants: Sequence[str] | None = None
                          ) -> Figure:
    """Learning rate against the metric, one panel per variant, colour = hidden size."""
    frame = frame[frame["task"] == task]
    variants = list(variants) if variants is not None else order_variants(frame["variant"])
    ncols = min(4, max(1, len(variants)))
    nrows = int(np.ceil(len(variants) / ncols)) or 1
    fig = Figure(figsize=(3.2 * ncols + 1.0, 2.7 * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, sharex=True, sharey=True, squeeze=False).ravel()
    hs = frame["hidden_size"].astype(float) if "hidden_size" in frame else None
    norm = (colors.LogNorm(vmin=max(hs.min(), 1e-9), vmax=max(hs.max(), hs.min() * 1.01))
            if hs is not None and len(hs) else None)
    points = None
    limit = bulk_top(frame[metric].to_numpy(float)) if len(frame) else 1.0
    finite = frame[metric].to_numpy(float)
    low = float(np.nanmin(finite)) if len(frame) else 0.0
    log = log_worthy(low, limit)
    for ax, v in zip(axes, variants, strict=False):
        part = frame[frame["variant"] == v]
        n_all = len(part)
        off = part[part[metric] > limit]
        part = part[part[metric] <= limit]
        if len(off):  # off-scale trials: at the top edge, at their learning rate, counted
            ax.scatter(off["learning_rate"], np.full(len(off), shift(limit, 0.05, low, limit,
                                                                      log)),
                       s=14, marker="^", color="black", clip_on=False)
        points = ax.scatter(part["learning_rate"], part[metric], s=12,
                            c=part["hidden_size"] if hs is not None else PLAIN_COLOR,
                            norm=norm, cmap="plasma", alpha=0.8, edgecolors="none")
        ax.set_xscale("log")
        ax.set_title(f"{v} (n={n_all}" + (f"; {len(off)} off scale ▲)" if len(off) else ")"),
                     fontsize="medium")
        ax.grid(alpha=0.3)
    lr = {hp.name: hp for hp in space_of(frame)}.get("learning_rate")
    if lr is not None and lr.log:  # the whole searched range, shared by all panels
        axes[0].set_xlim(lr.low / 1.5, lr.high * 1.5)
    value_axis(axes[0], low, limit)  # shared by all panels
    for ax in axes[len(variants):]:
        ax.set_visible(False)
    for ax in axes[::ncols]:
        ax.set_ylabel(metric_label + (" (log scale)" if log else ""))
    for ax in axes[max(0, len(variants) - ncols):len(variants)]:
        ax.set_xlabel("learning rate (log scale)")
        ax.xaxis.set_tick_params(labelbottom=True)
    if points is not None and hs is not None:
        bar = fig.colorbar(points, ax=axes.tolist(), label="hidden size (blocks)", shrink=0.8)
        log_ticks(bar.ax.yaxis, norm.vmin, norm.vmax)
    fig.suptitle(f"{task}: learning rate against {metric_label}")
    return fig
