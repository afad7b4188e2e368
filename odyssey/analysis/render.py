"""One document, two renderings: self-contained HTML (figures inlined) and Markdown (figures linked).

Every piece of text passes through one escaping function per format: study, task and variant
names come from whoever made the storage.
"""

from __future__ import annotations

import base64
import html
import math
import numbers
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Heading:
    text: str
    level: int = 2


@dataclass(frozen=True)
class Text:
    text: str


@dataclass(frozen=True)
class Table:
    frame: pd.DataFrame


@dataclass(frozen=True)
class Image:
    path: Path  # relative to the report's folder
    caption: str
    png: bytes = field(repr=False)  # the figure itself: inlined in the HTML, written to `path` beside it


Block = Heading | Text | Table | Image

CSS = """
body { font-family: system-ui, sans-serif; max-width: 72rem; margin: 2rem auto; padding: 0 1rem; color: #222; }
table { border-collapse: collapse; margin: 0.5rem 0 1.5rem; font-size: 0.85rem; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.5rem; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: 1rem 0 2rem; } figure img { max-width: 100%; } figcaption { color: #555; font-size: 0.85rem; }
"""


def cell_text(value: object) -> str:
    """Counts as integers with thousands separators, other numbers to 4 significant digits, missing values empty."""
    if value is None or value is pd.NA:
        return ""
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, numbers.Integral):
        return f"{int(value):,}"
    if isinstance(value, numbers.Real):
        if math.isnan(value):
            return ""
        return f"{int(value):,}" if float(value).is_integer() and abs(value) >= 1000 else f"{value:.4g}"
    return str(value)


def _numeric(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def to_html(blocks: list[Block], *, title: str) -> str:
    esc = html.escape
    parts = [
        "<!doctype html>\n<html><head><meta "
        f"charset='utf-8'><title>{esc(title)}</title><style>{CSS}</style></head><body>"
    ]
    for block in blocks:
        if isinstance(block, Heading):
            parts.append(f"<h{block.level}>{esc(block.text)}</h{block.level}>")
        elif isinstance(block, Text):
            parts.append(f"<p>{esc(block.text)}</p>")
        elif isinstance(block, Table):
            head = "".join(f"<th>{esc(str(c))}</th>" for c in block.frame.columns)
            body = "".join(
                "<tr>"
                + "".join(f"<td{' class=num' if _numeric(v) else ''}>{esc(cell_text(v))}</td>" for v in row)
                + "</tr>"
                for row in block.frame.itertuples(index=False)
            )
            parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
        else:
            data = base64.b64encode(block.png).decode("ascii")
            parts.append(
                f"<figure><img src='data:image/png;base64,{data}' "
                f"alt='{esc(block.caption)}'><figcaption>{esc(block.caption)}</figcaption></figure>"
            )
    return "\n".join([*parts, "</body></html>\n"])


# What Markdown would read as markup: a "<" that could open a tag or autolink, an "&" that could
# start an entity, and the table's "|". Backslash escapes (CommonMark) print as the plain character,
# so "p < 0.05" stays as written and "<script>" cannot become a tag.
_MARKUP = re.compile(r"\\|<(?=[A-Za-z/!?])|&(?=#?\w+;)|\|")


def _md(text: str) -> str:
    return _MARKUP.sub(lambda m: "\\" + m.group(0), text).replace("\n", " ")


def to_markdown(blocks: list[Block]) -> str:
    parts = []
    for block in blocks:
        if isinstance(block, Heading):
            parts.append(f"{'#' * block.level} {_md(block.text)}")
        elif isinstance(block, Text):
            parts.append(_md(block.text))
        elif isinstance(block, Table):
            columns = [_md(str(c)) for c in block.frame.columns]
            rows = [
                "| " + " | ".join(_md(cell_text(v)) for v in row) + " |" for row in block.frame.itertuples(index=False)
            ]
            parts.append("\n".join(["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns), *rows]))
        else:
            parts.append(f"![{_md(block.caption)}]({block.path.as_posix()})\n\n*{_md(block.caption)}*")
    return "\n\n".join(parts) + "\n"
