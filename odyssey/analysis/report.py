"""results/<sweep>/report.md with its figures/ and tables/: the whole analysis of one sweep.

Every statistic that lacks the trials it needs is replaced in the report by a sentence saying
so; nothing here fails on a small sweep or writes a number it did not compute.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from . import figures
from .fanova import FanovaResult
from .findings import Finding, fmt, fmt_count, fmt_p, hyperparameter_findings, variant_findings
from .importance import Skipped, fanova_by_task
from .load import complete, load_sweep, load_sweeps, order_tasks, order_variants, space_of
from .notebook_links import notebook_section
from .stats import best_fraction, variant_tests


@dataclass
class Options:
    """Analysis settings (configs/analyze.yaml mirrors these)."""

    metric: str = "test_metric"
    select_by: str = "valid_metric"
    baseline: str = "V"
    best_fraction: float = 0.1
    alpha: float = 0.05
    correction: str = "holm"
    min_trials: int = 2
    fanova_min_trials: int = 20
    fanova_trees: int = 100
    fanova_seed: int = 0
    fanova_min_samples_leaf: int = 1
    fanova_variants: list[str] | None = None
    grid: int = 100
    top_pairs: int = 3
    little: float = 0.05
    interactions_little: float = 0.10
    progress: bool = True
    formats: tuple[str, ...] = ("png", "pdf")


def md_table(frame: pd.DataFrame) -> str:
    """A pandas table as GitHub markdown (no `tabulate` dependency)."""
    if frame.empty:
        return "_(empty)_"
    head = "| " + " | ".join(str(c) for c in frame.columns) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    body = ["| " + " | ".join(str(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([head, rule, *body])


def _state_counts(frame: pd.DataFrame) -> pd.DataFrame:
    if frame.empty:
        return pd.DataFrame(columns=["task", "variant"])
    counts = frame.groupby(["task", "variant", "state"]).size().unstack("state", fill_value=0)
    # complete trials that never beat the task's trivial baseline (sweep attr `untrained`)
    untrained = frame["untrained"].eq(True) if "untrained" in frame else False
    counts["untrained"] = frame.assign(_u=untrained).groupby(["task", "variant"])["_u"].sum()
    counts = counts.reset_index()
    order = {v: i for i, v in enumerate(order_variants(counts["variant"]))}
    return counts.sort_values(["task", "variant"], key=lambda s: s.map(order)
                              if s.name == "variant" else s).reset_index(drop=True)


def _tests_for_report(tests: pd.DataFrame, task: str, subset: str) -> pd.DataFrame:
    sel = tests[(tests["task"] == task) & (tests["subset"] == subset)]
    return pd.DataFrame({
        "variant": sel["variant"], "n": sel["n"],
        "mean": sel["mean"].map(fmt), "median": sel["median"].map(fmt),
        "std": sel["std"].map(fmt), "min": sel["min"].map(fmt),
        "mean params": sel["mean_parameters"].map(fmt_count),
        "p": sel["p"].map(fmt_p), "p (corrected)": sel["p_adjusted"].map(fmt_p),
        "verdict": sel["verdict"]})


def _rel(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


def write_report(frame: pd.DataFrame, out_dir: str | Path, options: Options | None = None,
                 ) -> Path:
    """Analyse a loaded trial table into out_dir/report.md, figures/ and tables/."""
    opt = options or Options()
    out = Path(out_dir)
    fig_dir, tab_dir = out / "figures", out / "tables"
    fig_dir.mkdir(parents=True, exist_ok=True)
    tab_dir.mkdir(parents=True, exist_ok=True)
    sweep = frame.attrs.get("sweep", out.name)
    labels = frame.attrs.get("metric_labels", {})
    started = time.time()
    lines: list[str] = [f"# Sweep `{sweep}`: analysis", ""]

    # --- the trials -------------------------------------------------------------------------
    frame.drop(columns=[c for c in ("datetime_start", "datetime_complete") if c in frame],
               errors="ignore").to_csv(tab_dir / "trials.csv", index=False)
    counts = _state_counts(frame)
    counts.to_csv(tab_dir / "trial_states.csv", index=False)
    data = complete(frame, opt.metric) if not frame.empty else frame
    tasks = order_tasks(frame["task"].unique()) if not frame.empty else []
    lines += [f"Store: `{frame.attrs.get('storage_url', '?')}`. "
              f"{len(frame)} trials in {frame['study'].nunique() if not frame.empty else 0} "
              f"studies; {len(data)} complete with a finite {opt.metric}. "
              f"Tasks: {', '.join(tasks) or 'none'}.", ""]
    if frame.empty:
        lines += ["**This sweep has no trials yet: nothing to analyse.**", ""]
        path = out / "report.md"
        path.write_text("\n".join(lines))
        return path
    lines += ["## Trials", "", "Trials per task, variant and state "
              "(`tables/trial_states.csv`; every trial in `tables/trials.csv`); *untrained*: "
              "complete trials that never beat the task's trivial baseline:", "",
              md_table(counts), ""]
    failed = frame[frame["state"] == "FAIL"]
    if len(failed):
        reasons = failed["fail_reason"].fillna("(no reason recorded)").astype(str)
        if failed["fail_kind"].notna().any():
            kinds = failed["fail_kind"].fillna("unknown").value_counts()
            lines += ["Failed trials by kind: " + ", ".join(f"{k} {n}" for k, n in kinds.items())
                      + " (`claim_lost` and `stale` mark trials never trained to the end).", ""]
        top = reasons.str.slice(0, 80).value_counts().head(5)
        lines += [f"{len(failed)} trials failed; most common reasons:", ""]
        lines += [f"- {n} × {r}" for r, n in top.items()] + [""]

    # --- variants against V -----------------------------------------------------------------
    tests = variant_tests(data, metric=opt.metric, select_by=opt.select_by,
                          baseline=opt.baseline, fraction=opt.best_fraction, alpha=opt.alpha,
                          correction=opt.correction, min_trials=opt.min_trials)
    tests.to_csv(tab_dir / "variant_tests.csv", index=False)
    best = best_fraction(data, opt.best_fraction, opt.select_by)
    pct = f"{100 * opt.best_fraction:g} %"
    variant_lines = [
        "## Variants against " + opt.baseline, "",
        f"Welch's t-test of each variant's {opt.metric} against {opt.baseline}'s, per task, on "
        f"all complete trials and on the best {pct} of each variant by {opt.select_by} "
        f"(ceil({opt.best_fraction:g} n) trials). P-values are corrected with "
        f"{'Holm' if opt.correction == 'holm' else 'Bonferroni'}'s method over the variants "
        f"tested in the same task and subset; a verdict is significant at α = {opt.alpha}. "
        f"A group needs at least {opt.min_trials} trials to be tested. Table: "
        "`tables/variant_tests.csv`.", ""]
    for task in tasks:
        label = labels.get(task, opt.metric)
        fig = figures.variant_boxes({"all": data, "best": best}, tests, task,
                                    metric=opt.metric, metric_label=label,
                                    fraction=opt.best_fraction)
        png = figures.save(fig, fig_dir, f"variants_{task}", opt.formats)
        variant_lines += [f"### {task}", "", f"![{task} variants]({_rel(png, out)})", ""]
        if not (data["task"] == task).any():
            variant_lines += ["No complete trials for this task.", ""]
            continue
        for subset, title in (("all", "All trials"), ("best", f"Best {pct}")):
            variant_lines += [f"{title} ({label}, lower is better):", "",
                              md_table(_tests_for_report(tests, task, subset)), ""]

    # --- hyperparameters ----------------------------------------------------------------------
    space = space_of(frame)
    results = fanova_by_task(data, metric=opt.metric, min_trials=opt.fanova_min_trials,
                             n_trees=opt.fanova_trees, seed=opt.fanova_seed,
                             min_samples_leaf=opt.fanova_min_samples_leaf,
                             variants=opt.fanova_variants, progress=opt.progress, tasks=tasks)
    done = {t: r for t, r in results.items() if isinstance(r, FanovaResult)}
    pooled = ("all variants pooled (what distinguishes the variants is then variance the "
              "forest cannot explain; `fanova.variants=[V]` analyses one)"
              if not opt.fanova_variants else "variants " + ", ".join(opt.fanova_variants))
    hp_lines = [
        "## Hyperparameters (fANOVA)", "",
        f"A random forest of {opt.fanova_trees} trees is fitted per task to (hyperparameters in "
        f"their search scale -> {opt.metric}), {pooled}; its variance over the search box is "
        "split exactly, per tree, into main effects, pairwise interactions and the rest "
        "(higher order). Numbers are mean ± std over trees. Search space: "
        + ", ".join(f"{hp.name} in [{hp.low:g}, {hp.high:g}]{' (log)' if hp.log else ''}"
                    for hp in space) + ".", ""]
    fractions = []
    for task, res in results.items():
        if isinstance(res, FanovaResult):
            f = res.fractions()
            f.insert(0, "task", task)
            fractions.append(f)
    if fractions:
        pd.concat(fractions).to_csv(tab_dir / "fanova_fractions.csv", index=False)
    if done:
        png = figures.save(figures.variance_fractions(done), fig_dir, "variance_fractions",
                           opt.formats)
        hp_lines += ["Fractions of variance (`tables/fanova_fractions.csv`):", "",
                     f"![variance fractions]({_rel(png, out)})", ""]
    marg_tables = []
    for task, res in results.items():
        hp_lines += [f"### {task}", ""]
        if isinstance(res, Skipped):
            hp_lines += [f"Not computed: {res.reason}.", ""]
            continue
        label = labels.get(task, opt.metric)
        for hp in res.space:
            m = res.marginal(hp.name, opt.grid)
            m.insert(0, "hyperparameter", hp.name)
            m.insert(0, "task", task)
            marg_tables.append(m)
        png = figures.save(figures.marginals(res, metric_label=label,
                                             title=f"{task}: predicted marginals "
                                                   f"({res.n_samples} trials)"),
                           fig_dir, f"marginals_{task}", opt.formats)
        heat = figures.save(figures.interaction_maps(res, top=opt.top_pairs, metric_label=label,
                                                     title=f"{task}: strongest interactions"),
                            fig_dir, f"interactions_{task}", opt.formats)
        table = res.fractions()
        table["fraction"] = [f"{100 * m:.1f} ± {100 * s:.1f} %"
                             for m, s in zip(table["mean"], table["std"], strict=True)]
        table = table.sort_values(["kind", "mean"], ascending=[True, False],
                                  key=lambda s: s.map({"main": 0, "pair": 1, "rest": 2})
                                  if s.name == "kind" else s)
        hp_lines += [f"{res.n_samples} trials. Predicted marginals (line: mean over trees, band: "
                     "± one standard deviation across trees):", "",
                     f"![{task} marginals]({_rel(png, out)})", "",
                     f"![{task} interactions]({_rel(heat, out)})", "",
                     md_table(table[["term", "kind", "fraction"]]), ""]
    if marg_tables:
        pd.concat(marg_tables).to_csv(tab_dir / "fanova_marginals.csv", index=False)

    # --- learning rate per variant -------------------------------------------------------------
    lr_lines = ["## Learning rate against the metric, per variant", ""]
    if "learning_rate" in data.columns:
        for task in tasks:
            if not (data["task"] == task).any():
                continue
            png = figures.save(figures.learning_rate_scatter(
                data, task, metric=opt.metric, metric_label=labels.get(task, opt.metric)),
                fig_dir, f"learning_rate_{task}", opt.formats)
            lr_lines += [f"![{task} learning rate]({_rel(png, out)})", ""]

    # --- findings ------------------------------------------------------------------------------
    found: list[Finding] = variant_findings(tests, opt.baseline) + hyperparameter_findings(
        results, little=opt.little, interactions_little=opt.interactions_little)
    pd.DataFrame([f.__dict__ for f in found]).assign(
        evidence=lambda d: d["evidence"].str.replace("<br>", " | ")
    ).to_csv(tab_dir / "findings.csv", index=False)
    finding_lines = [
        "## The paper's findings in this sweep", "",
        "Each finding of Greff et al. (DESIGN §5), judged per task: *agrees* (every task "
        "where it could be tested), *partly* (some tasks), *disagrees* (none), *inconclusive* "
        "(the effect is within its spread across trees), *not testable* (too few trials). "
        "Variant claims use all trials for the verdict and show the best "
        f"{pct} too (means of {opt.metric}, corrected p-values).", "",
        md_table(pd.DataFrame({"finding": [f.claim for f in found],
                               "this sweep": [f"**{f.verdict}**" for f in found],
                               "evidence": [f.evidence for f in found]})), ""]

    lines += finding_lines + variant_lines + hp_lines + lr_lines
    lines += notebook_section(out)  # links results/<sweep>/notebooks/*.html when rendered
    lines += [f"_Written by odyssey-analyze in {time.time() - started:.0f} s._", ""]
    path = out / "report.md"
    path.write_text("\n".join(lines))
    return path


def analyze(sweep_name: str | Sequence[str], results_dir: str | Path = "results",
            url: str | None = None, options: Options | None = None,
            out_dir: str | Path | None = None) -> Path:
    """Load a sweep (or several, e.g. one per task) and write the report; returns its path.

    The report goes to results/<sweep>/, or for several sweeps to results/<a>+<b>+.../,
    unless `out_dir` says otherwise.
    """
    if isinstance(sweep_name, str):
        frame = load_sweep(sweep_name, results_dir, url=url)
    else:
        if url is not None:
            raise ValueError("storage_url can only be given for a single sweep")
        frame = load_sweeps(sweep_name, results_dir)
    target = Path(out_dir) if out_dir is not None else Path(results_dir) / frame.attrs["sweep"]
    return write_report(frame, target, options)


__all__ = ["Options", "analyze", "write_report", "md_table"]
