"""report.md's result-notebooks section follows the HTML present in results/<sweep>/notebooks/."""

from __future__ import annotations

from odyssey.analysis.notebook_links import HEADING, link_notebooks, notebook_section


def test_section_lists_the_rendered_pages_and_is_replaced_not_repeated(tmp_path):
    assert notebook_section(tmp_path) == []
    report = tmp_path / "report.md"
    report.write_text("# Sweep\n\n## Trials\n\ntable\n")
    link_notebooks(report)
    assert report.read_text() == "# Sweep\n\n## Trials\n\ntable\n"  # nothing rendered yet
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "notebooks" / "sweep.html").write_text("<html/>")
    link_notebooks(report)
    (tmp_path / "notebooks" / "variants.html").write_text("<html/>")
    link_notebooks(report)
    text = report.read_text()
    assert text.count(HEADING) == 1
    assert text.startswith("# Sweep\n\n## Trials\n\ntable\n")
    assert "- [sweep](notebooks/sweep.html) ([ipynb](notebooks/sweep.ipynb))" in text
    assert "- [variants](notebooks/variants.html)" in text


def test_a_section_in_the_middle_keeps_what_follows(tmp_path):
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "notebooks" / "sweep.html").write_text("<html/>")
    report = tmp_path / "report.md"
    report.write_text(f"# S\n\n{HEADING}\n\n- old\n\n## Later\n\ntext\n")
    link_notebooks(report)
    text = report.read_text()
    assert "- old" not in text and text.endswith("## Later\n\ntext\n")
    assert text.index(HEADING) < text.index("## Later")
