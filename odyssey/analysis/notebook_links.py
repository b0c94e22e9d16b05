"""The "Result notebooks" section of report.md: links to results/<sweep>/notebooks/*.html."""

from __future__ import annotations

from pathlib import Path

HEADING = "## Result notebooks"


def notebook_section(sweep_dir: str | Path) -> list[str]:
    """Markdown lines linking each rendered notebook under sweep_dir/notebooks/ (none: [])."""
    pages = sorted((Path(sweep_dir) / "notebooks").glob("*.html"))
    if not pages:
        return []
    lines = [HEADING, "", "Executed on this sweep by `make notebooks`; open the HTML in a browser "
             "(no Jupyter needed), or the .ipynb in `make lab`.", ""]
    lines += [f"- [{p.stem}](notebooks/{p.name}) ([ipynb](notebooks/{p.stem}.ipynb))"
              for p in pages]
    return lines + [""]


def link_notebooks(report: str | Path) -> None:
    """Rewrite report.md's result-notebooks section (replacing an old one) from the HTML present."""
    path = Path(report)
    text = path.read_text()
    head, sep, tail = text.partition(HEADING)
    if sep:  # drop the old section: up to the next "## " heading or the end
        rest = tail.split("\n## ", 1)
        tail = "## " + rest[1] if len(rest) > 1 else ""
    else:
        head, tail = text, ""
    section = notebook_section(path.parent)
    body = head.rstrip("\n") + "\n\n" + "\n".join(section) if section else head
    path.write_text(body + ("\n" + tail if tail else ("" if body.endswith("\n") else "\n")))
