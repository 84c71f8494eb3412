"""A Trade History Report file (.html or .xlsx) as a grid: rows of cell texts, by column position.

Why a grid: the terminal writes the same report as one HTML table or one worksheet, in the
UI's language.  Reduced to rows of cells (an HTML colspan becomes that many cells, hidden
cells are dropped, as the terminal hides them), both formats are read by the same code in
db.report_import, by position and by the shape of the values, never by translated text.

HTML goes through the standard library's html.parser (the report is one flat table, no
need for a DOM); .xlsx through openpyxl.  The format is told by the content (a zip archive
is a workbook), the encoding by the byte order mark: MetaQuotes writes UTF-16 LE with a BOM.
"""

from __future__ import annotations

from datetime import date, datetime
from html.parser import HTMLParser
from pathlib import Path

MAX_BYTES = 256 * 1024 * 1024  # a year of 100 000 deals is ~60 MB of UTF-16 HTML
MAX_COLSPAN = 64

Grid = list[list[str]]


class ReportError(ValueError):
    """The file is not a Trade History Report this importer can read; the message is one line."""


def read_grid(path: Path) -> Grid:
    """The report's rows; ReportError when the file cannot be read as a report."""
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise ReportError(f"file is {size} bytes, more than the {MAX_BYTES} a report can be")
        with path.open("rb") as handle:
            head = handle.read(4)
    except OSError as exc:
        raise ReportError(f"cannot read the file: {exc.strerror or exc}") from None
    if head.startswith(b"PK\x03\x04"):
        return _xlsx_grid(path)
    return html_grid(_decode(path.read_bytes()))


def _decode(raw: bytes) -> str:
    for bom, encoding in ((b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be"), (b"\xef\xbb\xbf", "utf-8")):
        if raw.startswith(bom):
            try:
                return raw[len(bom):].decode(encoding)
            except UnicodeDecodeError as exc:
                raise ReportError(f"not valid {encoding.upper()} text at byte {exc.start + len(bom)}") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ReportError("neither an .xlsx workbook nor HTML text (UTF-16 with BOM or UTF-8)") from None


class _TableReader(HTMLParser):
    """Collects <tr> rows of <td>/<th> texts; colspan repeats empty cells, class="hidden" drops the cell."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.rows: Grid = []
        self._row: list[str] | None = None
        self._cell: list[str] | None = None
        self._span = 1
        self._hidden = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "tr":
            self._end_row()
            self._row = []
        elif tag in ("td", "th"):
            self._end_cell()
            if self._row is None:
                self._row = []
            attributes = dict(attrs)
            self._hidden = "hidden" in (attributes.get("class") or "").split()
            span = (attributes.get("colspan") or "1").strip()
            self._span = min(int(span), MAX_COLSPAN) if span.isascii() and span.isdigit() and int(span) > 0 else 1
            self._cell = []
        elif tag == "br" and self._cell is not None:
            self._cell.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th"):
            self._end_cell()
        elif tag in ("tr", "table"):
            self._end_row()

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)

    def _end_cell(self) -> None:
        if self._cell is None or self._row is None:
            return
        if not self._hidden:
            self._row.append(" ".join("".join(self._cell).split()))
            self._row.extend([""] * (self._span - 1))
        self._cell = None

    def _end_row(self) -> None:
        self._end_cell()
        if self._row is not None:
            self.rows.append(self._row)
        self._row = None

    def close(self) -> None:
        super().close()
        self._end_row()


def html_grid(text: str) -> Grid:
    reader = _TableReader()
    reader.feed(text)
    reader.close()
    return reader.rows


def _cell_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.strftime("%Y.%m.%d %H:%M:%S")
    if isinstance(value, date):
        return value.strftime("%Y.%m.%d")
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return repr(value)  # the shortest text that reads back as the same float: 10000.35, not 10000.35000001
    return " ".join(str(value).split())


def _xlsx_grid(path: Path) -> Grid:
    from openpyxl import load_workbook  # only for .xlsx files: HTML imports never pay for it

    # A damaged workbook fails deep inside zipfile, zlib, the XML parser or openpyxl, each with
    # its own exception type (found by mutating workbooks: tests/test_mt5_report_import.py), so
    # everything raised while reading the untrusted file is "not a readable workbook".
    try:
        workbook = load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # see above
        raise ReportError(f"not a readable .xlsx workbook ({type(exc).__name__})") from None
    try:
        sheet = workbook.worksheets[0] if workbook.worksheets else None
        if sheet is None:
            raise ReportError("the workbook has no worksheet")
        return [[_cell_text(value) for value in row] for row in sheet.iter_rows(values_only=True)]
    except ReportError:
        raise
    except Exception as exc:  # see above
        raise ReportError(f"not a readable .xlsx workbook ({type(exc).__name__})") from None
    finally:
        workbook.close()
