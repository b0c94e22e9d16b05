"""The evolution on a store: decisions, exact counts, reproducibility, resuming after a kill,
the report and the export of an architecture that a sweep then takes as a plugin cell."""

import multiprocessing as mp
import os
import signal
import time

import numpy as np
import pandas as pd
import pytest
from optuna.trial import TrialState

from odyssey.cells.graph import architecture_hash, canonical_string, known
from odyssey.evolve import report as evolution
from odyssey.evolve import scores
from odyssey.evolve.export import write_plugin
from odyssey.evolve.loop import EvolveSpec, decide, run_worker
from odyssey.plugins import load_plugins
from odyssey.search.spec import SweepConfigError, SweepSpec
from odyssey.search.sweep import run_worker as run_sweep_worker
from odyssey.search.trial import counts_toward_n
from tests.evolve.helpers import evolve_config, run_child, study
from tests.search.helpers import toy_config


def _row(number, name, state="COMPLETE", g=0.5):
    arch = canonical_string(known(name))
    return {"number": number, "state": state, scores.HASH_ATTR: architecture_hash(known(name)),
            scores.ARCH_ATTR: arch, "parent": None, "kind": "seed", "mutation": None,
            "g/arith": g, "g/xml": g, "g/lm": g, "diverged": False}


def test_decide_seeds_first_then_reevaluates_or_mutates(tmp_path):
    spec = EvolveSpec.from_config(evolve_config(tmp_path, "evolve.seeds=[V,GRU]",
                                                "evolve.seed_evaluations=2"))
    rng = np.random.default_rng(0)
    d = decide(spec, pd.DataFrame(), rng)
    assert d.kind == "seed" and d.architecture == canonical_string(known("V"))
    frame = pd.DataFrame([_row(0, "V"), _row(1, "V", "RUNNING"), _row(2, "GRU")])
    assert decide(spec, frame, rng).architecture == canonical_string(known("GRU"))
    frame = pd.DataFrame([_row(k, n, g=0.4 + 0.1 * (n == "GRU"))
                          for k, n in enumerate(["V", "V", "GRU", "GRU"])])
    always = EvolveSpec.from_config(evolve_config(
        tmp_path, "evolve.seed_evaluations=2", "evolve.reevaluate_probability=1"))
    assert decide(always, frame, rng).kind == "reevaluate"
    never = EvolveSpec.from_config(evolve_config(
        tmp_path, "evolve.seed_evaluations=2", "evolve.reevaluate_probability=0"))
    d = decide(never, frame, rng)
    assert d.kind == "mutate" and d.parent in set(frame[scores.HASH_ATTR])
    assert architecture_hash(known("V")) != d.architecture and d.mutation


def test_architecture_scores_are_relative_to_the_baseline():
    frame = pd.DataFrame([_row(0, "V", g=0.3), _row(1, "GRU", g=0.6), _row(2, "V", g=0.9),
                          _row(3, "NP", "FAIL", g=0.0)])
    frame.loc[2, "g/lm"] = 0.15  # V's lm is worse than the GRU's: its score is that ratio
    table = scores.architectures(frame, ["arith", "xml", "lm"],
                                 architecture_hash(known("GRU")))
    v = table.set_index(scores.HASH_ATTR).loc[architecture_hash(known("V"))]
    assert v["rel/arith"] == pytest.approx(1.5) and v["score"] == pytest.approx(0.5)
    assert table.iloc[0][scores.HASH_ATTR] == architecture_hash(known("GRU"))
    assert table.iloc[-1]["score"] == 0.0


@pytest.mark.parametrize("override, message", [
    ("evaluations=0", "evaluations must be an integer >= 1"),
    ("evolve.seeds=[XYZ]", "evolve.seeds: 'XYZ' is neither"),
    ("evolve.reevaluate_probability=2", "reevaluate_probability must lie in"),
    ("tasks.arith.name=nope", "tasks.arith.name must be one of"),
])
def test_config_errors_name_the_key(tmp_path, override, message):
    with pytest.raises(SweepConfigError, match=message):
        EvolveSpec.from_config(evolve_config(tmp_path, override))


def _sequence(cfg):
    st = study(cfg)
    return [(t.number, t.state.name, t.user_attrs[scores.HASH_ATTR], t.value,
             tuple(sorted(t.params.items()))) for t in st.get_trials()]


def test_one_worker_reaches_exactly_n_and_a_seed_reproduces_it(tmp_path):
    a = evolve_config(tmp_path / "a", "evaluations=5")
    run_worker(EvolveSpec.from_config(a))
    seq = _sequence(a)
    assert len(seq) == 5 and all(s == "COMPLETE" for _, s, *_ in seq)
    assert len({h for _, _, h, *_ in seq}) >= 3  # V, GRU and mutants
    attrs = study(a).trials[-1].user_attrs
    assert set(attrs["tasks"]) == {"arith", "xml", "lm"} and attrs["kind"] in (
        "reevaluate", "mutate")
    b = evolve_config(tmp_path / "b", "evaluations=5")
    run_worker(EvolveSpec.from_config(b))
    assert _sequence(b) == seq
    # rerunning a finished evolution adds nothing; a bigger N goes on from the store
    run_worker(EvolveSpec.from_config(a))
    assert len(_sequence(a)) == 5


def test_report_and_export_into_a_sweep(tmp_path):
    cfg = evolve_config(tmp_path, "evaluations=4")
    spec = EvolveSpec.from_config(cfg)
    run_worker(spec)
    path = evolution.report(spec.sweep_dir, top=3)
    text = path.read_text()
    assert "h_t =" in text and "history.png" in text
    assert (spec.sweep_dir / "evolution" / "history.png").is_file()
    assert len(list((spec.sweep_dir / "evolution" / "graphs").glob("*.png"))) == 3
    _, st, frame = evolution.load(spec.sweep_dir)
    best = evolution.table(st, frame).iloc[0]
    plugin = write_plugin(best[scores.ARCH_ATTR], "EVO1", tmp_path / "evo1.py")
    (loaded,) = load_plugins([str(plugin)], entry_points_too=False)
    assert loaded.cells == ("EVO1",)
    sweep = toy_config(tmp_path / "sweep", f"plugins=[{plugin}]", "variants=[EVO1]",
                       "trials_per_variant=2", "search.params.hidden_size.high=24")
    report = run_sweep_worker(SweepSpec.from_config(sweep))
    assert report.complete + report.diverged == 2  # the sweep's own counting


@pytest.mark.slow
def test_two_workers_killed_once_and_rerun_end_with_exactly_n(tmp_path):
    n = 8
    over = [f"evaluations={n}", "tasks.lm.max_chars=3000", "train.max_epochs=3"]
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=run_child, args=(str(tmp_path), [*over, f"worker={w}"]))
             for w in range(2)]
    for p in procs:
        p.start()
    cfg = evolve_config(tmp_path, *over)
    deadline = time.time() + 300
    victim = None
    while time.time() < deadline and victim is None:
        time.sleep(0.2)
        try:
            running = [t for t in study(cfg).get_trials(deepcopy=False)
                       if t.state == TrialState.RUNNING and t.number >= 2
                       and "worker" in t.user_attrs]
        except KeyError:
            continue
        if running:
            victim = running[0].user_attrs["worker"]["pid"]
    assert victim is not None
    os.kill(victim, signal.SIGKILL)
    for p in procs:
        p.join(300)
    # the survivor may have finished everything else; a rerun replaces the killed trial
    run_worker(EvolveSpec.from_config(evolve_config(tmp_path, *over)))
    trials = study(cfg).get_trials()
    counted = [t for t in trials if counts_toward_n(t)]
    assert len(counted) == n and all(t.state == TrialState.COMPLETE for t in counted)
    assert any(t.user_attrs.get("fail_kind") == "stale" for t in trials)
    assert len({t.user_attrs[scores.HASH_ATTR] for t in counted}) >= 3


def test_history_equals_recomputing_the_table_at_each_step():
    rng = np.random.default_rng(0)
    names = ["GRU", "V", "NP", "MUT1", "GRU", "V", "MUT2", "GRU", "NP", "V"]
    rows = [_row(k, n, "FAIL" if k == 5 else "COMPLETE", g=float(rng.uniform()))
            for k, n in enumerate(names)]
    for r in rows:
        r["g/lm"] = float(rng.uniform())
    frame = pd.DataFrame(rows)
    tasks, base = ["arith", "xml", "lm"], architecture_hash(known("GRU"))
    hist = scores.history(frame, tasks, base)
    for k in range(1, len(frame) + 1):
        expected = scores.architectures(frame.iloc[:k], tasks, base)["score"].max()
        assert hist.iloc[k - 1]["best_score"] == pytest.approx(expected)


def test_a_diverging_evaluation_is_complete_and_scores_0(tmp_path, monkeypatch):
    from odyssey.evolve import loop
    from odyssey.training import TrainResult

    real = loop.train

    def train(task, *args, **kwargs):  # the xml task diverges, the others train
        if task.info.get("example", "").startswith("<"):
            return TrainResult("diverged", fail_reason="training loss became nan")
        return real(task, *args, **kwargs)

    monkeypatch.setattr(loop, "train", train)
    cfg = evolve_config(tmp_path, "evaluations=1")
    run_worker(EvolveSpec.from_config(cfg))
    (t,) = study(cfg).trials
    assert t.state == TrialState.COMPLETE and t.value == 0.0
    assert t.user_attrs["diverged"] == ["xml"]
    assert t.user_attrs["tasks"]["xml"]["status"] == "diverged"
    row = scores.load(study(cfg)).iloc[0]
    assert bool(row["diverged"]) and row["g/xml"] == 0.0 and row["g/arith"] >= 0.0
