"""Sweep workers: exact trial counts with several workers, resume after a kill, failures."""

from __future__ import annotations

import multiprocessing as mp
import subprocess

import pytest
from optuna.trial import TrialState

from odyssey.search.liveness import WorkerId
from odyssey.search.spec import SweepConfigError, SweepSpec
from odyssey.search.sweep import _claim_holds, fail_stale_trials, final_report, run_worker
from odyssey.search.trial import counts_toward_n
from tests.search.helpers import (
    kill_when,
    run_toy_worker,
    running_trials,
    studies,
    toy_config,
)

SMALL = ["search.params.hidden_size.low=4", "search.params.hidden_size.high=12"]
CONTRACT_ATTRS = {"valid_metric", "test_metric", "best_epoch", "epochs_run", "curve",
                  "extra_metrics", "train_seconds", "parameter_count",
                  "recurrent_parameter_count", "momentum", "seed", "batch_size", "run_id",
                  "git_commit"}


def spawn(tmp, overrides, worker, sleep=0.0):
    p = mp.get_context("spawn").Process(target=run_toy_worker,
                                        args=(str(tmp), overrides, worker, sleep))
    p.start()
    return p


def test_one_worker_fills_every_study_and_records_the_contract(tmp_path):
    cfg = toy_config(tmp_path, *SMALL, "trials_per_variant=3")
    spec = SweepSpec.from_config(cfg)
    report = run_worker(spec)
    assert report.trials_run == 6 and report.complete == 6
    by_variant = studies(cfg)
    assert set(by_variant) == {"V", "NP"}
    for v, study in by_variant.items():
        assert study.study_name == f"t/toy/{v}"
        runs = {k: a for k, a in study.user_attrs.items() if k.startswith("run/")}
        assert {k: a for k, a in study.user_attrs.items() if k not in runs} == {
            "sweep_name": "t", "task": "toy", "variant": v, "metric": "nll",
            "metric_label": "NLL per time step", "task_setting": "complete"}
        # the bulky config and versions once per study, each trial naming its record
        assert len(runs) == 1
        (run_key, record), = runs.items()
        assert record["config"]["task"]["name"] == "toy" and "torch" in record["versions"]
        assert "worker" not in record["config"]
        trials = study.get_trials()
        assert [t.state for t in trials] == [TrialState.COMPLETE] * 3
        for t in trials:
            assert set(t.user_attrs) >= CONTRACT_ATTRS
            assert t.value == t.user_attrs["valid_metric"]
            assert set(t.params) == {"hidden_size", "learning_rate", "one_minus_momentum",
                                     "input_noise"}
            assert t.user_attrs["momentum"] == pytest.approx(1 - t.params["one_minus_momentum"])
            assert len(t.user_attrs["curve"]) == t.user_attrs["epochs_run"]
            # the learning curve as Optuna's intermediate values (optuna-dashboard draws it)
            assert t.intermediate_values == {e["epoch"]: pytest.approx(e["valid"])
                                             for e in t.user_attrs["curve"]}
            assert run_key == "run/" + t.user_attrs["run_id"]
            assert not {"config", "versions"} & set(t.user_attrs)
            # the scores first (after the worker), the long curve last: optuna-dashboard
            # shows a journal store's attributes in the order they were first set
            keys = list(t.user_attrs)
            assert keys[:5] == ["worker", "valid_metric", "test_metric", "best_epoch",
                                "parameter_count"]
            assert keys.index("curve") > keys.index("recurrent_parameter_count")
    assert (spec.sweep_dir / "config.yaml").exists()
    # a rerun of a full sweep trains nothing
    assert run_worker(spec).trials_run == 0
    table = final_report(spec)
    assert "NP" in table and "best_valid" in table
    assert (spec.sweep_dir / "summary.csv").exists()


def test_an_sqlite_store_with_heartbeats_works_the_same(tmp_path):
    cfg = toy_config(tmp_path, *SMALL, "storage=sqlite", "variants=[V]")
    spec = SweepSpec.from_config(cfg)
    assert spec.storage_url == f"sqlite:///{tmp_path}/results/t/optuna.db"
    assert spec.heartbeat_interval == 60
    assert run_worker(spec).complete == 2
    assert len(studies(cfg)["V"].get_trials(states=(TrialState.COMPLETE,))) == 2


@pytest.mark.slow
def test_two_workers_give_exactly_n_per_variant(tmp_path):
    # each worker's first trial waits for the other's (a file barrier, tests/toy.py): else
    # one worker can finish all nine trials before the other has started
    overrides = [*SMALL, "variants=[V,NP,GRU]", "trials_per_variant=3",
                 f"task.barrier={tmp_path / 'barrier'}", "task.parties=2"]
    procs = [spawn(tmp_path, overrides, w) for w in (0, 1)]
    for p in procs:
        p.join(timeout=300)
        assert p.exitcode == 0
    cfg = toy_config(tmp_path, *overrides)
    workers = set()
    for study in studies(cfg).values():
        trials = study.get_trials()
        assert sum(counts_toward_n(t) for t in trials) == 3
        assert sum(t.state == TrialState.COMPLETE for t in trials) == 3
        assert not [t for t in trials if t.state == TrialState.RUNNING]
        workers |= {t.user_attrs["worker"]["pid"] for t in trials}
    assert len(workers) == 2  # both workers did trials


@pytest.mark.slow
def test_killed_worker_then_rerun_loses_nothing_and_ends_exact(tmp_path):
    overrides = [*SMALL, "variants=[V]", "trials_per_variant=3", "train.max_epochs=30",
                 "train.patience=30"]
    cfg = toy_config(tmp_path, *overrides, sleep=0.02)
    p = spawn(tmp_path, overrides, 0, sleep=0.02)
    kill_when(p, cfg, lambda trials: running_trials(trials) and any(
        t.state == TrialState.COMPLETE for t in trials), "had a finished and a running trial")
    study = studies(cfg)["V"]
    before = {t.number: (t.value, t.params) for t in study.get_trials()
              if t.state == TrialState.COMPLETE}
    killed = [t.number for t in study.get_trials() if t.state == TrialState.RUNNING]
    assert killed

    report = run_worker(SweepSpec.from_config(cfg))  # the same command again
    assert report.stale_replaced == len(killed)
    trials = studies(cfg)["V"].get_trials()
    after = {t.number: (t.value, t.params) for t in trials if t.state == TrialState.COMPLETE}
    assert all(after[k] == v for k, v in before.items())  # no finished trial lost or redone
    assert sum(counts_toward_n(t) for t in trials) == 3 == len(after)
    stale = [t for t in trials if t.number in killed]
    assert all(t.state == TrialState.FAIL and t.user_attrs["fail_kind"] == "stale"
               for t in stale)
    assert not [t for t in trials if t.state == TrialState.RUNNING]


def test_diverging_trials_are_recorded_failed_and_the_sweep_goes_on(tmp_path):
    # momentum 0 and a step that overflows float32: every trial diverges at once
    cfg = toy_config(tmp_path, *SMALL, "search.params.learning_rate.low=1.5e38",
                     "search.params.learning_rate.high=3e38",
                     "search.params.one_minus_momentum.low=1.0", "train.max_epochs=3")
    report = run_worker(SweepSpec.from_config(cfg))
    assert report.diverged == 4 and report.trials_run == 4
    for study in studies(cfg).values():
        trials = study.get_trials()
        assert len(trials) == 2
        for t in trials:
            assert t.state == TrialState.FAIL
            assert t.user_attrs["fail_kind"] == "diverged"
            assert "loss became" in t.user_attrs["fail_reason"]
            assert t.user_attrs["parameter_count"] > 0
    assert "V" in final_report(SweepSpec.from_config(cfg))


def test_a_dead_workers_running_trial_is_replaced(tmp_path):
    """In-process twin of the kill test: a running trial owned by a gone process."""
    cfg = toy_config(tmp_path, *SMALL, "variants=[V]", "trials_per_variant=2")
    spec = SweepSpec.from_config(cfg)
    run_worker(spec, max_trials=1)
    gone = subprocess.Popen(["true"])
    gone.wait()  # exited and reaped: its pid names no process
    study = studies(cfg)["V"]
    orphan = study.ask()
    owner = WorkerId.current().as_dict() | {"pid": gone.pid, "start_ticks": None}
    orphan.set_user_attr("worker", owner)
    done_before = [(t.number, t.value) for t in study.get_trials()
                   if t.state == TrialState.COMPLETE]
    report = run_worker(spec)
    assert report.stale_replaced == 1 and report.trials_run == 1
    trials = studies(cfg)["V"].get_trials()
    assert trials[orphan.number].state == TrialState.FAIL
    assert trials[orphan.number].user_attrs["fail_kind"] == "stale"
    assert [(t.number, t.value) for t in trials
            if t.state == TrialState.COMPLETE][:1] == done_before
    assert sum(counts_toward_n(t) for t in trials) == 2


def test_a_running_trial_of_a_live_worker_is_left_alone(tmp_path):
    cfg = toy_config(tmp_path, *SMALL, "variants=[V]", "trials_per_variant=1")
    spec = SweepSpec.from_config(cfg)
    run_worker(spec, max_trials=0)
    study = studies(cfg)["V"]
    live = study.ask()
    live.set_user_attr("worker", WorkerId.current().as_dict())  # this very process
    assert fail_stale_trials(studies(cfg), WorkerId.current()) == 0
    assert run_worker(spec).trials_run == 0  # the study is full with the running trial
    assert studies(cfg)["V"].get_trials()[0].state == TrialState.RUNNING


def test_a_worker_loses_a_contested_last_slot(tmp_path):
    cfg = toy_config(tmp_path, *SMALL, "variants=[V]", "trials_per_variant=1")
    spec = SweepSpec.from_config(cfg)
    run_worker(spec, max_trials=0)  # creates the study
    study = studies(cfg)["V"]
    first, second = study.ask(), study.ask()  # two workers asked at the same moment
    assert _claim_holds(study, first.number, 1)
    assert not _claim_holds(study, second.number, 1)


@pytest.mark.parametrize("override, message", [
    ("variants=[V,LSTM9]", "unknown variant 'LSTM9'"),
    ("variants=[V,v]", "more than once"),
    ("trials_per_variant=0", "trials_per_variant must be an integer >= 1"),
    ("search.params.learning_rate.low=0.1", "learning_rate: inverted range"),
    ("search.params.hidden_size.low=0", "hidden_size"),
    ("search.sampler=grid", "search.sampler"),
    ("task.name=nosuchtask", "unknown task 'nosuchtask'"),
    ("train.max_epochs=0", "train.max_epochs"),
    ("sweep_name=a/b", "sweep_name"),
    ("storage.url=ftp://x", "storage.url"),
])
def test_bad_values_stop_before_any_training(tmp_path, override, message):
    cfg = toy_config(tmp_path, override)
    with pytest.raises(SweepConfigError, match=message.replace("[", r"\[")):
        SweepSpec.from_config(cfg)
    assert not (tmp_path / "results").exists()


def test_a_changed_protocol_under_the_same_sweep_name_is_refused(tmp_path):
    run_worker(SweepSpec.from_config(toy_config(tmp_path, *SMALL, "trials_per_variant=1")))
    more = toy_config(tmp_path, *SMALL, "trials_per_variant=2")  # more trials: allowed
    assert run_worker(SweepSpec.from_config(more)).trials_run == 2
    changed = toy_config(tmp_path, *SMALL, "trials_per_variant=2", "train.patience=9")
    with pytest.raises(SweepConfigError, match="different train"):
        run_worker(SweepSpec.from_config(changed))


def test_the_documented_overrides_compose(tmp_path):
    from hydra import compose, initialize_config_dir

    from odyssey.config import CONFIG_DIR
    url = f"sqlite:///{tmp_path}/s.db"
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        default = SweepSpec.from_config(compose("config"))
        paper = SweepSpec.from_config(compose("config", overrides=["experiment=greff"]))
        cfg = compose("config", overrides=["task=music", "variants=[V,NP]",
                                           "trials_per_variant=4", "train.max_epochs=2",
                                           f"storage.url={url}", "sweep_name=mine"])
    spec = SweepSpec.from_config(cfg)
    assert default.task_name == "music" and len(default.variants) == 11
    assert default.sweep_name == "quick-music" and default.trials_per_variant >= 8
    assert default.train.max_epochs < paper.train.max_epochs
    assert default.storage_url.startswith("journal://")
    assert default.storage_url.endswith("/results/quick-music/optuna.journal")
    assert (paper.trials_per_variant, paper.train.batch_size, paper.train.max_epochs,
            paper.train.patience, paper.sampler) == (200, 1, 150, 15, "random")
    assert not paper.train.scale_lr_with_batch
    assert (spec.variants, spec.trials_per_variant, spec.train.max_epochs) == (("V", "NP"),
                                                                                4, 2)
    assert spec.storage_url == url and spec.sweep_name == "mine"
    assert spec.study_name("NP") == "mine/music/NP"


@pytest.mark.parametrize("baseline", [0.0, 1e9])
def test_trials_that_never_beat_the_baseline_are_marked_and_counted(tmp_path, monkeypatch,
                                                                    baseline):
    from tests.toy import ToyTask
    monkeypatch.setattr(ToyTask, "_baseline", lambda self, split: baseline)
    cfg = toy_config(tmp_path, *SMALL, "variants=[V]")
    spec = SweepSpec.from_config(cfg)
    assert run_worker(spec).complete == 2
    untrained = baseline == 0.0  # nothing beats NLL 0; everything beats 1e9
    for t in studies(cfg)["V"].get_trials():
        assert t.user_attrs["untrained"] is untrained
        assert t.user_attrs["baseline_valid"] == baseline
    table = final_report(spec).splitlines()
    header = table[1].split()
    row = dict(zip(["variant", *header], table[-1].split(), strict=True))
    assert row["untrained"] == ("2" if untrained else "0")


def test_a_task_without_a_baseline_marks_nothing(tmp_path):
    cfg = toy_config(tmp_path, *SMALL, "variants=[V]")
    run_worker(SweepSpec.from_config(cfg))
    assert all("untrained" not in t.user_attrs for t in studies(cfg)["V"].get_trials())


def test_a_sweep_from_before_train_stopping_resumes_only_under_the_metric_rule(tmp_path):
    from omegaconf import OmegaConf
    spec = SweepSpec.from_config(toy_config(tmp_path, *SMALL, "trials_per_variant=1"))
    run_worker(spec)
    path = spec.sweep_dir / "config.yaml"
    old = OmegaConf.load(path)
    del old.train["stopping"]  # the config.yaml such a sweep wrote
    OmegaConf.save(old, path)
    with pytest.raises(SweepConfigError, match="different train"):
        run_worker(SweepSpec.from_config(toy_config(tmp_path, *SMALL, "trials_per_variant=2")))
    literal = toy_config(tmp_path, *SMALL, "trials_per_variant=2", "train.stopping=metric")
    assert run_worker(SweepSpec.from_config(literal)).trials_run == 2


HAND_QUICK = (15, 5, 16)  # configs/experiment_task/quick_handwriting.yaml: epochs, patience, batch


def test_quick_settings_are_specialised_by_task_and_overrides_win(tmp_path):
    from hydra import compose, initialize_config_dir

    from odyssey.config import CONFIG_DIR
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        def train(*overrides):
            return SweepSpec.from_config(compose("config", overrides=list(overrides))).train
        music, hand = train("task=music"), train("task=handwriting")
        tuned = train("task=handwriting", "train.patience=7")
        paper = train("task=handwriting", "experiment=greff")
        speech = train("task=speech")
    assert (music.max_epochs, music.patience, music.batch_size) == (3, 3, 1)
    assert not music.scale_lr_with_batch and speech.scale_lr_with_batch and hand.scale_lr_with_batch
    assert (speech.max_epochs, speech.patience, speech.batch_size) == (5, 3, 16)
    assert (hand.max_epochs, hand.patience, hand.batch_size) == HAND_QUICK
    assert (tuned.max_epochs, tuned.patience) == (HAND_QUICK[0], 7)
    assert (paper.max_epochs, paper.patience, paper.batch_size) == (150, 15, 1)
    assert music.stopping == hand.stopping == paper.stopping == "metric_or_loss"
    toy = SweepSpec.from_config(toy_config(tmp_path)).train  # no experiment_task file: quick's
    assert (toy.patience, toy.batch_size) == (3, 4)


def test_quick_speech_and_handwriting_use_quick_corpora_and_greff_does_not():
    """experiment=quick on speech/handwriting: the quick-sized corpora and 30 trials per cell
    (make reproduce's budget); experiment=greff keeps the full corpora and 200 trials; a
    command-line task.size wins over the specialisation."""
    from hydra import compose, initialize_config_dir

    from odyssey.config import CONFIG_DIR
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        def spec(*overrides):
            return SweepSpec.from_config(compose("config", overrides=list(overrides)))
        quick = {t: spec(f"task={t}") for t in ("music", "speech", "handwriting")}
        paper = {t: spec(f"task={t}", "experiment=greff") for t in ("speech", "handwriting")}
        bigger = spec("task=speech", "task.size=small")
    assert quick["music"].trials_per_variant == 80
    assert quick["music"].sampler == "sobol"  # the paper's protocol keeps random search
    assert {paper[t].sampler for t in paper} == {"random"}
    for task in ("speech", "handwriting"):
        assert quick[task].task_options["size"] == "quick"
        assert quick[task].trials_per_variant == 30
        assert paper[task].trials_per_variant == 200
        assert (paper[task].train.max_epochs, paper[task].train.batch_size) == (150, 1)
    assert paper["speech"].task_options["size"] == "small"
    assert paper["handwriting"].task_options["size"] == "standard"
    assert bigger.task_options["size"] == "small" and bigger.train.max_epochs == 5


@pytest.mark.slow
def test_lstmb_and_muts_are_searched_resumed_and_analysed_beside_v(tmp_path):
    from hydra import compose, initialize_config_dir

    from odyssey.cli.analyze import run
    from odyssey.config import CONFIG_DIR
    names = ["V", "LSTMB", "MUT1", "MUT2", "MUT3"]
    cfg = toy_config(tmp_path, *SMALL, f"variants=[{','.join(names)}]",
                     "trials_per_variant=2")
    first = toy_config(tmp_path, *SMALL, f"variants=[{','.join(names)}]",
                       "trials_per_variant=1")
    assert run_worker(SweepSpec.from_config(first)).complete == 5
    spec = SweepSpec.from_config(cfg)  # resume: one more trial per variant
    assert spec.variants == tuple(names)
    assert run_worker(spec).complete == 5
    by_variant = studies(cfg)
    assert set(by_variant) == set(names)
    assert by_variant["MUT2"].study_name == "t/toy/MUT2"
    for study in by_variant.values():
        assert [t.state for t in study.get_trials()] == [TrialState.COMPLETE] * 2
    assert all(v in final_report(spec) for v in names)
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        analyze = compose("analyze", overrides=[f"results_dir={tmp_path / 'results'}",
                                                "sweep_name=t", "fanova.min_trials=1000",
                                                "progress=false"])
    assert run(analyze) == 0
    tests = (spec.sweep_dir / "tables" / "variant_tests.csv").read_text()
    assert all(v in tests for v in names)


@pytest.mark.parametrize("overrides, message", [
    (["task.n_train=abc"], "task: task 'toy' of plugin 'tests' failed to load .*TypeError"),
    (["+task.path=/nonexistent/corpus.pickle"], "task.path: "),
])
def test_a_task_whose_data_fails_to_load_stops_in_one_line_before_any_trial(
        tmp_path, monkeypatch, overrides, message):
    """Any error from a task's loading (bad options, a missing file) is a config error
    naming the task (or the key whose value it names), and leaves no config.yaml behind,
    so the corrected command is not refused as another sweep."""
    import tests.toy

    def missing(path: str = "", **kw):
        raise FileNotFoundError(f"{path}: no such file")

    if "path" in overrides[0]:
        monkeypatch.setattr(tests.toy, "load", missing)
    cfg = toy_config(tmp_path, *SMALL, *overrides)
    spec = SweepSpec.from_config(cfg)
    with pytest.raises(SweepConfigError, match=message) as e:
        run_worker(spec)
    assert "\n" not in str(e.value)
    assert not (spec.sweep_dir / "config.yaml").exists()
    assert not (spec.sweep_dir / "optuna.journal").exists()


def test_a_built_in_tasks_unexpected_error_names_the_task_and_the_error():
    from odyssey.search.sweep import task_error

    assert task_error("music", {"source": "music21"}, RuntimeError("boom\nline two")) == \
        "task music: could not load its data: RuntimeError: boom line two"
    missing = FileNotFoundError("/data/x.pickle: no such file")
    assert task_error("music", {"source": "jsb_pickle", "path": "/data/x.pickle"}, missing) \
        == "task.path: /data/x.pickle: no such file"
