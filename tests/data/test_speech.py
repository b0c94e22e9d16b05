"""The speech corpus: TIMIT reader on a tree written here, features/labels, flite corpus."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from odyssey.cli.data import main as odyssey_data
from odyssey.config import load_group_config
from odyssey.data import features, flite, speech, timit
from odyssey.data.phones import FLITE, FOLDED39, TIMIT61, fold39, fold_table

RATE = 16000


def utterance_audio(rng: np.random.Generator, phones: list[str], seg: int = 1600
                    ) -> tuple[np.ndarray, list[tuple[int, int, str]]]:
    """Audio with one 0.1 s segment per phone: quiet noise for h#/pau, loud tone otherwise."""
    parts, segments = [], []
    for k, ph in enumerate(phones):
        t = np.arange(seg) / RATE
        if ph in ("h#", "pau"):
            parts.append(rng.normal(0, 3, seg))
        else:
            parts.append(8000 * np.sin(2 * np.pi * (300 + 40 * k) * t) + rng.normal(0, 3, seg))
        segments.append((k * seg, (k + 1) * seg, ph))
    return np.concatenate(parts), segments


def write_utterance(folder: Path, stem: str, rng: np.random.Generator,
                    phones: list[str], case=str.upper) -> None:
    x, segments = utterance_audio(rng, phones)
    timit.write_sphere(folder / case(f"{stem}.WAV"), x)
    timit.write_phn(folder / case(f"{stem}.PHN"), segments)


# speaker -> (part, dialect region); fcjf0/mdab0/faks0 are a training, a core-test and a
# development speaker; mbdg1 is a test speaker in neither list (left out of the split).
TREE = {"fcjf0": ("TRAIN", "DR1"), "mrcz0": ("TRAIN", "DR2"), "mdab0": ("TEST", "DR1"),
        "faks0": ("TEST", "DR1"), "mzzz9": ("TEST", "DR2")}
SENTENCES = ["SA1", "SA2", "SI1027", "SX127", "SX307"]
PHONES = ["h#", "sh", "iy", "hv", "ae", "dcl", "d", "q", "y", "er"]


def make_tree(root: Path, case=str.upper) -> Path:
    """A TIMIT tree in the standard layout: 5 speakers x 5 sentences, SPHERE + PHN."""
    rng = np.random.default_rng(0)
    for speaker, (part, dr) in TREE.items():
        folder = root / case(part) / case(dr) / case(speaker)
        for k, sent in enumerate(SENTENCES):
            write_utterance(folder, sent, rng, PHONES[: 4 + k] + ["h#"], case)
    return root


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    return make_tree(tmp_path_factory.mktemp("timit") / "TIMIT")


@pytest.fixture
def datasets(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("ODYSSEY_DATASETS", str(tmp_path / "datasets"))
    return tmp_path / "datasets"


# -- phones ----------------------------------------------------------------------------------
def test_inventories_and_folding():
    assert len(TIMIT61) == 61 and len(set(TIMIT61)) == 61
    assert len(FOLDED39) == 39 and "sil" in FOLDED39
    assert fold39("pcl") == fold39("h#") == fold39("pau") == "sil"
    assert fold39("ix") == "ih" and fold39("zh") == "sh" and fold39("q") is None
    table = fold_table(TIMIT61)
    assert (table >= 0).sum() == 60 and table[TIMIT61.index("q")] == -1
    assert set(table[table >= 0]) == set(range(39))  # every folded class is reached
    assert (fold_table(FLITE) >= 0).all()
    with pytest.raises(ValueError, match="unknown phone"):
        fold39("xx")


# -- SPHERE and PHN --------------------------------------------------------------------------
@pytest.mark.parametrize("order", ["01", "10"])
def test_sphere_round_trip(tmp_path, order):
    x = np.array([0, 1, -1, 32767, -32768, 1234], np.float64)
    p = timit.write_sphere(tmp_path / "a.wav", x, byte_format=order)
    assert p.stat().st_size == 1024 + 2 * len(x)
    y, rate = timit.read_wav(p)
    assert rate == RATE and np.array_equal(x, y)


def test_riff_wav_is_read_too(tmp_path):
    from scipy.io import wavfile

    x = np.arange(-50, 50, dtype=np.int16)
    wavfile.write(tmp_path / "a.wav", RATE, x)
    y, rate = timit.read_wav(tmp_path / "a.wav")
    assert rate == RATE and np.array_equal(y, x)


def _sphere_with(tmp_path: Path, replace: tuple[bytes, bytes], body: bytes = b"\0" * 20) -> Path:
    p = timit.write_sphere(tmp_path / "x.wav", np.zeros(10))
    raw = p.read_bytes()[:1024].replace(*replace)
    p.write_bytes(raw[:1024].ljust(1024, b" ") + body)
    return p


def test_malformed_sphere_errors_name_the_file(tmp_path):
    p = tmp_path / "junk.wav"
    p.write_bytes(b"hello world" * 10)
    with pytest.raises(timit.TimitFormatError, match="junk.wav.*not a NIST SPHERE"):
        timit.read_wav(p)
    # a shorten-compressed file, as on the original TIMIT CD-ROM
    p = _sphere_with(tmp_path, (b"end_head", b"sample_coding -s26 pcm,embedded-shorten-v2.00"
                                b"\nend_head"))
    with pytest.raises(timit.TimitFormatError, match=r"x\.wav.*shorten-compressed.*sph2pipe"):
        timit.read_wav(p)
    p = _sphere_with(tmp_path, (b"end_head", b"; nohead"))
    with pytest.raises(timit.TimitFormatError, match=r"x\.wav.*end_head"):
        timit.read_wav(p)
    p = _sphere_with(tmp_path, (b"sample_count -i 10", b"sample_count -i 99"))
    with pytest.raises(timit.TimitFormatError, match=r"x\.wav.*promises 99 samples"):
        timit.read_wav(p)
    p = _sphere_with(tmp_path, (b"sample_n_bytes -i 2", b"sample_n_bytes -i 1"))
    with pytest.raises(timit.TimitFormatError, match=r"x\.wav.*16-bit"):
        timit.read_wav(p)
    p = _sphere_with(tmp_path, (b"channel_count -i 1", b"channel_count -x 1"))
    with pytest.raises(timit.TimitFormatError, match=r"x\.wav.*bad SPHERE header field"):
        timit.read_wav(p)


@pytest.mark.parametrize("text,match", [
    ("0 100 h#\n100 50 iy\n", "end 50 not after start 100"),
    ("0 100 h#\n100 200 zz\n", "unknown phone 'zz'"),
    ("0 100\n", "expected 'start end phone'"),
    ("0 1x0 h#\n", "must be integers"),
    ("", "no phone segments"),
])
def test_malformed_phn_errors_name_the_file(tmp_path, text, match):
    p = tmp_path / "SX1.PHN"
    p.write_text(text)
    with pytest.raises(timit.TimitFormatError, match=rf"SX1\.PHN.*{match}"):
        timit.read_phn(p)


def test_phn_reads_segments(tmp_path):
    p = timit.write_phn(tmp_path / "a.PHN", [(0, 2400, "h#"), (2400, 3000, "Sh")])
    assert timit.read_phn(p) == [(0, 2400, "h#"), (2400, 3000, "sh")]


# -- the tree and the split ------------------------------------------------------------------
def test_split_of_the_tree(tree):
    splits = timit.list_utterances(tree)
    assert {s: len(u) for s, u in splits.items()} == {"train": 6, "valid": 3, "test": 3}
    assert {u.speaker for u in splits["train"]} == {"fcjf0", "mrcz0"}
    assert {u.speaker for u in splits["valid"]} == {"faks0"}
    assert {u.speaker for u in splits["test"]} == {"mdab0"}
    everything = [u for us in splits.values() for u in us]
    assert not [u for u in everything if u.sentence.startswith("sa")]  # SA left out
    assert {u.sentence for u in splits["test"]} == {"si1027", "sx127", "sx307"}
    assert splits["train"][0].id == "fcjf0_si1027" and splits["train"][0].dialect == "dr1"


def test_split_lists_are_the_standard_ones():
    assert len(timit.CORE_TEST_SPEAKERS) == 24 and len(timit.DEV_SPEAKERS) == 50
    assert sum(s.startswith("f") for s in timit.CORE_TEST_SPEAKERS) == 8  # 1 woman per DR
    assert timit.FULL_SIZES == {"train": 3696, "valid": 400, "test": 192}


def test_lower_case_tree_and_missing_files(tmp_path):
    root = make_tree(tmp_path / "t", case=str.lower)
    assert len(timit.list_utterances(root)["train"]) == 6
    (root / "train" / "dr1" / "fcjf0" / "sx127.phn").unlink()
    with pytest.raises(FileNotFoundError, match=r"sx127\.wav: no \.PHN"):
        timit.list_utterances(root)
    with pytest.raises(FileNotFoundError, match="no TRAIN/ and TEST/"):
        timit.list_utterances(tmp_path)


# -- features and labels ---------------------------------------------------------------------
def test_frame_labels_follow_the_frame_centre():
    # centres at 12.5, 22.5, 32.5, ... ms; phones end at 20, 30 (exclusive) and 52.5 ms
    y = features.frame_labels(10, np.array([0.020, 0.030, 0.0525]), np.array([1, 2, 3]), 1.0)
    assert y.tolist() == [1, 2, 3, 3]  # 52.5 ms is not inside [30, 52.5): cut
    y = features.frame_labels(10, np.array([0.020, 0.5]), np.array([1, 2]), duration=0.04)
    assert y.tolist() == [1, 2, 2]  # frames past the audio are cut


def test_features_shape_and_deltas():
    rng = np.random.default_rng(1)
    x = rng.normal(0, 1000, RATE)  # 1 s
    f = features.mfcc39(x)
    assert f.shape == (99, 39) and f.dtype == np.float32 and np.isfinite(f).all()
    # column 0 is the log frame energy: louder audio, higher energy, same cepstrum shape
    g = features.mfcc39(4 * x)
    assert np.allclose(g[:, 0] - f[:, 0], np.log(16), atol=1e-3)
    assert np.allclose(g[:, 1:13], f[:, 1:13], atol=1e-3)
    with pytest.raises(ValueError, match="expected 16000 Hz"):
        features.mfcc39(x, 8000)


def test_features_and_labels_are_aligned_on_timit(tree):
    """Loud (tone) phones get high energy frames, quiet h# low ones, frame by frame."""
    utt = timit.list_utterances(tree)["train"][0]  # h# sh iy hv ae dcl h#, 0.1 s each
    _, x, y = speech._timit_job((utt.id, str(utt.wav), str(utt.phn)))
    assert len(x) == len(y) == int((7 * 0.1 - 0.0125) / 0.01) + 1
    loud = np.array([TIMIT61[k] != "h#" for k in y])
    centre = features.frame_centres(len(y))
    # frames whose window lies wholly inside one segment
    inside = np.abs(((centre + 0.05) % 0.1) - 0.05) > 0.0125
    energy = x[:, 0]
    assert energy[loud & inside].min() > energy[~loud & inside].max() + 5
    assert TIMIT61[y[0]] == TIMIT61[y[-1]] == "h#" and TIMIT61[y[10]] == "sh"


# -- building through odyssey-data -----------------------------------------------------------
def test_build_and_info_timit(tree, datasets, capsys):
    assert odyssey_data(["info", "speech", "source=timit", f"path={tree}"]) == 2
    assert "not built" in capsys.readouterr().err
    assert odyssey_data(["build", "speech", "source=timit", f"path={tree}", "workers=2"]) == 0
    out = capsys.readouterr()
    assert "train 6 utt" in out.out and "the full corpus gives train 3696" in out.out
    manifest_path = next((datasets / "speech").glob("timit-*.json"))
    manifest = json.loads(manifest_path.read_text())
    assert manifest["inventory"] == list(TIMIT61) and manifest["complete_corpus"] is False
    assert manifest["speakers"] == {"train": ["fcjf0", "mrcz0"], "valid": ["faks0"],
                                    "test": ["mdab0"]}
    assert odyssey_data(["info", "speech", "source=timit", f"path={tree}", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["train"]["utterances"] == 6 and info["test"]["speakers"] == 1
    inv = info["phone_inventory"]
    assert inv["classes"] == 61 and inv["majority_class"] == "h#"
    assert abs(sum(inv["train_frame_fraction"].values()) - 1) < 1e-3
    assert 0 < info["test"]["majority_class_error"] < 1
    png = datasets / "fig.png"
    assert odyssey_data(["show", "speech", "source=timit", f"path={tree}", "--n", "2",
                         "--out", str(png)]) == 0
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_bad_config_and_bad_files_are_reported(tree, tmp_path, datasets, capsys):
    assert odyssey_data(["build", "speech", "source=timit"]) == 2
    assert "needs path=" in capsys.readouterr().err
    assert odyssey_data(["build", "speech", "source=mp3"]) == 2
    assert "source='mp3'" in capsys.readouterr().err
    with pytest.raises(ValueError, match="unknown key"):
        speech.speech_options({"sorce": "flite"})
    with pytest.raises(ValueError, match=r"utterances\.train must be a positive integer"):
        speech.speech_options({"utterances": {"train": 0}})
    with pytest.raises(ValueError, match=r"speakers\.test=10 exceeds utterances\.test=5"):
        speech.speech_options({"utterances": {"test": 5}})
    broken = make_tree(tmp_path / "broken")
    (broken / "TEST" / "DR1" / "MDAB0" / "SX127.PHN").write_text("0 10 h#\n10 5 iy\n")
    assert odyssey_data(["build", "speech", "source=timit", f"path={broken}",
                         "workers=1"]) == 2
    assert "SX127.PHN:2: segment end 5 not after start 10" in capsys.readouterr().err


def test_flite_missing_says_how_to_install(monkeypatch):
    monkeypatch.setattr(flite.shutil, "which", lambda name: None)
    with pytest.raises(flite.FliteError, match="apt-get install flite"):
        flite.flite_binary()


def test_psdur_parsing():
    phones, ends = flite.parse_psdur("pau:0.220 dh:0.254 ax:0.304 pau:0.5 \n", "ctx")
    assert phones == ["pau", "dh", "ax", "pau"] and np.allclose(ends, [0.22, 0.254, 0.304, 0.5])
    with pytest.raises(flite.FliteError, match="ctx.*'dx'"):
        flite.parse_psdur("pau:0.1 dx:0.2", "ctx")
    with pytest.raises(flite.FliteError, match="ctx: unreadable"):
        flite.parse_psdur("pau:zero", "ctx")


def test_flite_plan_is_deterministic_with_disjoint_speakers():
    words = [f"w{c}ord" for c in "abcdefghijklmnopqrstuvwxyz"] * 4
    a = flite.plan({"train": 20, "valid": 6, "test": 6}, {"train": 10, "valid": 3, "test": 3},
                   list(flite.VOICES), words, seed=3)
    b = flite.plan({"train": 20, "valid": 6, "test": 6}, {"train": 10, "valid": 3, "test": 3},
                   list(flite.VOICES), words, seed=3)
    assert a == b
    speakers, jobs = a
    names = {s: {p.name for p in speakers[s]} for s in speakers}
    assert not names["train"] & names["test"] and not names["train"] & names["valid"]
    assert {p.voice for p in speakers["train"]} == set(flite.VOICES)
    for s, js in jobs.items():
        for utt_id, spk, text, _ in js:
            assert spk["name"] in names[s] and utt_id.startswith(spk["name"])
            assert flite.WORDS_RANGE[0] <= len(text.split()) <= flite.WORDS_RANGE[1]
    for p in speakers["train"]:
        assert flite.RATE_RANGE[0] <= p.duration_stretch <= flite.RATE_RANGE[1]


# -- the synthetic corpus --------------------------------------------------------------------
TINY = ["source=flite", "utterances.train=6", "utterances.valid=3", "utterances.test=3",
        "speakers.train=3", "speakers.valid=1", "speakers.test=1", "voices=[kal16,slt,kal]",
        "workers=1"]


@pytest.mark.requires("flite")
def test_flite_corpus_builds_with_exact_labels(datasets, capsys):
    assert odyssey_data(["build", "speech", *TINY]) == 0
    manifest = json.loads(next((datasets / "speech").glob("flite-*.json")).read_text())
    assert manifest["inventory"] == list(FLITE)
    assert {s: manifest["splits"][s]["utterances"] for s in speech.SPLITS} == \
        {"train": 6, "valid": 3, "test": 3}
    assert not set(manifest["speakers"]["train"]) & set(manifest["speakers"]["test"])
    assert manifest["versions"]["flite"].startswith("flite-")
    opts = speech.speech_options(load_group_config("task", "speech", TINY))
    arrays, _ = speech.load_corpus(opts)
    pau = FLITE.index("pau")
    for x, y in zip(arrays["train_x"], arrays["train_y"], strict=True):
        assert x.shape == (len(y), 39) and np.isfinite(x).all()
        assert y[0] == pau and y[-1] == pau  # flite starts and ends with a pause
        # energy is low in pauses and high in speech: the labels sit on the audio
        assert np.median(x[y == pau, 0]) < np.median(x[y != pau, 0]) - 3
    # a second build finds the cache
    capsys.readouterr()
    assert odyssey_data(["build", "speech", *TINY]) == 0
    assert "building" not in capsys.readouterr().out


def test_quick_size_is_its_own_corpus():
    """size=quick (experiment=quick's) resolves to its counts and caches apart from small."""
    small, quick = speech.speech_options(), speech.speech_options({"size": "quick"})
    assert quick.utterances == {"train": 200, "valid": 50, "test": 50}
    assert quick.speakers == {"train": 20, "valid": 5, "test": 5}
    assert small.utterances == {"train": 1000, "valid": 200, "test": 200}
    assert quick.cache_key() != small.cache_key()
    assert quick.stem() != small.stem() and quick.stem().name.startswith("flite-quick-")
    fewer = speech.speech_options({"size": "quick", "utterances": {"train": 100}})
    assert fewer.utterances == {"train": 100, "valid": 50, "test": 50}
    with pytest.raises(ValueError, match="size='tiny'; expected one of small, quick, timit"):
        speech.speech_options({"size": "tiny"})
