"""results/<sweep>/report.md with its figures/ and tables/: the whole analysis of one sweep.

Every statistic that lacks the trials it needs is replaced in the report by a sentence saying
so; nothing here fails on a small sweep or writes a number it did not compute.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from . import figures
from .fanova import FanovaResult
from .findings import Finding, fmt, fmt_count, fmt_p, hyperparameter_findings, variant_findings
from .importance import Skipped, fanova_by_task, fanova_by_variant
from .load import complete, load_sweep, load_sweeps, order_tasks, order_variants, space_of
from .notebook_links import notebook_section
from .paper import PAPER
from .stats import BETTER, WORSE, best_fraction, variant_tests


@dataclass
class Options:
    """Analysis settings (configs/analyze.yaml mirrors these)."""

    metric: str = "test_metric"
    select_by: str = "valid_metric"
    baseline: str = "V"
    best_fraction: float = 0.1
    alpha: float = 0.05
    correction: str = "bonferroni"
    min_trials: int = 2
    fanova_min_trials: int = 20
    fanova_trees: int = 100
    fanova_seed: int = 0
    fanova_min_samples_leaf: int = 1
    fanova_variants: list[str] | None = field(default_factory=lambda: ["V"])
    fanova_cap_iqr: float | None = 1.5
    fanova_pool_if_too_few: bool = True
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


def _training_time_section(data: pd.DataFrame, opt: Options, tasks: list[str], fig_dir: Path,
                           out: Path) -> list[str]:
    """The paper's Fig. 4 time panel: predicted marginal training seconds per hyperparameter."""
    lines = ["### Training time", "",
             "The same fANOVA on each trial's recorded `train_seconds` (not capped; trials "
             f"of {', '.join(opt.fanova_variants) if opt.fanova_variants else 'all variants'}), "
             "as the paper's Fig. 4 shows beside the metric. Wall-clock seconds depend on the "
             "machine and its load.", ""]
    if "train_seconds" not in data.columns:
        return lines + ["Not computed: the trials record no `train_seconds`.", ""]
    timed = data.assign(train_seconds=pd.to_numeric(data["train_seconds"], errors="coerce"))
    results = fanova_by_task(timed, metric="train_seconds", min_trials=opt.fanova_min_trials,
                             n_trees=opt.fanova_trees, seed=opt.fanova_seed,
                             min_samples_leaf=opt.fanova_min_samples_leaf,
                             variants=opt.fanova_variants, progress=False, tasks=tasks,
                             cap_iqr=None, pool_if_too_few=opt.fanova_pool_if_too_few)
    for task, res in results.items():
        if isinstance(res, Skipped):
            lines += [f"{task}: not computed: {res.reason}.", ""]
            continue
        if res.fallback:
            lines += [f"{task}: **pooled:** {res.fallback}.", ""]
        png = figures.save(figures.marginals(res, metric_label="training seconds",
                                             title=f"{task}: predicted training time "
                                                   f"({res.n_samples} trials"
                                                   + (", all variants pooled)" if res.fallback
                                                      else ")")),
                           fig_dir, f"training_time_{task}", opt.formats)
        lines += [f"![{task} training time]({_rel(png, out)})", ""]
    return lines


def _per_variant_section(data: pd.DataFrame, opt: Options, tasks: list[str], fig_dir: Path,
                         tab_dir: Path, out: Path) -> list[str]:
    """One capped fANOVA per (task, variant): a table and a heat map of main-effect shares."""
    lines = ["### Per variant", "",
             "One forest per (task, variant), same settings and cap; main-effect share of each "
             "hyperparameter (mean ± std over trees). The paper shows V only. Table: "
             "`tables/fanova_by_variant.csv`.", ""]
    per = fanova_by_variant(data, metric=opt.metric, min_trials=opt.fanova_min_trials,
                            n_trees=opt.fanova_trees, seed=opt.fanova_seed,
                            min_samples_leaf=opt.fanova_min_samples_leaf,
                            cap_iqr=opt.fanova_cap_iqr, progress=opt.progress)
    rows = []
    for (task, variant), res in per.items():
        if isinstance(res, Skipped):
            continue
        main = res.main_effects()
        rows += [{"task": task, "variant": variant, "hyperparameter": name, "mean": m,
                  "std": sd, "trials": res.n_samples, "capped": res.n_capped}
                 for name, m, sd in zip(main.index, main["mean"], main["std"], strict=True)]
    skipped = sorted({f"{t}/{v}" for (t, v), r in per.items() if isinstance(r, Skipped)})
    if not rows:
        return lines + [f"Not computed: no (task, variant) has {opt.fanova_min_trials} complete "
                        "trials.", ""]
    shares = pd.DataFrame(rows)
    shares.to_csv(tab_dir / "fanova_by_variant.csv", index=False)
    for task in [t for t in tasks if (shares["task"] == t).any()]:
        png = figures.save(figures.variant_importance(shares, task), fig_dir,
                           f"fanova_by_variant_{task}", opt.formats)
        sel = shares[shares["task"] == task]
        wide = sel.assign(share=[f"{100 * m:.1f} ± {100 * s:.1f} %"
                                 for m, s in zip(sel["mean"], sel["std"], strict=True)]
                          ).pivot(index="variant", columns="hyperparameter", values="share")
        wide = wide.reindex(order_variants(wide.index)).reset_index()
        lines += [f"![{task} per-variant fANOVA]({_rel(png, out)})", "", md_table(wide), ""]
    if skipped:
        lines += [f"Too few trials for a per-variant fANOVA: {', '.join(skipped)}.", ""]
    return lines


def _paper_section(tests: pd.DataFrame, data: pd.DataFrame, results: dict, opt: Options,
                   tasks: list[str], labels: dict) -> list[str]:
    """Per task: the paper's numbers (labelled) beside this sweep's."""
    lines = ["## The paper side by side", "",
             "Columns marked *paper* are Greff et al.'s own numbers (DESIGN §5; best-10 % means "
             "read from its Fig. 3, ± 0.1; * significantly different from V); the others are "
             "this sweep's.", ""]
    for task in tasks:
        ref = PAPER.get(task)
        if ref is None or not (data["task"] == task).any():
            continue
        best = tests[(tests["task"] == task) & (tests["subset"] == "best")].set_index("variant")
        variants = order_variants(set(best.index) | set(ref.best10))
        mark = {WORSE: "*", BETTER: "*"}
        rows = pd.DataFrame({
            "variant": variants,
            f"paper: {ref.dataset} best 10 % ({ref.unit})": [ref.best10.get(v, "-")
                                                              for v in variants],
            f"this sweep: best {100 * opt.best_fraction:g} % mean ({labels.get(task, opt.metric)})":
                [fmt(best.loc[v, "mean"]) + mark.get(best.loc[v, "verdict"], "")
                 if v in best.index else "-" for v in variants]})
        part = data[data["task"] == task]
        top = part.loc[part[opt.select_by].idxmin()] if part[opt.select_by].notna().any() else None
        lines += [f"### {task} (paper: {ref.dataset})", "", f"Note: {ref.corpus_note}.", "",
                  md_table(rows), "",
                  f"Best single result: paper {ref.best_single}; this sweep "
                  + (f"{fmt(top[opt.metric])} ({top['variant']}, best by {opt.select_by})"
                     if top is not None else "n/a") + ".", ""]
        res = results.get(task)
        if isinstance(res, FanovaResult):
            main = res.main_effects()["mean"]
            inter = float(res.pair_per_tree.sum(1).mean()) if res.pairs else float("nan")
            terms = list(ref.shares)
            ours = [f"{100 * main[t]:.1f} %" if t in main.index else "-" for t in terms[:-1]]
            ours.append(f"{100 * inter:.1f} %" if inter == inter else "-")
            lines += [md_table(pd.DataFrame({"fANOVA share": terms,
                                             "paper (V, Fig. 5)": list(ref.shares.values()),
                                             "this sweep" + (" (all variants pooled)"
                                                             if res.fallback else ""): ours})),
                      ""]
    return lines


def _across_tasks_section(tests: pd.DataFrame, best: pd.DataFrame, opt: Options,
                          tasks: list[str], labels: dict, fig_dir: Path, out: Path) -> list[str]:
    """The paper's shape for a multi-task sweep: variants as rows, tasks as columns, Fig. 3."""
    tasks = [t for t in tasks if (best["task"] == t).any()]
    if len(tasks) < 2:
        return []
    pct = f"{100 * opt.best_fraction:g} %"
    table = tests[tests["subset"] == "best"]
    variants = order_variants(set(table["variant"]) | {v for t in tasks if t in PAPER
                                                       for v in PAPER[t].best10})
    mark = {WORSE: "*", BETTER: "*"}
    columns: dict[str, list[str]] = {"variant": variants}
    for task in tasks:
        mine = table[table["task"] == task].set_index("variant")
        columns[f"{task}: this sweep ({labels.get(task, opt.metric)})"] = [
            fmt(mine.loc[v, "mean"]) + mark.get(mine.loc[v, "verdict"], "")
            if v in mine.index else "-" for v in variants]
        ref = PAPER.get(task)
        if ref is not None:
            columns[f"{task}: paper ({ref.dataset}, {ref.unit})"] = [
                ref.best10.get(v, "-") for v in variants]
    paper = {t: PAPER[t].best10 for t in tasks if t in PAPER}
    png = figures.save(figures.paper_boxes(best, tests, tasks, paper=paper, metric=opt.metric,
                                           labels=labels, fraction=opt.best_fraction),
                       fig_dir, "paper_fig3", opt.formats)
    return ["## Across tasks: the paper's table and Fig. 3", "",
            f"Mean {opt.metric} of each variant's best {pct} (by {opt.select_by}) per task, "
            "beside the paper's (DESIGN §5; read from its Fig. 3, ± 0.1). * marks a "
            f"significant difference from {opt.baseline} (Welch, corrected) — ours from this "
            "sweep's tests, the paper's from its own. The paper's corpora differ from the "
            "embedded ones (see each task's note below), so compare orderings and stars, not "
            "absolute values.", "", md_table(pd.DataFrame(columns)), "",
            f"![the paper's Fig. 3 for this sweep]({_rel(png, out)})", ""]


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
    settings = frame.attrs.get("task_settings", {})  # e.g. "missing 30 % per value, fill mean"
    named = [f"{t} ({settings[t]})" if settings.get(t, "complete") != "complete" else t
             for t in tasks]
    lines += [f"Store: `{frame.attrs.get('storage_url', '?')}`. "
              f"{len(frame)} trials in {frame['study'].nunique() if not frame.empty else 0} "
              f"studies; {len(data)} complete with a finite {opt.metric}. "
              f"Tasks: {', '.join(named) or 'none'}.", ""]
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
        f"As in the paper, the verdict compares the best {pct} of each variant by "
        f"{opt.select_by} (ceil({opt.best_fraction:g} n) trials) with {opt.baseline}'s by "
        f"Welch's t-test of {opt.metric}. All complete trials are compared too, beside it and "
        "never deciding, by the Mann-Whitney U rank test (a few diverged trials cannot swamp "
        "a rank test as they swamp a t-test's variances). P-values are corrected with "
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
        for subset, title in (("best", f"Best {pct} (Welch's t-test; decides the findings)"),
                              ("all", "All trials (Mann-Whitney U rank test; shown beside)")):
            variant_lines += [f"{title} ({label}, lower is better):", "",
                              md_table(_tests_for_report(tests, task, subset)), ""]

    # --- hyperparameters ----------------------------------------------------------------------
    space = space_of(frame)
    results = fanova_by_task(data, metric=opt.metric, min_trials=opt.fanova_min_trials,
                             n_trees=opt.fanova_trees, seed=opt.fanova_seed,
                             min_samples_leaf=opt.fanova_min_samples_leaf,
                             variants=opt.fanova_variants, progress=opt.progress, tasks=tasks,
                             cap_iqr=opt.fanova_cap_iqr,
                             pool_if_too_few=opt.fanova_pool_if_too_few)
    done = {t: r for t, r in results.items() if isinstance(r, FanovaResult)}
    pooled = ("all variants pooled (what distinguishes the variants is then variance the "
              "forest cannot explain; `fanova.variants=[V]` analyses one)"
              if not opt.fanova_variants else "variants " + ", ".join(opt.fanova_variants)
              + (" (where they have too few trials, all variants pooled, as said below)"
                 if opt.fanova_pool_if_too_few else ""))
    hp_lines = [
        "## Hyperparameters (fANOVA)", "",
        f"A random forest of {opt.fanova_trees} trees is fitted per task to (hyperparameters in "
        f"their search scale -> {opt.metric}), {pooled}; its variance over the search box is "
        "split exactly, per tree, into main effects, pairwise interactions and the rest "
        "(higher order). Numbers are mean ± std over trees. Search space: "
        + ", ".join(f"{hp.name} in [{hp.low:g}, {hp.high:g}]{' (log)' if hp.log else ''}"
                    for hp in space) + ".", "",
        ("Response cap (diverged trials): before each fit, values above Q3 + "
         f"{opt.fanova_cap_iqr:g} × IQR of that fit's own responses (Tukey's far-out fence) "
         "are set to the fence, so that a few diverged trials cannot own the forest's variance."
         if opt.fanova_cap_iqr is not None
         else "Responses are not capped (`fanova.cap_iqr=null`)."),
        ""]
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
                                                   f"({res.n_samples} trials"
                                                   + (", all variants pooled)" if res.fallback
                                                      else ")")),
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
        if res.fallback:
            hp_lines += [f"**Pooled:** {res.fallback} (`fanova.pool_if_too_few`).", ""]
        if res.cap is not None:
            hp_lines += [f"{res.n_capped} of {res.n_samples} responses capped at "
                         f"{fmt(res.cap)}.", ""]
        hp_lines += [f"{res.n_samples} trials. Predicted marginals (line: mean over trees, band: "
                     "± one standard deviation across trees):", "",
                     f"![{task} marginals]({_rel(png, out)})", "",
                     f"![{task} interactions]({_rel(heat, out)})", "",
                     md_table(table[["term", "kind", "fraction"]]), ""]
    if marg_tables:
        pd.concat(marg_tables).to_csv(tab_dir / "fanova_marginals.csv", index=False)
    hp_lines += _per_variant_section(data, opt, tasks, fig_dir, tab_dir, out)
    hp_lines += _training_time_section(data, opt, tasks, fig_dir, out)

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
        f"Variant claims are judged, as in the paper, on the best {pct} of each variant by "
        f"{opt.select_by} (Welch's t-test, means of {opt.metric}, corrected p-values); the "
        "all-trials rank test (medians) is shown beside. Hyperparameter claims are judged on "
        "the fANOVA of " + (", ".join(opt.fanova_variants) if opt.fanova_variants
                            else "all variants pooled")
        + ("; a task marked *(all variants pooled)* had too few of those trials"
           if any(getattr(r, "fallback", None) for r in results.values()) else "") + ".", "",
        md_table(pd.DataFrame({"finding": [f.claim for f in found],
                               "this sweep": [f"**{f.verdict}**" + (f" ({f.by_task})"
                                                                  if len(tasks) > 1 else "")
                                              for f in found],
                               "evidence": [f.evidence for f in found]})), ""]

    paper_lines = (_across_tasks_section(tests, best, opt, tasks, labels, fig_dir, out)
                   + _paper_section(tests, data, results, opt, tasks, labels))
    lines += finding_lines + paper_lines + variant_lines + hp_lines + lr_lines
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
