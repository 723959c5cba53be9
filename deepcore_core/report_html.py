"""The report as one self-contained HTML file: its Markdown tables and text, the figures
inlined as SVG, nothing fetched from elsewhere."""

from __future__ import annotations

import html
import re
from pathlib import Path

from deepcore_core._io import atomic_write

_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1200px; margin: 2em auto; color: #222; }
table { border-collapse: collapse; font-size: 0.85em; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
tr:nth-child(even) { background: #f6f6f6; }
figure { margin: 1.5em 0; } svg { max-width: 100%; height: auto; }
"""


def _inline(text: str) -> str:
    out = html.escape(text, quote=False)
    out = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", out)
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", out)


def _table(lines: list[str]) -> str:
    cells = [[c.strip() for c in ln.strip().strip("|").split("|")] for ln in lines]
    head, body = cells[0], cells[2:]
    rows = ["<tr>" + "".join(f"<th>{_inline(c)}</th>" for c in head) + "</tr>"]
    rows += ["<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in r) + "</tr>" for r in body]
    return "<table>\n" + "\n".join(rows) + "\n</table>"


def markdown_to_html(md: str) -> str:
    """The report's Markdown (headings, pipe tables, lists, paragraphs) as HTML."""
    blocks: list[str] = []
    lines = md.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("|"):
            j = i
            while j < len(lines) and lines[j].startswith("|"):
                j += 1
            blocks.append(_table(lines[i:j]))
            i = j
            continue
        if line.startswith("## "):
            blocks.append(f"<h2>{_inline(line[3:])}</h2>")
        elif line.startswith("- "):
            j = i
            while j < len(lines) and lines[j].startswith("- "):
                j += 1
            blocks.append(
                "<ul>" + "".join(f"<li>{_inline(x[2:])}</li>" for x in lines[i:j]) + "</ul>"
            )
            i = j
            continue
        elif line.startswith("network: "):
            blocks.append(f"<h3>{_inline(line)}</h3>")
        elif line.strip():
            blocks.append(f"<p>{_inline(line)}</p>")
        i += 1
    return "\n".join(blocks)


def write_html(md: str, svgs: list[Path], out_dir: Path) -> Path:
    """Write ``report.html``: the figures first, then the tables and text."""
    figures = []
    for path in svgs:
        text = path.read_text(encoding="utf-8")
        text = text[text.index("<svg") :]  # drop the XML prologue and doctype
        figures.append(f"<figure>{text}<figcaption>{html.escape(path.stem)}</figcaption></figure>")
    page = (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>deepcore report</title><style>{_STYLE}</style></head><body>\n"
        "<h1>deepcore report</h1>\n" + "\n".join(figures) + "\n" + markdown_to_html(md)
        + "\n</body></html>\n"
    )  # fmt: skip
    path = out_dir / "report.html"
    with atomic_write(path, "w") as fh:
        fh.write(page)
    return path
