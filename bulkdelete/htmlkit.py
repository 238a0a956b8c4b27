"""The parts every bulkdelete HTML page shares: escaping, tables, and the page itself.

Pages have no scripts and load nothing: CSS and SVG are inline, and a Content-Security-Policy
meta tag forbids fetching anything else. Every string that comes from an audit is escaped,
because UIDs, codes, references and targets are whatever the input and the server said. Pages
print whole: nothing scrolls inside a box, and ``.screen-only`` parts are left out on paper.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from typing import Final

CSP: Final = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"


def e(value: object) -> str:
    """Return ``value`` as HTML text, quotes escaped too."""
    return escape(str(value), quote=True)


def when(ts: str) -> str:
    """Return an audit timestamp escaped, with room to wrap between date and time."""
    return e(ts).replace("T", " ", 1)


def table(
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    numeric: set[int],
    nowrap: frozenset[int] = frozenset(),
) -> str:
    """Return an HTML table; cells must already be escaped. Columns in ``numeric`` align right,
    those in ``nowrap`` keep each cell on one line (short values a reader looks up whole)."""

    def cells(tag: str, row: Sequence[str]) -> str:
        out = []
        for i, cell in enumerate(row):
            names = " ".join(n for n, cols in (("num", numeric), ("nw", nowrap)) if i in cols)
            attr = f' class="{names}"' if " " in names else f" class={names}" if names else ""
            out.append(f"<{tag}{attr}>{cell}</{tag}>")
        return "".join(out)

    body = "".join(f"<tr>{cells('td', row)}</tr>" for row in rows)
    return f"<table><thead><tr>{cells('th', header)}</tr></thead><tbody>{body}</tbody></table>"


def page(title: str, body: str, *, css: str = "") -> str:
    """Return a whole HTML5 document: ``body`` (already escaped) under ``title``."""
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{CSP}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>{e(title)}</title>
<style>{CSS}{css}</style></head><body>
{body}
</body></html>
"""


CSS: Final = """
body{font:15px/1.45 system-ui,sans-serif;color:#1d2329;background:#f6f7f9;margin:0 auto;
 padding:24px 32px;max-width:1100px}h1{font-size:26px;margin:0 0 4px}header p{color:#555;margin:0}
h2{font-size:19px;margin:0 0 12px}h3{font-size:15px;margin:14px 0 4px}.card span{color:#555}
section{background:#fff;border:1px solid #dde1e6;border-radius:8px;padding:16px 20px;margin:16px 0}
.cards{display:flex;gap:12px;flex-wrap:wrap}.card b{display:block;font-size:26px}
.card{flex:1;min-width:130px;border:1px solid #dde1e6;border-radius:6px;padding:10px 14px}
.card.bad{border-color:#e5a0a0;background:#fdf0f0}.card.bad b,.bad{color:#b3191f}
table{border-collapse:collapse;width:100%;font-size:14px}th{background:#f0f2f5}
th,td{text-align:left;padding:6px 8px;border-bottom:1px solid #e6e9ed;vertical-align:top}
.num{text-align:right;font-variant-numeric:tabular-nums}.runs td:nth-child(-n+2){white-space:nowrap}
code,.uids{font-family:ui-monospace,"DejaVu Sans Mono",Menlo,Consolas,monospace;font-size:13px}
.bad{font-weight:600}.muted{color:#666}.nw{white-space:nowrap}.warning{border-color:#e5a0a0;background:#fff6f6}
.uids{margin:0;padding:4px 8px 4px 4.5em;columns:3 14em}.uids li,td{overflow-wrap:anywhere}
svg.chart{width:100%;height:auto;font-size:13px;fill:#333}
svg .grid{stroke:#e3e6ea}svg .axis{stroke:#333}
@page{margin:12mm}
@media print{body{background:#fff;padding:0;max-width:none;font-size:10pt}
 section{border:0;border-top:1px solid #999;border-radius:0;padding:8px 0;margin:8px 0}
 .screen-only,.filter input,.filter label{display:none!important}
 .filter tbody tr{display:table-row!important}thead{display:table-header-group}
 tr,.card,dl{break-inside:avoid}h2,h3{break-after:avoid}table{font-size:8.5pt}
 th,td{padding:3px 5px}code,.uids{font-size:8.5pt}
 .card{border-color:#999}.card b{font-size:18px}.card.bad,.warning{background:#fff}}
"""
