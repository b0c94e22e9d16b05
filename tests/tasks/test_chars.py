"""The next-character tasks arith, xml and lm: data, scoring positions, metrics, readers."""

import re
import xml.etree.ElementTree as ET

import numpy as np
import pytest
import torch

from odyssey.data import charseq
from odyssey.tasks import load_task
from odyssey.tasks.chars import IGNORE, encode


def test_arith_problems_are_right_and_seeded():
    problems = charseq.arith_split(200, 3, max_digits=6, distractors=0.5)
    assert problems == charseq.arith_split(200, 3, max_digits=6, distractors=0.5)
    assert any(re.search("[a-k]", p) for p, _ in problems)
    for text, eq in problems:
        question, answer = text[:eq], text[eq + 1:-1]
        a, op, b = re.fullmatch(r"(\d+)([+-])(\d+)", re.sub("[a-k]", "", question)).groups()
        assert int(answer) == (int(a) + int(b) if op == "+" else int(a) - int(b))


def test_arith_scores_only_the_answer():
    task = load_task("arith", n_train=5, n_valid=5, n_test=5, seed=1)
    text, eq = charseq.arith_split(5, 3)[0]  # seed*3 + 0 for the train split
    y = task.splits["train"].targets[0]
    scored = np.flatnonzero(y != IGNORE)
    assert scored[0] == eq and len(scored) == len(text) - 1 - eq
    assert "".join(task.alphabet[k] for k in y[scored]) == text[eq + 1:]


def test_xml_documents_are_valid_xml():
    for doc in charseq.xml_split(100, 0, max_length=80):
        assert len(doc) <= 80
        ET.fromstring(doc)


def test_metrics_of_a_perfect_and_a_wrong_predictor():
    task = load_task("xml", n_train=4, n_valid=3, n_test=3)
    batch = next(task.batches("valid", 3))
    perfect = torch.where(batch.targets[..., None] == torch.arange(task.output_size),
                          10.0, -10.0)
    scores = task.score(perfect, batch)
    assert scores["error"][0] == 0 and scores["accuracy"][0] == scores["accuracy"][1]
    assert task.score(-perfect, batch)["error"][0] == scores["error"][1]


def test_lm_on_pydoc_text_and_its_metric():
    task = load_task("lm", max_chars=3000, length=50, min_count=2)
    assert task.metric == "nll" and task.splits["train"].frames > 2000
    assert 0 < task.baseline("valid") < np.log(task.output_size) + 1


def _ptb(folder):
    folder.mkdir()
    for split, lines in {"train": ["the cat sat on the mat", " a <unk> dog ran "],
                         "valid": ["the dog sat"], "test": ["a cat ran"]}.items():
        (folder / f"ptb.{split}.txt").write_text("\n".join(lines) + "\n")
    return folder


def test_ptb_reader_on_fixture_files(tmp_path):
    folder = _ptb(tmp_path / "ptb")
    data = charseq.read_ptb(folder)
    assert data["train"] == ["the cat sat on the mat", "a <unk> dog ran"]
    task = load_task("lm", source="ptb", path=str(folder), length=20, min_count=1)
    assert task.splits["valid"].frames == len("the dog sat") - 1


def test_ptb_missing_file_names_it(tmp_path):
    folder = _ptb(tmp_path / "ptb")
    (folder / "ptb.test.txt").unlink()
    with pytest.raises(FileNotFoundError, match="ptb.test.txt"):
        load_task("lm", source="ptb", path=str(folder))


@pytest.mark.parametrize("task, options, message", [
    ("arith", {"n_train": 0}, "n_train must be an integer >= 1"),
    ("arith", {"min_digits": 5, "max_digits": 2}, "min_digits <= max_digits"),
    ("lm", {"source": "web"}, "source must be one of"),
    ("lm", {"source": "file"}, "needs path"),
])
def test_bad_options_are_one_line_errors(task, options, message):
    with pytest.raises(ValueError, match=message):
        load_task(task, **options)


def test_encode_maps_unknown_characters_to_the_last_symbol():
    x, y = encode("ab?", "ab\x00")
    assert x.shape == (2, 3) and y.tolist() == [1, 2]
