"""A small IAM-OnDB tree in the corpus's own formats, written by the tests."""

from __future__ import annotations

from pathlib import Path

XML_HEAD = """<?xml version="1.0" encoding="ISO-8859-1"?>
<WhiteboardCaptureSession>
  <WhiteboardDescription>
    <SensorLocation corner="top_left"/>
    <DiagonallyOppositeCoords x="6512" y="1376"/>
    <VerticallyOppositeCoords x="966" y="1376"/>
    <HorizontallyOppositeCoords x="6512" y="787"/>
  </WhiteboardDescription>
  <StrokeSet>
"""
XML_TAIL = """  </StrokeSet>
</WhiteboardCaptureSession>
"""

# form id -> (writer id, transcription lines)
FORMS = {
    "a01-000u": ("10000", ["A MOVE to stop Mr. Gaitskell", "from nominating any more"]),
    "a01-000x": ("10001", ["A MOVE to stop Mr. Gaitskell", "from nominating any more",
                           "Labour life Peers"]),
    "a01-001w": ("10002", ["is to be made at a", "meeting of Labour MPs"]),
    "a02-000z": ("10003", ["Though they may gather", "some Left-wing support,"]),
    "a02-004u": ("10000", ["a large majority of", "Labour M Ps are likely"]),
}


def line_xml(form: str, line: int) -> str:
    """Two or three strokes of 15-17 points, with whiteboard y growing downwards."""
    t0 = 700.0 + 10 * line
    body = []
    for s in range(2 + line % 2):
        pts = [(1000 + 40 * s + 7 * k, 1100 - 9 * k + 3 * s, t0 + s * 0.5 + 0.01 * k)
               for k in range(15 + s)]
        body.append(f'    <Stroke colour="black" start_time="{pts[0][2]:.2f}" '
                    f'end_time="{pts[-1][2]:.2f}">')
        body += [f'      <Point x="{x}" y="{y}" time="{t:.2f}"/>' for x, y, t in pts]
        body.append("    </Stroke>")
    return XML_HEAD + "\n".join(body) + "\n" + XML_TAIL


def ascii_txt(lines: list[str]) -> str:
    """A form's transcription file: the OCR part, then the CSR part (used)."""
    ocr = [line.replace("Mr.", "Mr .") for line in lines]
    return "OCR:\n\n" + "\n".join(ocr) + "\n\nCSR:\n\n" + "\n".join(lines) + "\n"


def write_tree(root: Path) -> Path:
    """Write lineStrokes/, ascii/, the four task lists and a writers file under `root`."""
    for form, (_, lines) in FORMS.items():
        top, mid = form.split("-")[0], form[:-1]
        sdir = root / "lineStrokes" / top / mid
        adir = root / "ascii" / top / mid
        sdir.mkdir(parents=True, exist_ok=True)
        adir.mkdir(parents=True, exist_ok=True)
        for k in range(1, len(lines) + 1):
            (sdir / f"{form}-{k:02d}.xml").write_text(line_xml(form, k), encoding="latin-1")
        (adir / f"{form}.txt").write_text(ascii_txt(lines), encoding="latin-1")
    (root / "trainset.txt").write_text("a01-000u\na01-000x\na02-004u\n")
    (root / "testset_v.txt").write_text("a01-001w\n")
    (root / "testset_t.txt").write_text("a02-000z-01\n")
    (root / "testset_f.txt").write_text("a02-000z-02\n")
    (root / "writers.txt").write_text("".join(f"{f} {w}\n" for f, (w, _) in FORMS.items()))
    return root
