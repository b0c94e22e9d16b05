"""Reader for the IAM On-Line Handwriting Database (IAM-OnDB), from a folder the user owns.

The corpus (Liwicki & Bunke, ICDAR 2005) is licensed and cannot be downloaded here; point
`iamondb.root` at the unpacked folder, which holds

    lineStrokes/a01/a01-000/a01-000u-01.xml    one XML file per text line:
        <WhiteboardCaptureSession> ... <StrokeSet>
          <Stroke colour=.. start_time=.. end_time=..>
            <Point x="1073" y="1058" time="769.05"/> ...
    ascii/a01/a01-000/a01-000u.txt             one file per form; after the line "CSR:"
                                               comes the corrected transcription, one
                                               text line per line (the "OCR:" part above
                                               it is ignored)
    trainset.txt, testset_v.txt, testset_t.txt, testset_f.txt
                                               the task lists: one form id per line

Line file `<form>-NN.xml` is the NN-th (1-based) CSR line of `ascii/.../<form>.txt`.
Whiteboard y grows downwards; it is flipped so that y grows upwards as in pen coordinates.

Splits: from the task lists (`split: lists`, the IAM-OnDB-t2 protocol the paper used:
train = trainset, valid = testset_v + testset_t, test = testset_f), or a seeded
writer-disjoint split (`split: writers`) from a file mapping form ids to writer ids, since
the line files themselves do not name their writer.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from .ink import InkLine

LINE_FILE = re.compile(r"^(?P<form>.+)-(?P<num>\d+)$")


class IamOnDBError(ValueError):
    """A file of the IAM-OnDB folder that is missing or not in the expected format."""


def read_line_strokes(path: Path) -> list[np.ndarray]:
    """Strokes (n, 3: x, y up, time in s) of one lineStrokes XML file."""
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as e:
        raise IamOnDBError(f"{path}: malformed XML ({e})") from e
    except OSError as e:
        raise IamOnDBError(f"{path}: cannot read ({e})") from e
    stroke_set = root if root.tag == "StrokeSet" else root.find(".//StrokeSet")
    if stroke_set is None:
        raise IamOnDBError(f"{path}: no <StrokeSet> element (not a lineStrokes file?)")
    strokes = []
    for k, stroke in enumerate(stroke_set.iter("Stroke")):
        pts = []
        for point in stroke.iter("Point"):
            try:
                pts.append((float(point.attrib["x"]), -float(point.attrib["y"]),
                            float(point.attrib["time"])))
            except (KeyError, ValueError) as e:
                raise IamOnDBError(f"{path}: stroke {k + 1}: a <Point> needs numeric x, y and "
                                   f"time attributes, got {dict(point.attrib)}") from e
        if pts:
            strokes.append(np.array(pts, np.float64))
    if not strokes:
        raise IamOnDBError(f"{path}: no <Stroke> with <Point>s")
    return strokes


def read_transcription(path: Path) -> list[str]:
    """The CSR (corrected) text lines of one ascii/*.txt form file, in order."""
    try:
        text = path.read_text(encoding="latin-1")
    except OSError as e:
        raise IamOnDBError(f"{path}: cannot read transcription ({e})") from e
    lines = text.splitlines()
    starts = [k for k, line in enumerate(lines) if line.strip() == "CSR:"]
    if not starts:
        raise IamOnDBError(f"{path}: no 'CSR:' section (expected an IAM-OnDB ascii file)")
    out = [line.strip() for line in lines[starts[0] + 1:]]
    return [line for line in out if line]


def find_lines(root: Path) -> dict[str, list[tuple[int, Path]]]:
    """Form id -> [(line number, lineStrokes file)] for every line file under `root`."""
    folder = root / "lineStrokes"
    if not folder.is_dir():
        raise IamOnDBError(f"{root}: no lineStrokes/ folder (iamondb.root must be the "
                           "unpacked IAM-OnDB folder holding lineStrokes/ and ascii/)")
    forms: dict[str, list[tuple[int, Path]]] = {}
    for path in sorted(folder.rglob("*.xml")):
        m = LINE_FILE.match(path.stem)
        if not m:
            raise IamOnDBError(f"{path}: not named <form>-<line number>.xml")
        forms.setdefault(m["form"], []).append((int(m["num"]), path))
    if not forms:
        raise IamOnDBError(f"{folder}: no line XML files")
    return forms


def transcription_path(root: Path, line_file: Path, form: str) -> Path:
    """ascii/<same sub-folders as the line file>/<form>.txt."""
    rel = line_file.parent.relative_to(root / "lineStrokes")
    return root / "ascii" / rel / f"{form}.txt"


def read_form(root: Path, form: str, line_files: list[tuple[int, Path]], writer: str = ""
              ) -> list[InkLine]:
    """Every line of one form, each matched with its CSR transcription line."""
    ascii_path = transcription_path(root, line_files[0][1], form)
    if not ascii_path.exists():
        raise IamOnDBError(f"{line_files[0][1]}: no transcription file {ascii_path}")
    texts = read_transcription(ascii_path)
    lines = []
    for num, path in sorted(line_files):
        if not 1 <= num <= len(texts):
            raise IamOnDBError(f"{path}: line {num} has no transcription ({ascii_path} has "
                               f"{len(texts)} CSR lines)")
        lines.append(InkLine(id=path.stem, writer=writer or form, text=texts[num - 1],
                             strokes=read_line_strokes(path)))
    return lines


def read_list(path: Path) -> list[str]:
    """Form (or line) ids of a task list file, one per line; blank and # lines skipped."""
    try:
        entries = [line.strip() for line in path.read_text().splitlines()]
    except OSError as e:
        raise IamOnDBError(f"{path}: cannot read task list ({e})") from e
    return [e for e in entries if e and not e.startswith("#")]


def read_writers(path: Path) -> dict[str, str]:
    """Form id -> writer id from a two-column file ("a01-000u 10058", comma or space)."""
    mapping = {}
    try:
        rows = path.read_text().splitlines()
    except OSError as e:
        raise IamOnDBError(f"{path}: cannot read writers file ({e})") from e
    for k, row in enumerate(rows, 1):
        row = row.strip()
        if not row or row.startswith("#"):
            continue
        parts = row.replace(",", " ").split()
        if len(parts) != 2:
            raise IamOnDBError(f"{path}:{k}: expected 'form-id writer-id', got {row!r}")
        mapping[parts[0]] = parts[1]
    if not mapping:
        raise IamOnDBError(f"{path}: no 'form-id writer-id' rows")
    return mapping


def select(forms: dict[str, list[tuple[int, Path]]], entries: Iterable[str], source: Path
           ) -> tuple[dict[str, list[tuple[int, Path]]], list[str]]:
    """The line files named by list entries (form ids or line ids); also the unmatched ones."""
    by_line = {p.stem: (form, (n, p)) for form, files in forms.items() for n, p in files}
    chosen: dict[str, list[tuple[int, Path]]] = {}
    missing = []
    for entry in entries:
        if entry in forms:
            chosen.setdefault(entry, []).extend(f for f in forms[entry]
                                                 if f not in chosen.get(entry, []))
        elif entry in by_line:
            form, item = by_line[entry]
            if item not in chosen.setdefault(form, []):
                chosen[form].append(item)
        else:
            missing.append(entry)
    return chosen, missing


def read_corpus(root: str | Path, *, split: str = "lists",
                lists: dict[str, list[str]] | None = None, writers_file: str | None = None,
                valid_fraction: float = 0.2, test_fraction: float = 0.2, seed: int = 0,
                skip_bad: bool = False, log: Callable[[str], None] = print,
                progress: Callable[[Iterable], Iterable] = lambda it: it
                ) -> tuple[dict[str, list[InkLine]], dict]:
    """Lines per split ("train", "valid", "test") and a report of what was read or skipped."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise IamOnDBError(f"iamondb.root {root} is not a folder")
    forms = find_lines(root)
    report: dict = {"root": str(root), "split": split, "missing_list_entries": {},
                    "skipped_files": []}
    if split == "lists":
        if not lists:
            raise IamOnDBError("iamondb.lists must name the task list files of each split")
        chosen = {}
        for name in ("train", "valid", "test"):
            files = lists.get(name) or []
            if not files:
                raise IamOnDBError(f"iamondb.lists.{name}: no task list file given")
            entries = []
            for f in files:
                path = root / f
                entries += read_list(path)
            chosen[name], missing = select(forms, entries, root)
            if missing:
                report["missing_list_entries"][name] = missing
                log(f"iamondb: {len(missing)} entries of {', '.join(files)} have no line "
                    f"files (e.g. {', '.join(missing[:3])})")
            if not chosen[name]:
                raise IamOnDBError(f"{', '.join(str(root / f) for f in files)}: no entry matches a "
                                   f"line file under {root / 'lineStrokes'}")
        writer_of: dict[str, str] = {}
    elif split == "writers":
        if not writers_file:
            raise IamOnDBError("iamondb.split=writers needs iamondb.writers_file: a file of "
                               "'form-id writer-id' rows (the line files do not name writers)")
        path = Path(writers_file).expanduser()
        writer_of = read_writers(path if path.is_absolute() else root / path)
        unknown = sorted(f for f in forms if f not in writer_of)
        if unknown:
            raise IamOnDBError(f"{writers_file}: no writer for form(s) {', '.join(unknown[:5])}"
                               f"{' ...' if len(unknown) > 5 else ''}")
        chosen = writer_split(forms, writer_of, valid_fraction, test_fraction, seed)
    else:
        raise IamOnDBError(f"iamondb.split {split!r} unknown; expected 'lists' or 'writers'")

    out: dict[str, list[InkLine]] = {}
    for name in ("train", "valid", "test"):
        lines = []
        for form in progress(sorted(chosen[name])):
            try:
                lines += read_form(root, form, chosen[name][form], writer_of.get(form, ""))
            except IamOnDBError as e:
                if not skip_bad:
                    raise
                report["skipped_files"].append(str(e))
                log(f"iamondb: skipped form {form}: {e}")
        out[name] = lines
    return out, report


def writer_split(forms: dict[str, list[tuple[int, Path]]], writer_of: dict[str, str],
                 valid_fraction: float, test_fraction: float, seed: int
                 ) -> dict[str, dict[str, list[tuple[int, Path]]]]:
    """Forms per split such that no writer appears in two splits (seeded shuffle of writers)."""
    if not (0 < valid_fraction < 1 and 0 < test_fraction < 1
            and valid_fraction + test_fraction < 1):
        raise IamOnDBError("iamondb.valid_fraction and test_fraction must be in (0, 1) with a "
                           "sum below 1")
    writers = sorted({writer_of[f] for f in forms})
    if len(writers) < 3:
        raise IamOnDBError(f"a writer-disjoint split needs at least 3 writers, got {len(writers)}")
    order = np.random.default_rng(seed).permutation(len(writers))
    n_valid = max(1, round(valid_fraction * len(writers)))
    n_test = max(1, round(test_fraction * len(writers)))
    groups = {"valid": order[:n_valid], "test": order[n_valid:n_valid + n_test],
              "train": order[n_valid + n_test:]}
    split_of = {writers[i]: name for name, idx in groups.items() for i in idx}
    out: dict[str, dict[str, list[tuple[int, Path]]]] = {"train": {}, "valid": {}, "test": {}}
    for form, files in forms.items():
        out[split_of[writer_of[form]]][form] = files
    return out
