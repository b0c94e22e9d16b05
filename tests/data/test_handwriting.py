"""The handwriting corpus: IAM-OnDB reader on a written fixture tree, the Hershey synthesiser,
the features, the cache and `odyssey-data build|info|show handwriting`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from odyssey.cli.data import main as data_cli
from odyssey.data import handwriting as hw
from odyssey.data.handwriting import hershey, iamondb
from odyssey.data.handwriting.ink import line_features, strokes_from_features
from odyssey.data.handwriting.text import CHARSET, LineText

from .iamondb_fixture import FORMS, write_tree

TINY = {"hershey": {"writers": {"train": 3, "valid": 2, "test": 2}, "lines_per_writer": 2,
                    "workers": 1, "max_chars": 20}}


@pytest.fixture
def iam_root(tmp_path: Path) -> Path:
    return write_tree(tmp_path / "IAM-OnDB")


@pytest.fixture
def datasets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "datasets"
    monkeypatch.setenv("ODYSSEY_DATASETS", str(folder))
    return folder


# -- IAM-OnDB reader ----------------------------------------------------------------------
def test_reads_strokes_flips_y_and_keeps_time(iam_root: Path) -> None:
    path = iam_root / "lineStrokes/a01/a01-000/a01-000u-01.xml"
    strokes = iamondb.read_line_strokes(path)
    assert [len(s) for s in strokes] == [15, 16, 17]  # line 1: three strokes
    first = strokes[0]
    np.testing.assert_allclose(first[:4, 0], [1000, 1007, 1014, 1021])
    np.testing.assert_allclose(first[:4, 1], [-1100, -1091, -1082, -1073])  # y up
    np.testing.assert_allclose(first[:4, 2], [710.0, 710.01, 710.02, 710.03])


def test_reads_csr_section_not_ocr(iam_root: Path) -> None:
    lines = iamondb.read_transcription(iam_root / "ascii/a01/a01-000/a01-000u.txt")
    assert lines == ["A MOVE to stop Mr. Gaitskell", "from nominating any more"]


def test_split_from_task_lists(iam_root: Path) -> None:
    lists = {"train": ["trainset.txt"], "valid": ["testset_v.txt", "testset_t.txt"],
             "test": ["testset_f.txt"]}
    out, report = iamondb.read_corpus(iam_root, lists=lists, log=lambda m: None)
    assert [line.id for line in out["train"]] == [
        "a01-000u-01", "a01-000u-02", "a01-000x-01", "a01-000x-02", "a01-000x-03",
        "a02-004u-01", "a02-004u-02"]
    assert [line.text for line in out["valid"]] == [
        "is to be made at a", "meeting of Labour MPs", "Though they may gather"]
    assert [line.id for line in out["test"]] == ["a02-000z-02"]
    assert out["test"][0].text == "some Left-wing support,"
    assert report["missing_list_entries"] == {}


def test_missing_list_entries_are_reported(iam_root: Path) -> None:
    (iam_root / "testset_f.txt").write_text("a02-000z-02\nz99-999z\n")
    logs: list[str] = []
    lists = {"train": ["trainset.txt"], "valid": ["testset_v.txt"], "test": ["testset_f.txt"]}
    _, report = iamondb.read_corpus(iam_root, lists=lists, log=logs.append)
    assert report["missing_list_entries"] == {"test": ["z99-999z"]}
    assert any("testset_f.txt" in m for m in logs)


def test_list_matching_nothing_is_an_error(iam_root: Path) -> None:
    (iam_root / "testset_f.txt").write_text("z99-999z\n")
    lists = {"train": ["trainset.txt"], "valid": ["testset_v.txt"], "test": ["testset_f.txt"]}
    with pytest.raises(iamondb.IamOnDBError, match="testset_f.txt"):
        iamondb.read_corpus(iam_root, lists=lists, log=lambda m: None)


def test_writer_disjoint_seeded_split(iam_root: Path) -> None:
    kw = dict(split="writers", writers_file="writers.txt", valid_fraction=0.25,
              test_fraction=0.25, log=lambda m: None)
    out, _ = iamondb.read_corpus(iam_root, seed=3, **kw)
    writers = {name: {line.writer for line in lines} for name, lines in out.items()}
    assert all(writers.values())
    assert not writers["train"] & writers["valid"]
    assert not writers["train"] & writers["test"]
    assert not writers["valid"] & writers["test"]
    assert sum(len(v) for v in out.values()) == sum(len(t) for _, t in FORMS.values())
    again, _ = iamondb.read_corpus(iam_root, seed=3, **kw)
    assert [x.id for x in again["test"]] == [x.id for x in out["test"]]
    # writer 10000 wrote two forms: both land in the same split
    homes = [name for name, lines in out.items()
             if any(line.id.startswith(("a01-000u", "a02-004u")) for line in lines)]
    assert len(homes) == 1


def test_writer_split_needs_a_writer_for_every_form(iam_root: Path) -> None:
    (iam_root / "writers.txt").write_text("a01-000u 10000\n")
    with pytest.raises(iamondb.IamOnDBError, match="writers.txt.*a01-000x"):
        iamondb.read_corpus(iam_root, split="writers", writers_file="writers.txt")
    with pytest.raises(iamondb.IamOnDBError, match="writers_file"):
        iamondb.read_corpus(iam_root, split="writers")


def test_malformed_xml_names_the_file(iam_root: Path) -> None:
    bad = iam_root / "lineStrokes/a01/a01-001/a01-001w-02.xml"
    bad.write_text("<WhiteboardCaptureSession><StrokeSet><Stroke>")
    lists = {"train": ["trainset.txt"], "valid": ["testset_v.txt"], "test": ["testset_f.txt"]}
    with pytest.raises(iamondb.IamOnDBError, match=r"a01-001w-02\.xml: malformed XML"):
        iamondb.read_corpus(iam_root, lists=lists, log=lambda m: None)
    out, report = iamondb.read_corpus(iam_root, lists=lists, skip_bad=True,
                                      log=lambda m: None)
    assert "a01-001w-02.xml" in report["skipped_files"][0]
    assert not [line for line in out["valid"] if line.id.startswith("a01-001w")]


def test_point_without_time_names_the_file(iam_root: Path) -> None:
    bad = iam_root / "lineStrokes/a01/a01-000/a01-000u-02.xml"
    bad.write_text(bad.read_text().replace(' time="720.00"', "", 1))
    with pytest.raises(iamondb.IamOnDBError, match=r"a01-000u-02\.xml: stroke 1"):
        iamondb.read_line_strokes(bad)


def test_line_without_transcription_names_the_file(iam_root: Path) -> None:
    extra = iam_root / "lineStrokes/a01/a01-000/a01-000u-03.xml"
    extra.write_text((iam_root / "lineStrokes/a01/a01-000/a01-000u-01.xml").read_text())
    lists = {"train": ["trainset.txt"], "valid": ["testset_v.txt"], "test": ["testset_f.txt"]}
    with pytest.raises(iamondb.IamOnDBError, match=r"a01-000u-03\.xml: line 3 has no "
                                                   r"transcription"):
        iamondb.read_corpus(iam_root, lists=lists, log=lambda m: None)


def test_transcription_without_csr_names_the_file(iam_root: Path) -> None:
    path = iam_root / "ascii/a01/a01-001/a01-001w.txt"
    path.write_text("OCR:\n\nis to be made at a\n")
    with pytest.raises(iamondb.IamOnDBError, match=r"a01-001w\.txt: no 'CSR:'"):
        iamondb.read_transcription(path)


# the fixture's lines have 1-2 points per character (IAM-OnDB's have about 20): too few to
# halve for CTC, so the reader's tests keep every point
ALL_POINTS = {"source": "iamondb", "subsample": 1}


def test_iamondb_corpus_is_cached_with_its_own_charset(iam_root: Path, datasets: Path) -> None:
    corpus, manifest = hw.load_corpus({**ALL_POINTS, "iamondb": {"root": str(iam_root)}})
    texts = [t for _, (_, lines) in FORMS.items() for t in lines]
    assert manifest["charset"] == "".join(sorted(set("".join(texts))))
    assert manifest["synthetic"] is False
    inputs, targets, ids = corpus["train"]
    assert len(inputs) == len(targets) == len(ids) == 7
    assert "".join(manifest["charset"][k - 1] for k in targets[0]) == \
        "A MOVE to stop Mr. Gaitskell"
    assert inputs[0].shape == (48, 4)
    assert list((datasets / "handwriting").glob("iamondb-*.json"))


def test_lines_too_short_for_ctc_are_dropped_and_counted(iam_root: Path, datasets: Path
                                                          ) -> None:
    path = iam_root / "lineStrokes/a01/a01-000/a01-000x-03.xml"
    strokes = iamondb.read_line_strokes(path)
    text = path.read_text()
    keep = text.split("<Stroke ")[0] + "<Stroke " + text.split("<Stroke ")[1].split(
        "</Stroke>")[0] + "</Stroke>\n  </StrokeSet>\n</WhiteboardCaptureSession>\n"
    path.write_text(keep)
    assert len(iamondb.read_line_strokes(path)[0]) == len(strokes[0]) == 15
    _, manifest = hw.load_corpus({**ALL_POINTS, "iamondb": {"root": str(iam_root)}})
    assert manifest["splits"]["train"]["dropped_lines"] == ["a01-000x-03"]
    assert manifest["splits"]["train"]["lines"] == 6


# -- features -----------------------------------------------------------------------------
def test_features_dx_dy_dt_pen_up_and_back() -> None:
    """The features of earlier versions (time since the previous point, every point)."""
    strokes = [np.array([[0.0, 0.0, 1.0], [1.0, 2.0, 1.1]]),
               np.array([[5.0, 2.0, 2.0], [5.0, 3.0, 2.05], [6.0, 3.0, 2.1]])]
    f = line_features(strokes, "time", subsample=1)
    np.testing.assert_allclose(f, [[0, 0, 0, 0], [1, 2, 0.1, 1], [4, 0, 0.9, 0],
                                   [0, 1, 0.05, 0], [1, 0, 0.05, 1]], atol=1e-6)
    fx = line_features(strokes, "x", subsample=1)
    np.testing.assert_allclose(fx[:, 2], [0, 1, 5, 5, 6])
    back = strokes_from_features(f)
    assert [len(s) for s in back] == [2, 3]
    np.testing.assert_allclose(back[1], [[5, 2], [5, 3], [6, 3]], atol=1e-6)
    with pytest.raises(ValueError, match="feature 'speed' unknown"):
        line_features(strokes, "speed")


def test_paper_features_time_since_stroke_start_on_every_second_point() -> None:
    """DESIGN §3: time since the current stroke began, each line halved; by hand below."""
    strokes = [np.array([[0.0, 0.0, 1.0], [1.0, 2.0, 1.1], [2.0, 2.0, 1.3]]),  # points 0-2
               np.array([[5.0, 2.0, 2.0], [5.0, 3.0, 2.05]]),                  # points 3-4
               np.array([[8.0, 0.0, 3.0]]),                                    # point 5
               np.array([[9.0, 1.0, 4.0], [9.5, 1.5, 4.2], [10.0, 1.0, 4.5]])]  # points 6-8
    # kept: points 0, 2, 4, 6, 8 = (0,0,1.0|s0), (2,2,1.3|s0), (5,3,2.05|s1), (9,1,4.0|s3),
    # (10,1,4.5|s3); strokes start at 1.0, 2.0, 3.0, 4.0; the one-point stroke 2 is dropped,
    # its pen lift is the one after point 4 (pen_up there), and the pen's path through it
    # is in the next dx, dy
    expected = [[0, 0, 0.0, 0],     # stroke 0 continues at kept point 2
                [2, 2, 0.3, 1],     # 1.3 - 1.0; stroke 0 ends before point 4
                [3, 1, 0.05, 1],    # 2.05 - 2.0; stroke 1 ends, stroke 3 comes next
                [4, -2, 0.0, 0],    # 4.0 - 4.0: the first point of stroke 3
                [1, 0, 0.5, 1]]     # 4.5 - 4.0; the line's last point
    f = line_features(strokes)  # the defaults are the paper's
    np.testing.assert_allclose(f, expected, atol=1e-6)
    assert f.dtype == np.float32
    # every point kept: the stroke time of each point, a pen lift after each stroke
    full = line_features(strokes, "stroke_time", subsample=1)
    np.testing.assert_allclose(full[:, 2], [0, 0.1, 0.3, 0, 0.05, 0, 0, 0.2, 0.5], atol=1e-6)
    np.testing.assert_array_equal(full[:, 3], [0, 0, 1, 0, 1, 1, 0, 0, 1])
    assert line_features(strokes, subsample=3).shape == (3, 4)  # points 0, 3, 6
    # halving keeps the pen lifts: the strokes rebuilt from the features are those kept
    back = strokes_from_features(f)
    np.testing.assert_allclose(np.concatenate(back), [[0, 0], [2, 2], [5, 3], [9, 1], [10, 1]],
                               atol=1e-6)
    assert [len(s) for s in back] == [2, 1, 2]
    for bad in (0, 1.5, True):
        with pytest.raises(ValueError, match="subsample must be an integer >= 1"):
            line_features(strokes, subsample=bad)


def test_each_feature_choice_is_its_own_cache() -> None:
    """A corpus built with one set of features is never read back for another."""
    stems = {hw.cache_stem(hw.resolve({"feature": f, "subsample": k}))
             for f in ("stroke_time", "time", "x") for k in (1, 2)}
    assert len(stems) == 6
    # today's defaults are the paper's; feature=time subsample=1 keeps the key (and so the
    # cache) of the corpora built before subsampling existed
    cfg = hw.resolve()
    assert (cfg.feature, cfg.subsample) == ("stroke_time", 2)
    assert "subsample" not in hw._key_options(hw.resolve({"feature": "time", "subsample": 1}))
    with pytest.raises(ValueError, match="subsample must be an integer >= 1"):
        hw.resolve({"subsample": 0})


def test_a_cache_with_other_options_is_rebuilt(datasets: Path) -> None:
    """A manifest whose options are not the requested ones (a cache copied in under the
    wrong name) is rebuilt, not read."""
    options = {**TINY, "hershey": {**TINY["hershey"], "lines_per_writer": 1}}
    _, manifest = hw.load_corpus({**options, "feature": "time", "subsample": 1})
    other = hw.cache_stem(hw.resolve(options))  # the paper's features
    for suffix in (".json", ".npz"):
        src = hw.cache_stem(hw.resolve({**options, "feature": "time", "subsample": 1}))
        other.with_suffix(suffix).write_bytes(src.with_suffix(suffix).read_bytes())
    corpus, again = hw.load_corpus(options)
    assert again["options"]["feature"] == "stroke_time" and again["subsample"] == 2
    assert again["splits"]["train"]["points"] < manifest["splits"]["train"]["points"]


def test_size_presets_fill_the_hershey_counts_and_key_the_cache() -> None:
    """size=standard keeps the counts (and so the cache key) the corpus had before sizes
    existed; size=quick is its own corpus; explicit counts override the preset."""
    standard, quick = hw.resolve(), hw.resolve({"size": "quick"})
    assert standard.size == "standard"
    key = hw._key_options(standard)
    assert "size" not in key
    assert key["hershey"]["writers"] == {"train": 100, "valid": 25, "test": 25}
    assert key["hershey"]["lines_per_writer"] == 30
    q = hw._key_options(quick)["hershey"]
    assert (q["writers"], q["lines_per_writer"]) == (hw.SIZES["quick"]["writers"],
                                                     hw.SIZES["quick"]["lines_per_writer"])
    assert hw.cache_stem(quick) != hw.cache_stem(standard)
    mixed = hw.resolve({"size": "quick", "hershey": {"writers": {"train": 7}}})
    assert dict(mixed.hershey.writers) == {**hw.SIZES["quick"]["writers"], "train": 7}
    with pytest.raises(ValueError, match="size='huge'; expected one of standard, quick"):
        hw.resolve({"size": "huge"})
    with pytest.raises(ValueError, match=r"hershey.lines_per_writer must be a positive "):
        hw.resolve({"hershey": {"lines_per_writer": 0}})
    with pytest.raises(ValueError, match=r"hershey.writers.valid must be a positive "):
        hw.resolve({"hershey": {"writers": {"valid": "many"}}})


# -- Hershey synthesiser --------------------------------------------------------------------
def test_glyphs_are_in_pen_coordinates() -> None:
    for font in hershey.FONTS:
        glyphs = hershey.font_glyphs(font)
        assert set(glyphs) == set(CHARSET)
        top = max(p[1] for s in glyphs["T"][0] for p in s)
        bottom = min(p[1] for s in glyphs["g"][0] for p in s)
        assert 0.9 < top < 1.1  # cap line at +1 cap height, y up
        assert bottom < -0.2  # descender below the base line


def test_unknown_font_is_an_error() -> None:
    with pytest.raises(ValueError, match="hershey.fonts: unknown Hershey font 'comic'"):
        hershey.font_glyphs("comic")


def test_writer_lines_are_seeded_and_well_formed() -> None:
    w1, a = hershey.writer_lines(7, "train", 2, "scripts", 3, 10, 30, None)
    w2, b = hershey.writer_lines(7, "train", 2, "scripts", 3, 10, 30, None)
    _, c = hershey.writer_lines(8, "train", 2, "scripts", 3, 10, 30, None)
    assert w1 == w2 and w1.font == "scripts" and w1.id == "train-002"
    assert [x.text for x in a] == [x.text for x in b] != [x.text for x in c]
    for x, y in zip(a, b, strict=True):
        for s, t in zip(x.strokes, y.strokes, strict=True):
            np.testing.assert_array_equal(s, t)
    for line in a:
        assert 10 <= len(line.text) <= 30 and set(line.text) <= set(CHARSET)
        times = np.concatenate([s[:, 2] for s in line.strokes])
        assert np.all(np.diff(times) > 0)  # time runs forward, pen lifts take time
        assert line.points > 3 * len(line.text)


def test_pen_lifts_separate_words() -> None:
    rng = np.random.default_rng(0)
    writer = hershey.sample_writer("w", "cursive", rng)
    line = hershey.draw_line("ab cd", writer, rng)
    assert len(line.strokes) >= 2  # at least one lift for the space
    feats = line_features(line.strokes)
    assert feats[:, 3].sum() == len(line.strokes)


def test_line_text_lengths_and_word_list(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    make = LineText(12, 30)
    texts = [make(rng) for _ in range(50)]
    assert all(len(t) <= 30 for t in texts)
    assert all(set(t) <= set(CHARSET) for t in texts)
    words = tmp_path / "words.txt"
    words.write_text("\n".join(f"w{'x' * k}" for k in range(150)))
    mine = LineText(5, 40, str(words))
    assert mine.words[0].startswith("w")
    short = tmp_path / "short.txt"
    short.write_text("one two")
    with pytest.raises(ValueError, match="short.txt: only 2 usable words"):
        LineText(5, 40, str(short))


def test_hershey_build_keeps_writers_apart_and_caches(datasets: Path) -> None:
    corpus, manifest = hw.load_corpus(TINY)
    splits = manifest["splits"]
    assert {k: v["lines"] for k, v in splits.items()} == {"train": 6, "valid": 4, "test": 4}
    writers = {k: set(v["line_writers"]) for k, v in splits.items()}
    assert len(writers["train"]) == 3
    assert not writers["train"] & writers["valid"] and not writers["train"] & writers["test"]
    assert not writers["valid"] & writers["test"]
    assert manifest["charset"] == CHARSET and manifest["synthetic"] is True
    for inputs, targets, _ in corpus.values():
        for x, y in zip(inputs, targets, strict=True):
            assert x.shape[1] == 4 and x.dtype == np.float32
            assert len(x) >= hw.ctc_min_length(y)
    stem = hw.cache_stem(hw.resolve(TINY))
    stamp = stem.with_suffix(".npz").stat().st_mtime_ns
    again, _ = hw.load_corpus(TINY)  # from the cache
    assert stem.with_suffix(".npz").stat().st_mtime_ns == stamp
    np.testing.assert_array_equal(again["test"][0][1], corpus["test"][0][1])
    # a corpus built with 2 processes is the same corpus
    parallel, _ = hw.load_corpus({"hershey": {**TINY["hershey"], "workers": 2}}, rebuild=True)
    np.testing.assert_array_equal(parallel["valid"][0][3], corpus["valid"][0][3])


def test_unknown_option_is_named() -> None:
    with pytest.raises(ValueError, match="unknown option.*hershey.colour"):
        hw.resolve({"hershey": {"colour": "red"}})
    with pytest.raises(ValueError, match="source 'timit' unknown"):
        hw.resolve({"source": "timit"})
    with pytest.raises(ValueError, match="needs iamondb.root"):
        hw.cache_stem(hw.resolve({"source": "iamondb"}))


# -- odyssey-data --------------------------------------------------------------------------
def test_cli_build_info_show(datasets: Path, tmp_path: Path,
                             capsys: pytest.CaptureFixture) -> None:
    args = ["hershey.writers.train=3", "hershey.writers.valid=2", "hershey.writers.test=2",
            "hershey.lines_per_writer=2", "hershey.workers=1"]
    assert data_cli(["info", "handwriting", *args, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["built"] is False
    assert data_cli(["build", "handwriting", *args]) == 0
    assert "built handwriting" in capsys.readouterr().out
    assert data_cli(["info", "handwriting", *args, "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["built"] and info["splits"]["train"]["lines"] == 6
    assert info["characters"] == len(CHARSET)
    out = tmp_path / "samples.png"
    assert data_cli(["show", "handwriting", *args, "--n", "4", "--out", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert data_cli(["build", "handwriting", "hershey.colour=red"]) == 2
    assert "hershey.colour" in capsys.readouterr().err
