"""The report of an evolution (odyssey-evolve): history, top architectures as equations and
drawings, their relative scores per task. Everything is read from the store.

results/<sweep>/evolution/: report.md, history.png, history.csv, architectures.csv and
graphs/<rank>_<hash>.png.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import optuna  # noqa: E402
import pandas as pd  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402

from ..cells.graph import Graph, canonical, equations, parse_canonical  # noqa: E402
from ..cells.graph.core import INPUTS, topological_order  # noqa: E402
from ..store.storage import open_storage  # noqa: E402
from . import scores  # noqa: E402
from .loop import STUDY  # noqa: E402


def load(sweep_dir: Path) -> tuple[dict, optuna.Study, pd.DataFrame]:
    """The evolution's config (results/<sweep>/config.yaml), study and evaluations."""
    path = Path(sweep_dir) / "config.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no evolution there (run odyssey-evolve first)")
    config = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    storage = open_storage(config["storage"]["url"])
    study = optuna.load_study(study_name=f"{config['sweep_name']}/{STUDY}", storage=storage)
    return config, study, scores.load(study)


def table(study: optuna.Study, frame: pd.DataFrame) -> pd.DataFrame:
    """Architectures ranked by score (scores.architectures with the study's tasks)."""
    return scores.architectures(frame, list(study.user_attrs["tasks"]),
                                study.user_attrs.get("baseline_hash"))


def plot_history(hist: pd.DataFrame, path: Path) -> None:
    """Best relative score against finished evaluations."""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.step(hist["evaluation"], hist["best_score"], where="post")
    ax.axhline(1.0, color="grey", lw=0.8, ls="--", label="baseline (GRU) = 1")
    ax.set_xlabel("finished evaluations")
    ax.set_ylabel("best score (min over tasks, relative)")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


LABELS = {"linear": "W·", "diag": "p⊙", "tanh": "tanh", "sigmoid": "σ", "relu": "ReLU",
          "add": "+", "mul": "⊙", "sub": "−"}


def draw_graph(graph: Graph, path: Path, title: str = "") -> None:
    """The cell's DAG: inputs at the bottom, each node one level above its deepest input."""
    g = canonical(graph)
    order = topological_order(g)
    level = {i: 0 for i in INPUTS}
    for n in order:
        level[n] = 1 + max((level[i] for i in g.nodes[n].inputs), default=0)
    used = {i for nd in g.nodes.values() for i in nd.inputs if i in INPUTS}
    rows: dict[int, list[str]] = {}
    for n in [i for i in INPUTS if i in used] + order:
        rows.setdefault(level[n], []).append(n)
    pos = {n: ((k + 1) / (len(r) + 1), lvl) for lvl, r in rows.items()
           for k, n in enumerate(r)}
    outs = {v: k for k, v in g.outputs.items()}
    height = max(rows) + 1
    fig, ax = plt.subplots(figsize=(max(4, 1.2 * max(len(r) for r in rows.values())),
                                    0.6 * height + 1))
    for n, node in g.nodes.items():
        for i in node.inputs:
            (x0, y0), (x1, y1) = pos[i], pos[n]
            ax.annotate("", (x1, y1 - 0.15), (x0, y0 + 0.15),
                        arrowprops={"arrowstyle": "->", "color": "0.5", "lw": 0.8})
    for n, (x, y) in pos.items():
        if n in INPUTS:
            text, color = {"x": "x_t", "h": "h_(t-1)", "c": "c_(t-1)"}[n], "#cde"
        else:
            node = g.nodes[n]
            text = (f"{node.value:g}" if node.op == "const" else
                    f"Lin({node.bias:g})" if node.op == "linear" and len(node.inputs) == 1
                    and node.bias is not None else LABELS[node.op])
            color = "#fdb" if n in outs else "#eee"
            if n in outs:
                text += f"\n→ {outs[n]}_t"
        ax.text(x, y, text, ha="center", va="center", fontsize=8,
                bbox={"boxstyle": "round", "fc": color, "ec": "0.4"})
    ax.set_xlim(0, 1)
    ax.set_ylim(-0.6, height - 0.4)
    ax.axis("off")
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def report(sweep_dir: Path, top: int = 10) -> Path:
    """Write the evolution's report folder; returns report.md's path."""
    config, study, frame = load(sweep_dir)
    out = Path(sweep_dir) / "evolution"
    (out / "graphs").mkdir(parents=True, exist_ok=True)
    tasks = list(study.user_attrs["tasks"])
    ranked = table(study, frame)
    hist = scores.history(frame, tasks, study.user_attrs.get("baseline_hash"))
    ranked.to_csv(out / "architectures.csv", index=False)
    hist.to_csv(out / "history.csv", index=False)
    if not hist.empty:
        plot_history(hist, out / "history.png")
    finished = int((frame["state"] != "RUNNING").sum()) if not frame.empty else 0
    lines = [f"# Evolution {config['sweep_name']}", "",
             f"{finished} finished evaluations of {config['evaluations']} "
             f"({int(frame['diverged'].sum()) if not frame.empty else 0} diverged on a task), "
             f"{len(ranked)} architectures; tasks {', '.join(tasks)}. Score: the minimum "
             "over the tasks of the best validation accuracy (lm: 1/perplexity) relative to "
             "the baseline's (GRU = 1).", ""]
    if not hist.empty:
        lines += ["![history](history.png)", ""]
    lines += ["| rank | architecture | score | " + " | ".join(tasks) +
              " | evaluations | parent |",
              "|" + "---|" * (5 + len(tasks))]
    for k, row in ranked.head(top).iterrows():
        rel = " | ".join(_num(row.get(f"rel/{t}")) for t in tasks)
        lines.append(f"| {k + 1} | `{row[scores.HASH_ATTR]}` | {_num(row['score'])} | {rel} "
                     f"| {row['evaluations']} | {_parent(row['parent'])} |")
    lines.append("")
    for k, row in ranked.head(top).iterrows():
        g = parse_canonical(row[scores.ARCH_ATTR])
        name = f"{k + 1}_{row[scores.HASH_ATTR]}.png"
        draw_graph(g, out / "graphs" / name, f"#{k + 1} {row[scores.HASH_ATTR]}")
        lines += [f"## {k + 1}. `{row[scores.HASH_ATTR]}` (score {_num(row['score'])})", "",
                  "```", *equations(g), "```", "", f"![graph](graphs/{name})", ""]
    path = out / "report.md"
    path.write_text("\n".join(lines))
    return path


def _parent(value) -> str:
    return f"`{value}`" if isinstance(value, str) else ""


def _num(value) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) \
        else f"{float(value):.3f}"
