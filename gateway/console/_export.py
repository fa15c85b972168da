"""The sharing register of one episode as CSV and as PDF (fpdf2), for a subject access request:
who received what, when, on what basis, and whether consent was later withdrawn."""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Sequence
from typing import Any

from fpdf import FPDF

__all__ = ["COLUMNS", "register_csv", "register_pdf"]

COLUMNS = (
    ("disclosed_at", "Disclosed at (UTC)"),
    ("direction", "Direction"),
    ("counterpart", "Other authority"),
    ("requested_by", "Requested by"),
    ("approved_by", "Approved by"),
    ("sections", "Sections"),
    ("basis", "Basis"),
    ("override", "Override"),
    ("withdrawn_at", "Consent withdrawn at (UTC)"),
    ("returned_at", "Given back at (UTC)"),
)


def _cell(row: dict[str, Any], name: str) -> str:
    value = row[name]
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return " ".join(str(v) for v in value)
    if name == "counterpart":
        return f"{row['counterpart_name']} ({value})"
    return "" if value is None else str(value)


def _safe(text: str) -> str:
    """A spreadsheet would run a cell that starts with = + - @ as a formula (CSV injection)."""
    return f"'{text}" if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def register_csv(rows: Sequence[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([title for _, title in COLUMNS])
    for row in rows:
        writer.writerow([_safe(_cell(row, name)) for name, _ in COLUMNS])
    return out.getvalue()


def _latin1(text: str) -> str:
    """fpdf2's core fonts are Latin-1: anything else becomes '?', never an error."""
    return text.encode("latin-1", "replace").decode("latin-1")


def register_pdf(
    rows: Sequence[dict[str, Any]], episode_id: str, authority: str, generated: dt.datetime
) -> bytes:
    pdf = FPDF(orientation="landscape", format="A4")
    pdf.set_title(f"Sharing register, episode {episode_id}")
    pdf.set_author(_latin1(authority))
    pdf.set_creation_date(generated)
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 16)
    pdf.cell(0, 10, "Sharing register", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", size=10)
    for line in (
        f"Episode: {episode_id}",
        _latin1(f"Authority: {authority}"),
        f"Produced: {generated.astimezone(dt.UTC):%Y-%m-%d %H:%M} UTC, for a subject access request",
        f"Entries: {len(rows)}",
    ):
        pdf.cell(0, 6, line, new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)
    pdf.set_font("Helvetica", size=8)
    with pdf.table(col_widths=(22, 14, 30, 26, 24, 40, 18, 12, 22, 22), line_height=5) as table:
        heading = table.row()
        for _, title in COLUMNS:
            heading.cell(title)
        for row in rows:
            cells = table.row()
            for name, _ in COLUMNS:
                cells.cell(_latin1(_cell(row, name)))
    if not rows:
        pdf.ln(4)
        pdf.cell(0, 6, "No information from this episode has been shared.")
    return bytes(pdf.output())
