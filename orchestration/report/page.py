"""The run report as one self-contained HTML page: inline CSS and SVG, no script, nothing fetched."""

from __future__ import annotations

from datetime import datetime
from html import escape

from orchestration.report.charts import bar_chart_svg
from orchestration.report.sections import Section, Table

STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; color: #1d2733; margin: 2rem auto; max-width: 960px; padding: 0 1rem; }
h1 { font-size: 1.6rem; margin-bottom: .2rem; }
h2 { font-size: 1.2rem; border-bottom: 1px solid #d5dbe3; padding-bottom: .2rem; margin-top: 2.2rem; }
.meta { color: #5b6775; }
nav a { margin-right: 1rem; }
table { border-collapse: collapse; margin: .8rem 0; }
th, td { padding: .25rem .6rem; border-bottom: 1px solid #e6eaef; }
th { text-align: left; background: #f3f5f8; }
td:not(:first-child) { text-align: right; font-variant-numeric: tabular-nums; }
.note { color: #8a5a00; background: #fff7e6; padding: .4rem .6rem; border-radius: 4px; }
svg { display: block; margin: .6rem 0; }
svg .label { font-size: 12px; fill: #1d2733; }
svg .value { font-size: 12px; fill: #5b6775; }
"""


def _table(table: Table) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in table.headers)
    body = "".join("<tr>" + "".join(f"<td>{escape(str(cell))}</td>" for cell in row) + "</tr>" for row in table.rows)
    return f'<table id="{escape(table.id)}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _section(section: Section) -> str:
    parts = [f'<section id="{escape(section.id)}">', f"<h2>{escape(section.title)}</h2>"]
    if section.intro:
        parts.append(f"<p>{escape(section.intro)}</p>")
    parts += [f'<p class="note">{escape(note)}</p>' for note in section.notes]
    parts += [bar_chart_svg(chart) for chart in section.charts]
    parts += [_table(table) for table in section.tables]
    parts.append("</section>")
    return "\n".join(parts)


def render_page(sections: list[Section], *, run_id: str, generated_at: datetime, run_link: str) -> str:
    """The whole page: a header naming the run, a table of contents, then every section."""
    contents = "".join(f'<a href="#{escape(s.id)}">{escape(s.title)}</a>' for s in sections)
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            f"<title>Tessera run report {escape(run_id)}</title>",
            f"<style>{STYLE}</style></head><body>",
            "<h1>Tessera run report</h1>",
            f'<p class="meta">Run <a href="{escape(run_link)}">{escape(run_id)}</a>, '
            f"written {escape(generated_at.strftime('%Y-%m-%d %H:%M UTC'))}</p>",
            f"<nav>{contents}</nav>",
            *(_section(s) for s in sections),
            "</body></html>",
        ]
    )
