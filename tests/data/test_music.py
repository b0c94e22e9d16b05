"""The music corpus: exact rolls, seeded splits, the JSB pickle reader, bad input, caches."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest

from odyssey.cli.data import main as odyssey_data
from odyssey.data import music
from odyssey.data.cache import load_manifest

# A small JSB_Chorales.pickle-format corpus: steps as tuples and lists, an empty step (rest)
SMALL = {
    "train": [[(60, 64, 67), (60, 65, 69), (), (59, 62, 67)], [[48, 72], (21,), (108,)]],
    "valid": [[(55, 59, 62, 67), (57, 60, 64, 69)]],
    "test": [[(60,), (62,), (64,)], [(62.0, 65)]],
}


def roll_of(steps: list) -> np.ndarray:
    roll = np.zeros((len(steps), 88), np.uint8)
    for t, notes in enumerate(steps):
        for n in notes:
            roll[t, int(n) - 21] = 1
    return roll


@pytest.fixture
def datasets(tmp_path, monkeypatch) -> Path:
    """Caches go to a temporary datasets/ folder."""
    folder = tmp_path / "datasets"
    monkeypatch.setenv("ODYSSEY_DATASETS", str(folder))
    return folder


def write_pickle(path: Path, data) -> Path:
    path.write_bytes(pickle.dumps(data, protocol=2))
    return path


# -- score -> roll ---------------------------------------------------------------------------
def small_score(pickup_beats: float = 1.0):
    """Two parts in 3/4 with a pickup, eighths, a chord, a held note and a rest."""
    from music21 import chord, meter, note, stream

    score = stream.Score()
    upper, lower = stream.Part(), stream.Part()
    m0 = stream.Measure(number=0)
    m0.append(meter.TimeSignature("3/4"))
    m0.append(note.Note("G4", quarterLength=pickup_beats))
    m0.paddingLeft = 3.0 - pickup_beats
    m1 = stream.Measure(number=1)
    m1.append([note.Note("A4", quarterLength=0.5), note.Note("B4", quarterLength=0.5),
               note.Note("C5", quarterLength=2.0)])
    upper.append([m0, m1])
    n0 = stream.Measure(number=0)
    n0.append(meter.TimeSignature("3/4"))
    n0.append(note.Rest(quarterLength=pickup_beats))
    n0.paddingLeft = 3.0 - pickup_beats
    n1 = stream.Measure(number=1)
    n1.append([chord.Chord(["C3", "E3"], quarterLength=1.5), note.Note("D3", quarterLength=1.5)])
    lower.append([n0, n1])
    score.insert(0, upper)
    score.insert(0, lower)
    return score


def test_roll_of_a_small_score_is_exact():
    roll = music.score_to_roll(small_score())
    # G4 pickup; beat 1: A4 (B4 falls between beats), C3+E3; beat 2: C5, chord held;
    # beat 3: C5 held, D3 (began half a beat earlier)
    expected = roll_of([(67,), (69, 48, 52), (72, 48, 52), (72, 50)])
    assert roll.dtype == np.uint8
    np.testing.assert_array_equal(roll, expected)


def test_an_off_beat_pickup_keeps_the_grid_on_the_beats():
    roll = music.score_to_roll(small_score(pickup_beats=0.5))
    # an eighth pickup lies between beats: the grid starts at the first downbeat
    np.testing.assert_array_equal(roll, roll_of([(69, 48, 52), (72, 48, 52), (72, 50)]))


def test_a_score_note_outside_the_piano_is_an_error():
    from music21 import note, stream

    part = stream.Part([note.Note("C9")])
    with pytest.raises(ValueError, match=r"my score: note C9 \(MIDI 120\).*21-108"):
        music.score_to_roll(part, where="my score")


def test_instrumental_parts_are_removed_when_the_voices_are_named():
    from music21 import note, stream

    def part(name, pitch):
        p = stream.Part([note.Note(pitch)])
        p.partName = name
        return p

    score = stream.Score()
    for name, pitch in (("Soprano 1", "C5"), ("Horn 1", "G5"), ("Bass Continuo", "C3"),
                        ("Timpani", "C2")):
        score.insert(0, part(name, pitch))
    assert music.keep_voices(score) == ["Horn 1", "Timpani"]
    np.testing.assert_array_equal(music.score_to_roll(score), roll_of([(72, 48)]))
    unnamed = stream.Score()
    for pitch in ("C5", "G4"):
        unnamed.insert(0, part(None, pitch))
    assert music.keep_voices(unnamed) == []
    np.testing.assert_array_equal(music.score_to_roll(unnamed), roll_of([(72, 67)]))


def test_transposition_to_c():
    assert [music.shift_to_c(pc) for pc in (0, 2, 5, 6, 7, 11)] == [0, -2, -5, -6, 5, 1]
    roll = roll_of([(67, 71), (74,)])
    np.testing.assert_array_equal(music.transpose_roll(roll, 5), roll_of([(72, 76), (79,)]))
    np.testing.assert_array_equal(music.transpose_roll(roll, -7), roll_of([(60, 64), (67,)]))
    with pytest.raises(ValueError, match="bwv0: transposing by 2"):
        music.transpose_roll(roll_of([(108,)]), 2, "bwv0")


# -- split ------------------------------------------------------------------------------------
def test_split_is_deterministic_for_a_seed_and_partitions():
    a = music.split_indices(350, (0.6, 0.2, 0.2), seed=3)
    b = music.split_indices(350, (0.6, 0.2, 0.2), seed=3)
    c = music.split_indices(350, (0.6, 0.2, 0.2), seed=4)
    for s in music.SPLITS:
        np.testing.assert_array_equal(a[s], b[s])
    assert any(not np.array_equal(a[s], c[s]) for s in music.SPLITS)
    assert [len(a[s]) for s in music.SPLITS] == [210, 70, 70]
    together = np.concatenate([a[s] for s in music.SPLITS])
    np.testing.assert_array_equal(np.sort(together), np.arange(350))


# -- options ----------------------------------------------------------------------------------
@pytest.mark.parametrize("options, message", [
    ({"source": "midi"}, "source must be one of"),
    ({"source": "jsb_pickle"}, "needs path="),
    ({"fractions": [0.5, 0.5, 0.5]}, "fractions must be three positive numbers"),
    ({"seed": "x"}, "seed must be an integer"),
    ({"workers": 0}, "workers must be a positive integer"),
    ({"transpose": "yes"}, "transpose must be true or false"),
    ({"sauce": "music21"}, r"unknown key\(s\) \['sauce'\]"),
])
def test_bad_options_name_the_key(options, message):
    with pytest.raises(ValueError, match=message):
        music.MusicOptions.from_mapping(options, "configs/task/music.yaml")


# -- JSB_Chorales.pickle ----------------------------------------------------------------------
def test_pickle_loader_reads_the_standard_format(tmp_path):
    rolls = music.read_jsb_pickle(write_pickle(tmp_path / "JSB_Chorales.pickle", SMALL))
    assert [len(rolls[s]) for s in music.SPLITS] == [2, 1, 2]
    for s in music.SPLITS:
        for got, steps in zip(rolls[s], SMALL[s], strict=True):
            np.testing.assert_array_equal(got, roll_of(steps))
    assert rolls["train"][0][2].sum() == 0  # a silent step stays a silent step


def test_pickle_corpus_is_cached_and_loads_again(tmp_path, datasets):
    path = write_pickle(tmp_path / "JSB_Chorales.pickle", SMALL)
    opts = music.MusicOptions.from_mapping({"source": "jsb_pickle", "path": str(path)})
    rolls, manifest = music.load_corpus(opts)
    stem = music.corpus_stem(opts)
    assert stem.parent == datasets / "music"
    assert manifest["counts"]["train"] == {"sequences": 2, "frames": 7}
    assert manifest["file_sha256"] and manifest["versions"]["music21"]
    again, _ = music.load_corpus(opts, log=pytest.fail)  # a clean cache is read silently
    for s in music.SPLITS:
        for x, y in zip(rolls[s], again[s], strict=True):
            np.testing.assert_array_equal(x, y)


def bad_pickles() -> list[tuple[object, str]]:
    good = SMALL["train"]
    return [
        ([1, 2, 3], "expected a dict with keys 'train', 'valid', 'test', got list"),
        ({"train": good, "valid": good}, r"missing key\(s\) \['test'\]"),
        ({**SMALL, "valid": []}, "'valid' must be a non-empty list of sequences"),
        ({**SMALL, "test": [[(60,)], []]}, r"test\[1\]: empty sequence"),
        ({**SMALL, "test": [[(60,), (20,)]]}, r"test\[0\], step 1: note 20 is outside 21-108"),
        ({**SMALL, "valid": [[(109,)]]}, r"valid\[0\], step 0: note 109 is outside"),
        ({**SMALL, "test": [[(60.5,)]]}, r"test\[0\], step 0: 60.5 is not a MIDI note"),
        ({**SMALL, "test": [[(60,), 61]]}, "step 1: a time step must be a list or tuple"),
        ({**SMALL, "train": ["abc"]}, r"train\[0\]: a sequence must be a list"),
    ]


@pytest.mark.parametrize("data, message", bad_pickles())
def test_bad_pickle_contents_name_the_file_and_the_problem(tmp_path, data, message):
    path = write_pickle(tmp_path / "bad.pickle", data)
    with pytest.raises(ValueError, match=message) as err:
        music.read_jsb_pickle(path)
    assert str(path) in str(err.value)


def test_missing_unreadable_and_unsafe_pickles(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.pickle: no such file"):
        music.read_jsb_pickle(tmp_path / "nope.pickle")
    junk = tmp_path / "junk.pickle"
    junk.write_bytes(b"this is not a pickle")
    with pytest.raises(ValueError, match="junk.pickle: not a readable pickle"):
        music.read_jsb_pickle(junk)
    unsafe = write_pickle(tmp_path / "unsafe.pickle", {"train": Path("x")})
    with pytest.raises(ValueError, match="unsafe.pickle: .*refusing to load pathlib"):
        music.read_jsb_pickle(unsafe)


@pytest.mark.parametrize("damage", ["array", "manifest", "missing_array"])
def test_a_corrupt_cache_is_reported_and_rebuilt(tmp_path, datasets, damage):
    path = write_pickle(tmp_path / "JSB_Chorales.pickle", SMALL)
    opts = music.MusicOptions.from_mapping({"source": "jsb_pickle", "path": str(path)})
    first, _ = music.load_corpus(opts)
    stem = music.corpus_stem(opts)
    if damage == "array":
        blob = bytearray(stem.with_suffix(".npz").read_bytes())
        blob[len(blob) // 2] ^= 0xFF
        stem.with_suffix(".npz").write_bytes(bytes(blob))
    elif damage == "manifest":
        stem.with_suffix(".json").write_text("{ not json")
    else:
        stem.with_suffix(".npz").unlink()
    messages: list[str] = []
    again, _ = music.load_corpus(opts, log=messages.append)
    assert any("corrupt" in m and str(stem) in m for m in messages), messages
    for s in music.SPLITS:
        for x, y in zip(first[s], again[s], strict=True):
            np.testing.assert_array_equal(x, y)
    assert load_manifest(stem)["sha256"]  # rewritten whole


def test_odyssey_data_build_then_info(tmp_path, datasets, capsys):
    path = write_pickle(tmp_path / "JSB_Chorales.pickle", SMALL)
    args = ["music", "source=jsb_pickle", f"path={path}"]
    assert odyssey_data(["info", *args]) == 2
    assert "not built" in capsys.readouterr().err
    assert odyssey_data(["build", *args]) == 0
    assert "built music" in capsys.readouterr().out
    assert odyssey_data(["info", *args, "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["source"] == "jsb_pickle"
    assert info["train"] == {"sequences": 2, "steps": 7, "mean_length": 3.5, "min_length": 3,
                             "max_length": 4}
    assert info["key_range"] == [21, 108]
    assert info["cache"].startswith(str(datasets))
    assert odyssey_data(["build", "music", "source=jsb_pickle",
                         f"path={tmp_path / 'absent.pickle'}"]) == 2
    assert "absent.pickle: no such file" in capsys.readouterr().err


def test_frequency_baseline_by_hand():
    train = [roll_of([(60,), (60, 64)])]
    test = [roll_of([(64,)])]
    base = music.frequency_baseline(train, test)
    p = np.full(88, 1 / 4)  # add-one: (0 + 1) / (2 + 2)
    p[60 - 21], p[64 - 21] = 3 / 4, 2 / 4
    y = roll_of([(64,)])[0]
    expected = -(y * np.log(p) + (1 - y) * np.log(1 - p)).sum()
    assert base["nll"] == pytest.approx(expected)
    assert base["frame_accuracy"] == 0.0  # predicts C4 (p 3/4), which is not played


# -- the music21 source -----------------------------------------------------------------------
FEW = ["bach/bwv269", "bach/bwv347", "bach/bwv153.1", "bach/bwv86.6", "bach/bwv267",
       "bach/bwv347"]  # a file listed twice is parsed once


def test_music21_source_on_a_few_chorales(datasets, monkeypatch):
    monkeypatch.setattr(music, "chorale_names", lambda: list(FEW))
    opts = music.MusicOptions.from_mapping({"workers": 1, "seed": 1})
    rolls, manifest = music.load_corpus(opts, log=lambda m: None)
    ids = [i for s in music.SPLITS for i in manifest["ids"][s]]
    assert sorted(ids) == sorted(set(FEW))
    assert [len(rolls[s]) for s in music.SPLITS] == [3, 1, 1]
    # bwv269 is in G major: it opens on G4 D4 B3 G2 and is moved up a fourth to C
    where = {i: (s, k) for s in music.SPLITS for k, i in enumerate(manifest["ids"][s])}
    s, k = where["bach/bwv269"]
    assert manifest["keys"][s][k] == "G major" and manifest["shift_semitones"][s][k] == 5
    np.testing.assert_array_equal(np.flatnonzero(rolls[s][k][0]) + 21, [48, 64, 67, 72])
    # the untransposed corpus reuses the parsed chorales (no second parse)
    monkeypatch.setattr(music, "parse_corpus", lambda *a, **k: pytest.fail("parsed again"))
    orig, _ = music.load_corpus(music.MusicOptions.from_mapping({"transpose": False, "seed": 1}),
                                log=lambda m: None)
    np.testing.assert_array_equal(np.flatnonzero(orig[s][k][0]) + 21, [43, 59, 62, 67])
    for split in music.SPLITS:
        for roll in rolls[split]:
            assert roll.dtype == np.uint8 and roll.shape[1] == 88 and len(roll) > 10
            assert roll.sum(1).max() <= 4  # four voices
    tiny = music.MusicOptions.from_mapping({"fractions": [0.98, 0.01, 0.01]})
    with pytest.raises(ValueError, match=r"5 chorales leave split\(s\) \['valid', 'test'\]"):
        music.load_corpus(tiny, log=lambda m: None)


@pytest.mark.slow
def test_full_music21_build_on_two_processes(datasets):
    opts = music.MusicOptions.from_mapping({"workers": 2})
    rolls, manifest = music.load_corpus(opts)
    counts = [len(rolls[s]) for s in music.SPLITS]
    assert 300 < sum(counts) <= 371
    assert counts[0] == round(0.6 * sum(counts))
    assert (manifest["iterator_entries"], manifest["files"]) == (371, 350)
    info = music.info({"name": "music", "workers": 2})
    assert info["frequency_baseline_test"]["nll"] > 0


def test_show_draws_training_rolls(tmp_path, datasets):
    path = write_pickle(tmp_path / "JSB_Chorales.pickle", SMALL)
    cfg = {"name": "music", "source": "jsb_pickle", "path": str(path)}
    out = music.show(cfg, n=2, out=tmp_path / "rolls.png")
    assert out.read_bytes()[:4] == b"\x89PNG"


def test_info_rebuilds_a_damaged_cache(tmp_path, datasets):
    path = write_pickle(tmp_path / "JSB_Chorales.pickle", SMALL)
    cfg = {"name": "music", "source": "jsb_pickle", "path": str(path)}
    music.build(cfg)
    stem = music.corpus_stem(music.options_from_config(cfg))
    stem.with_suffix(".json").write_text("{ not json")
    assert music.info(cfg)["test"]["sequences"] == 2


def test_concurrent_loads_build_once(tmp_path, datasets, monkeypatch):
    """Three loads at once build the corpus once. The first build goes on only once the
    other two loads are seen waiting for the build lock (their flock would block), however
    the threads are scheduled; without the lock they build too, and the first sees it."""
    import fcntl
    import threading

    path = write_pickle(tmp_path / "JSB_Chorales.pickle", SMALL)
    opts = music.MusicOptions.from_mapping({"source": "jsb_pickle", "path": str(path)})
    builds, blocked = [], []
    changed = threading.Condition()
    real_flock, real_build = fcntl.flock, music._build_pickle

    def flock(fd, operation):
        if operation == fcntl.LOCK_EX:
            try:
                return real_flock(fd, operation | fcntl.LOCK_NB)
            except BlockingIOError:  # held by another load: this one waits
                with changed:
                    blocked.append(1)
                    changed.notify_all()
        return real_flock(fd, operation)

    def build(o):
        with changed:
            builds.append(1)
            changed.notify_all()
            if len(builds) == 1:
                assert changed.wait_for(lambda: len(blocked) == 2 or len(builds) > 1, 120), \
                    "the other loads never reached the build lock"
        return real_build(o)

    monkeypatch.setattr(fcntl, "flock", flock)
    monkeypatch.setattr(music, "_build_pickle", build)
    results, errors = [], []

    def load():
        try:
            results.append(music.load_corpus(opts))
        except Exception as e:  # reported below, from the test's thread
            errors.append(e)

    workers = [threading.Thread(target=load) for _ in range(3)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert not errors, errors
    assert len(builds) == 1 and len(results) == 3
