"""Render a deal history as the terminal's Trade History Report: UTF-16 LE HTML with BOM, and .xlsx.

The same layout as MetaQuotes writes it: one table, a header block (name, account, company,
date), then the Positions, Orders and Deals sections (title row, header row, rows, a totals
row), then the Summary (account state) and Results blocks as label/value cells.  Titles,
headers and labels come in the UI language asked for; deal types and directions stay in
English, as the terminal prints them.  Numbers are printed the terminal's way: "10 000.00".

The Results values are given by the caller (hand-computed figures), never computed here from
db.mt5report: the import test must compare two independent sources.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import tzinfo
from decimal import Decimal
from pathlib import Path

from db import DealRecord

WORDS = {0: "buy", 1: "sell", 2: "balance", 3: "credit", 7: "commission"}
DIRECTIONS = {0: "in", 1: "out", 2: "in/out", 3: "out by"}

LANGUAGES = {
    "en": {
        "title": "Trade History Report", "header": ("Name:", "Account:", "Company:", "Date:"),
        "sections": ("Positions", "Orders", "Deals", "Summary", "Results", "Open Positions", "Working Orders"),
        "positions": ("Time", "Position", "Symbol", "Type", "Volume", "Price", "S / L", "T / P", "Time", "Price",
                      "Commission", "Swap", "Profit"),
        "orders": ("Open Time", "Order", "Symbol", "Type", "Volume", "Price", "S / L", "T / P", "Time", "State",
                   "Comment"),
        "deals": ("Time", "Deal", "Symbol", "Type", "Direction", "Volume", "Price", "Order", "Commission", "Fee",
                  "Swap", "Profit", "Balance", "Comment"),
        "state": ("Balance:", "Free Margin:", "Credit Facility:", "Margin:", "Floating P/L:", "Margin Level:",
                  "Equity:"),
        "drawdown": "Balance Drawdown:",
        "results": ("Total Net Profit:", "Gross Profit:", "Gross Loss:", "Profit Factor:", "Expected Payoff:",
                    "Recovery Factor:", "Sharpe Ratio:", "Balance Drawdown Absolute:", "Balance Drawdown Maximal:",
                    "Balance Drawdown Relative:", "Total Trades:", "Short Trades (won %):", "Long Trades (won %):",
                    "Profit Trades (% of total):", "Loss Trades (% of total):", "Largest profit trade:",
                    "Largest loss trade:", "Average profit trade:", "Average loss trade:",
                    "Maximum consecutive wins ($):", "Maximum consecutive losses ($):",
                    "Maximal consecutive profit (count):", "Maximal consecutive loss (count):",
                    "Average consecutive wins:", "Average consecutive losses:"),
    },
    "de": {
        "title": "Handelshistorie-Bericht", "header": ("Name:", "Konto:", "Unternehmen:", "Datum:"),
        "sections": ("Positionen", "Aufträge", "Deals", "Zusammenfassung", "Ergebnisse", "Offene Positionen",
                     "Offene Aufträge"),
        "positions": ("Zeit", "Position", "Symbol", "Typ", "Volumen", "Preis", "S / L", "T / P", "Zeit", "Preis",
                      "Kommission", "Swap", "Gewinn"),
        "orders": ("Eröffnungszeit", "Auftrag", "Symbol", "Typ", "Volumen", "Preis", "S / L", "T / P", "Zeit",
                   "Status", "Kommentar"),
        "deals": ("Zeit", "Deal", "Symbol", "Typ", "Richtung", "Volumen", "Preis", "Auftrag", "Kommission",
                  "Gebühr", "Swap", "Gewinn", "Kontostand", "Kommentar"),
        "state": ("Kontostand:", "Freie Marge:", "Kreditlinie:", "Marge:", "Floating G/V:", "Margenniveau:",
                  "Kapital:"),
        "drawdown": "Rückgang des Kontostands:",
        "results": ("Gesamtnettogewinn:", "Bruttogewinn:", "Bruttoverlust:", "Profitfaktor:", "Erwartetes Ergebnis:",
                    "Erholungsfaktor:", "Sharpe-Ratio:", "Absoluter Rückgang:", "Maximaler Rückgang:",
                    "Relativer Rückgang:", "Trades insgesamt:", "Short-Trades (gewonnen %):",
                    "Long-Trades (gewonnen %):", "Gewinntrades (% von allen):", "Verlusttrades (% von allen):",
                    "Größter Gewinntrade:", "Größter Verlusttrade:", "Durchschnittlicher Gewinntrade:",
                    "Durchschnittlicher Verlusttrade:", "Maximale Gewinnserie ($):", "Maximale Verlustserie ($):",
                    "Maximaler Seriengewinn (Anzahl):", "Maximaler Serienverlust (Anzahl):",
                    "Durchschnittliche Gewinnserie:", "Durchschnittliche Verlustserie:"),
    },
    "ru": {
        "title": "Отчет торговой истории", "header": ("Имя:", "Счет:", "Компания:", "Дата:"),
        "sections": ("Позиции", "Ордера", "Сделки", "Итоги", "Результаты", "Открытые позиции", "Рабочие ордера"),
        "positions": ("Время", "Позиция", "Символ", "Тип", "Объем", "Цена", "S / L", "T / P", "Время", "Цена",
                      "Комиссия", "Своп", "Прибыль"),
        "orders": ("Время открытия", "Ордер", "Символ", "Тип", "Объем", "Цена", "S / L", "T / P", "Время",
                   "Состояние", "Комментарий"),
        "deals": ("Время", "Сделка", "Символ", "Тип", "Направление", "Объем", "Цена", "Ордер", "Комиссия",
                  "Сбор", "Своп", "Прибыль", "Баланс", "Комментарий"),
        "state": ("Баланс:", "Свободная маржа:", "Кредитные средства:", "Маржа:", "Плавающая П/У:",
                  "Уровень маржи:", "Средства:"),
        "drawdown": "Просадка баланса:",
        "results": ("Чистая прибыль:", "Общая прибыль:", "Общий убыток:", "Прибыльность:", "Матожидание выигрыша:",
                    "Фактор восстановления:", "Коэффициент Шарпа:", "Абсолютная просадка баланса:",
                    "Максимальная просадка баланса:", "Относительная просадка баланса:", "Всего трейдов:",
                    "Короткие трейды (% выигравших):", "Длинные трейды (% выигравших):",
                    "Прибыльные трейды (% от всех):", "Убыточные трейды (% от всех):", "Самый прибыльный трейд:",
                    "Самый убыточный трейд:", "Средний прибыльный трейд:", "Средний убыточный трейд:",
                    "Максимум непрерывных выигрышей ($):", "Максимум непрерывных проигрышей ($):",
                    "Максимальная непрерывная прибыль (число):", "Максимальный непрерывный убыток (число):",
                    "Средний непрерывный выигрыш:", "Средний непрерывный проигрыш:"),
    },
}


@dataclass(frozen=True)
class Cell:
    value: object  # str, int, or Decimal (a number the workbook stores as a number)
    span: int = 1
    hidden: bool = False
    head: bool = False


SPACER = [Cell("", 14)]  # the terminal's empty row before each section


def money(value: Decimal | int) -> str:
    """The terminal's way: a space between thousands, two decimals."""
    return f"{Decimal(value):,.2f}".replace(",", " ")


def _cents(value: Decimal | int) -> Decimal:
    return Decimal(value).quantize(Decimal("0.01"))


def _when(deal: DealRecord, zone: tzinfo) -> str:
    return deal.time.astimezone(zone).strftime("%Y.%m.%d %H:%M:%S")


def report_rows(deals: list[DealRecord], results: list[str], language: str = "en", zone: tzinfo | None = None,
                login: str = "5001234", fee_column: bool = True) -> list[list[Cell]]:
    """The report as rows of cells; `results` are the 25 printed Results values, in order."""
    from datetime import UTC

    zone = zone or UTC
    words = LANGUAGES[language]
    rows: list[list[Cell]] = [[Cell(words["title"], 14, head=True)]]
    values = ("Test Trader", f"{login} (USD, Tradewatch-Demo, demo, Hedge)", "Tradewatch Test Broker", "2025.01.11 10:00")
    rows += [[Cell(label, 4, head=True), Cell(value, 10, head=True)] for label, value in zip(words["header"], values,
                                                                                           strict=True)]
    rows += _positions(deals, words, zone) + _orders(deals, words, zone) + _deals(deals, words, zone, fee_column)
    rows += _open_positions(deals, words, zone)
    rows += [SPACER, [Cell(words["sections"][6], 14, head=True)], [Cell(h) for h in words["orders"]]]
    rows += [SPACER, [Cell(words["sections"][3], 14, head=True)]]
    balance = sum((d.profit + d.commission + d.swap for d in deals if d.type != 3), Decimal(0))
    credit = sum((d.profit for d in deals if d.type == 3), Decimal(0))
    state = [money(balance), money(balance + credit), money(credit), "0.00", "0.00", "0.00%", money(balance + credit)]
    labels = words["state"]
    for i in range(0, 6, 2):
        rows.append([Cell(labels[i], 3), Cell(state[i], 2), Cell(""), Cell(labels[i + 1], 3), Cell(state[i + 1], 2)])
    rows.append([Cell(labels[6], 3), Cell(state[6], 2)])
    rows.append([Cell(words["sections"][4], 14, head=True)])
    return rows + _results(words, results)


def _results(words: dict, results: list[str]) -> list[list[Cell]]:
    labels = words["results"]
    layout = [(0, 1, 2), (3, 4), (5, 6), None, (7, 8, 9), (10, 11, 12), (13, 14), (15, 16), (17, 18), (19, 20),
              (21, 22), (23, 24)]
    rows = []
    for line in layout:
        if line is None:
            rows.append([Cell(words["drawdown"], 3)])
            continue
        row: list[Cell] = []
        for i in line:
            row += [Cell(labels[i], 3), Cell(results[i], 1)]
        rows.append(row)
    return rows


def _positions(deals: list[DealRecord], words: dict, zone: tzinfo) -> list[list[Cell]]:
    rows = [SPACER, [Cell(words["sections"][0], 14, head=True)], [Cell(h) for h in words["positions"]]]
    trades = [d for d in deals if d.type in (0, 1)]
    for pid in dict.fromkeys(d.position_id for d in trades):
        own = [d for d in trades if d.position_id == pid]
        entry, exits = own[0], [d for d in own if d.entry != 0]
        if sum(d.volume for d in exits) != entry.volume:
            continue  # still open
        rows.append([Cell(_when(entry, zone)), Cell(pid), Cell(entry.symbol), Cell(WORDS[entry.type]),
                     Cell("", 8, hidden=True), Cell(entry.volume), Cell(entry.price), Cell(""), Cell(""),
                     Cell(_when(exits[-1], zone)), Cell(exits[-1].price),
                     Cell(money(sum(d.commission for d in own))), Cell(money(sum(d.swap for d in own))),
                     Cell(money(sum(d.profit for d in own)), 2)])
    return rows


def _open_positions(deals: list[DealRecord], words: dict, zone: tzinfo) -> list[list[Cell]]:
    """Positions still open at the end: time, position, symbol, type, volume left, price, ..., profit."""
    rows = [SPACER, [Cell(words["sections"][5], 14, head=True)], [Cell(h) for h in words["positions"]]]
    trades = [d for d in deals if d.type in (0, 1)]
    for pid in dict.fromkeys(d.position_id for d in trades):
        own = [d for d in trades if d.position_id == pid]
        left = own[0].volume - sum(d.volume for d in own if d.entry != 0)
        if left:
            rows.append([Cell(_when(own[0], zone)), Cell(pid), Cell(own[0].symbol), Cell(WORDS[own[0].type]),
                         Cell("", 8, hidden=True), Cell(left), Cell(own[0].price), Cell(""), Cell(""),
                         Cell(own[0].price), Cell(_cents(0)), Cell(_cents(0)), Cell(""), Cell(own[0].comment)])
    return rows


def _orders(deals: list[DealRecord], words: dict, zone: tzinfo) -> list[list[Cell]]:
    rows = [SPACER, [Cell(words["sections"][1], 14, head=True)], [Cell(h) for h in words["orders"]]]
    for d in deals:
        if d.type in (0, 1):
            rows.append([Cell(_when(d, zone)), Cell(d.order_ticket), Cell(d.symbol), Cell(WORDS[d.type]),
                         Cell(f"{d.volume} / {d.volume}"), Cell("market"), Cell(""), Cell(""),
                         Cell(_when(d, zone)), Cell("filled"), Cell(d.comment)])
    return rows


def _deals(deals: list[DealRecord], words: dict, zone: tzinfo, fee_column: bool) -> list[list[Cell]]:
    header = [h for i, h in enumerate(words["deals"]) if fee_column or i != 9]
    rows = [SPACER, [Cell(words["sections"][2], 14, head=True)], SPACER, [Cell(h) for h in header]]
    balance = Decimal(0)
    for d in deals:
        if d.type != 3:
            balance += d.profit + d.commission + d.swap
        trade = d.type in (0, 1)
        cells = [Cell(_when(d, zone)), Cell(d.ticket), Cell(d.symbol), Cell(WORDS[d.type]),
                 Cell(DIRECTIONS[d.entry] if trade else ""), Cell(d.volume if trade else ""),
                 Cell(d.price if trade else ""), Cell(d.order_ticket or ""), Cell(_cents(d.commission)),
                 Cell(_cents(0)), Cell(_cents(d.swap)), Cell(_cents(d.profit)), Cell(_cents(balance)), Cell(d.comment)]
        rows.append([cell for i, cell in enumerate(cells) if fee_column or i != 9])
    totals = [sum((getattr(d, name) for d in deals), Decimal(0)) for name in ("commission", "swap", "profit")]
    tail = [Cell(money(totals[0])), *([Cell("0.00")] if fee_column else []), Cell(money(totals[1])),
            Cell(money(totals[2])), Cell(money(balance))]
    rows.append([Cell("", 8), *tail])
    return rows


# -- the two file formats -------------------------------------------------------------------------


def _html_cell(cell: Cell) -> str:
    tag = "th" if cell.head else "td"
    attributes = (f' colspan="{cell.span}"' if cell.span > 1 else "") + (' class="hidden"' if cell.hidden else "")
    value = cell.value
    if isinstance(value, Decimal):
        value = money(value) if value.as_tuple().exponent == -2 else str(value)
    text = str(value).replace("&", "&amp;").replace("<", "&lt;")
    return f"<{tag}{attributes}>{'<b>' + text + '</b>' if cell.head and text else text}</{tag}>"


def write_html(path: Path, rows: Iterable[list[Cell]]) -> Path:
    """UTF-16 LE with a byte order mark, as MetaQuotes writes it."""
    body = "\n".join(f'<tr align="right">{"".join(_html_cell(c) for c in row)}</tr>' for row in rows)
    html = ('<!DOCTYPE html>\n<html>\n<head><meta http-equiv="Content-Type" content="text/html; charset=utf-16">'
            f'<title>Report</title></head>\n<body>\n<table cellspacing="1" cellpadding="3" border="0">\n{body}\n'
            '</table>\n</body>\n</html>\n')
    path.write_bytes(b"\xff\xfe" + html.encode("utf-16-le"))
    return path


def write_xlsx(path: Path, rows: Iterable[list[Cell]]) -> Path:
    """One worksheet, a cell per column, merged where the HTML spans; numbers stored as numbers."""
    from openpyxl import Workbook

    workbook = Workbook()
    sheet = workbook.active
    for r, row in enumerate(rows, start=1):
        column = 1
        for cell in row:
            if cell.hidden:
                continue
            value = float(cell.value) if isinstance(cell.value, Decimal) else cell.value
            sheet.cell(row=r, column=column, value=value if value != "" else None)
            if cell.span > 1:
                sheet.merge_cells(start_row=r, start_column=column, end_row=r, end_column=column + cell.span - 1)
            column += cell.span
    workbook.save(path)
    return path
