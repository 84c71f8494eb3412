"""`python -m db import-mt5-report` and `verify-report` on report files written as the terminal writes them.

The files come from tests/mt5_report_writer.py (UTF-16 LE HTML with BOM, and .xlsx) in three UI
languages; their Results block holds the hand-computed figures of tests/mt5_history.py, so
verify-report compares the store's figures with an independent source.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from decimal import Decimal as D
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from db import Database, DealRecord
from db.__main__ import main
from db.models import DealModel
from db.report_import import parse_report
from tests.mt5_history import ACCOUNT, EXPECTED_MT5, deals
from tests.mt5_report_writer import money, report_rows, write_html, write_xlsx

ATHENS = ZoneInfo("Europe/Athens")  # the server clock of many brokers: UTC+2 in January


def printed_results(e: dict = EXPECTED_MT5) -> list[str]:
    """The 25 Results values as the terminal prints them."""
    return [
        money(e["total_net_profit"]), money(e["gross_profit"]), money(e["gross_loss"]), str(e["profit_factor"]),
        money(e["expected_payoff"]), str(e["recovery_factor"]), "0.35",
        money(e["balance_drawdown_absolute"]),
        f"{money(e['balance_drawdown_maximal'])} ({e['balance_drawdown_maximal_percent']}%)",
        f"{e['balance_drawdown_relative_percent']}% ({money(e['balance_drawdown_relative'])})",
        str(e["total_trades"]), f"{e['short_trades']} ({e['short_won_percent']}%)",
        f"{e['long_trades']} ({e['long_won_percent']}%)", f"{e['profit_trades']} ({e['profit_trades_percent']}%)",
        f"{e['loss_trades']} ({e['loss_trades_percent']}%)", money(e["largest_profit_trade"]),
        money(e["largest_loss_trade"]), money(e["average_profit_trade"]), money(e["average_loss_trade"]),
        f"{e['max_consecutive_wins']} ({money(e['max_consecutive_wins_money'])})",
        f"{e['max_consecutive_losses']} ({money(e['max_consecutive_losses_money'])})",
        f"{money(e['maximal_consecutive_profit'])} ({e['maximal_consecutive_profit_count']})",
        f"{money(e['maximal_consecutive_loss'])} ({e['maximal_consecutive_loss_count']})",
        "1", "2",  # average consecutive wins 1.25 and losses 1.50, printed as whole numbers
    ]


def write(path: Path, language: str, fmt: str, history: list[DealRecord] | None = None,
          results: list[str] | None = None, **options) -> Path:
    rows = report_rows(deals() if history is None else history, printed_results() if results is None else results,
                       language, zone=ATHENS, **options)
    return write_html(path.with_suffix(".html"), rows) if fmt == "html" else write_xlsx(path.with_suffix(".xlsx"), rows)


@pytest.fixture
def url(tmp_path):
    return f"sqlite:///{tmp_path}/store.db"


def run(url: str, *argv: str) -> int:
    try:
        return main(["--url", url, *argv])
    except SystemExit as exc:
        return int(exc.code)


def stored(url: str, account: str = ACCOUNT) -> list[DealRecord]:
    with Database(url) as database, database.engine.connect() as connection:
        table = DealModel.__table__
        rows = connection.execute(select(table).where(table.c.account == account).order_by(table.c.ticket)).all()
    names = DealRecord.__dataclass_fields__
    return [DealRecord(**{name: row._mapping[name] for name in names}) for row in rows]


def count(url: str) -> int:
    with Database(url) as database, database.engine.connect() as connection:
        try:
            return connection.execute(select(func.count()).select_from(DealModel.__table__)).scalar_one()
        except Exception:  # no schema yet: nothing was stored
            return 0


@pytest.mark.parametrize("fmt", ["html", "xlsx"])
@pytest.mark.parametrize("language", ["en", "de", "ru"])
def test_import_then_verify_in_every_language_and_format(tmp_path, url, capsys, language, fmt):
    path = write(tmp_path / f"report-{language}", language, fmt)
    assert run(url, "import-mt5-report", str(path), "--server-timezone", "Europe/Athens") == 0
    assert f"account {ACCOUNT}: 22 deals read, 22 stored, 0 already stored, 0 differing" in capsys.readouterr().out
    assert stored(url) == deals(), "every deal as the terminal had it: UTC times, positions, costs"

    assert run(url, "import-mt5-report", str(path), "--server-timezone", "Europe/Athens") == 0
    assert "22 deals read, 0 stored, 22 already stored, 0 differing" in capsys.readouterr().out
    assert count(url) == 22, "a second import adds nothing"

    assert run(url, "verify-report", str(path), "--server-timezone", "Europe/Athens") == 0
    out = capsys.readouterr().out
    assert "24/24 report figures equal ours (MT5 convention)" in out
    assert "differs" not in out
    net = next(line for line in out.splitlines() if line.startswith("Total Net Profit"))
    assert net.split()[-3:] == ["94.55", "94.55", "71.75"], "report, ours (MT5), ours (per position)"


def test_verify_names_every_figure_that_differs(tmp_path, url, capsys):
    good = write(tmp_path / "good", "en", "html")
    results = printed_results()
    results[1] = money(EXPECTED_MT5["gross_profit"] + D("0.01"))  # gross profit off by a cent
    results[8] = "141.00 (1.40%)"  # maximal drawdown money off
    bad = write(tmp_path / "bad", "de", "html", results=results)
    assert run(url, "import-mt5-report", str(good), "--server-timezone", "Europe/Athens") == 0
    capsys.readouterr()
    assert run(url, "verify-report", str(bad), "--server-timezone", "Europe/Athens") == 1
    captured = capsys.readouterr()
    assert "22/24 report figures equal ours" in captured.out
    flagged = [line.split("  ")[0] for line in captured.out.splitlines() if line.endswith("<- differs")]
    assert flagged == ["Gross Profit", "Balance Drawdown Maximal"]


def test_verify_of_an_account_not_imported_fails(tmp_path, url, capsys):
    path = write(tmp_path / "report", "en", "xlsx")
    run(url, "upgrade")
    assert run(url, "verify-report", str(path)) == 1


def test_the_layout_without_a_fee_column_and_the_fee_folded_into_commission(tmp_path, url):
    path = write(tmp_path / "nofee", "ru", "html", fee_column=False)
    report = parse_report(path, zone=ATHENS)
    assert report.deals == deals() and report.login == ACCOUNT
    html = write(tmp_path / "fee", "en", "html").read_bytes().decode("utf-16")
    fee = html.replace("<td>-3.50</td><td>0.00</td>", "<td>-3.25</td><td>-0.25</td>", 1)  # same total cost
    (tmp_path / "fee.html").write_bytes(b"\xff\xfe" + fee.encode("utf-16-le"))
    first_entry = parse_report(tmp_path / "fee.html", zone=ATHENS).deals[1]
    assert first_entry.ticket == 9002 and first_entry.commission == D("-3.50")


def test_account_option_overrides_the_header(tmp_path, url):
    path = write(tmp_path / "report", "de", "xlsx")
    assert run(url, "import-mt5-report", str(path), "--account", "other", "--server-timezone", "+02:00") == 0
    assert stored(url, "other") == [dataclasses.replace(d, account="other") for d in deals()]
    assert stored(url) == []


def _tamper(path: Path, old: str, new: str) -> Path:
    text = path.read_bytes().decode("utf-16")
    assert old in text
    path.write_bytes(b"\xff\xfe" + text.replace(old, new, 1).encode("utf-16-le"))
    return path


def _raw(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


BAD_FILES = {
    "empty": lambda p: _raw(p / "empty.html", b""),
    "garbage": lambda p: _raw(p / "garbage.bin", bytes(range(256)) * 4),
    "utf16 broken": lambda p: _raw(p / "odd.html", b"\xff\xfe" + b"<\x00t\x00\x00\xd8"),
    "truncated xlsx": lambda p: _raw(p / "cut.xlsx", write(p / "whole", "en", "xlsx").read_bytes()[:900]),
    "no deals table": lambda p: write_html(p / "nodeals.html", report_rows([], printed_results())),
    "bad number": lambda p: _tamper(write(p / "r", "en", "html"), "<td>40.00</td>", "<td>4O.00</td>"),
    "three decimals": lambda p: _tamper(write(p / "r", "en", "html"), "<td>40.00</td>", "<td>40.001</td>"),
    "unknown type": lambda p: _tamper(write(p / "r", "de", "html"), "<td>sell</td><td>out</td>",
                                      "<td>sale</td><td>out</td>"),
    "balance off": lambda p: _tamper(write(p / "r", "en", "html"), "<td>10 032.60</td>", "<td>10 032.70</td>"),
    "bad time": lambda p: _tamper(write(p / "r", "en", "html"), "<td>2025.01.02 14:00:00</td><td>9004",
                                  "<td>2025.13.02 14:00:00</td><td>9004"),
    "ticket twice": lambda p: _tamper(write(p / "r", "en", "html"), "<td>9005</td>", "<td>9004</td>"),
    "volume zero": lambda p: _tamper(write(p / "r", "en", "html"), "<td>0.40</td>", "<td>0</td>"),
    "comment too long": lambda p: _tamper(write(p / "r", "en", "html"), "<td>Withdrawal</td>",
                                          f"<td>{'x' * 300}</td>"),
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_a_bad_file_is_one_line_exit_2_and_nothing_stored(tmp_path, url, capsys, name):
    path = BAD_FILES[name](tmp_path)
    assert run(url, "import-mt5-report", str(path)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"python -m db import-mt5-report: {path.name}: "), err
    assert "Traceback" not in err
    assert count(url) == 0


def test_the_command_line_itself_refuses_a_bad_file_in_one_line(tmp_path, url):
    path = BAD_FILES["balance off"](tmp_path)
    result = subprocess.run([sys.executable, "-m", "db", "--url", url, "import-mt5-report", str(path)],
                            capture_output=True, text=True, timeout=120, cwd=Path(__file__).parent.parent)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "python -m db import-mt5-report: r.html: Deals row 4, column balance: does not follow from the rows "
        "before it (expected 10032.60), got '10 032.70'"
    ]


def test_a_bad_server_timezone_is_a_config_error(tmp_path, url, capsys):
    path = write(tmp_path / "report", "en", "html")
    assert run(url, "import-mt5-report", str(path), "--server-timezone", "Mars/Olympus") == 2
    assert "--server-timezone" in capsys.readouterr().err


def test_verify_of_a_report_without_its_results_block_is_exit_2(tmp_path, url, capsys):
    rows = report_rows(deals(), printed_results(), "ru")
    cut = next(i for i, row in enumerate(rows) if row and row[0].value == "Результаты")
    path = write_html(tmp_path / "cut.html", rows[:cut])
    assert run(url, "import-mt5-report", str(path)) == 0, "the deals alone are importable"
    capsys.readouterr()
    assert run(url, "verify-report", str(path)) == 2
    err = capsys.readouterr().err
    assert err.strip() == ("python -m db verify-report: cut.html: no summary block found after the Deals table "
                           "(7 label/value pairs, the Results block has 25)")


def test_help_lists_the_report_commands(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert "import-mt5-report" in out and "verify-report" in out


def test_a_deal_that_differs_from_the_stored_one_is_counted_and_kept_as_stored(tmp_path, url, capsys, caplog):
    path = write(tmp_path / "report", "en", "html")
    assert run(url, "import-mt5-report", str(path)) == 0
    _tamper(path, "<td>Withdrawal</td>", "<td>Withdrawal by card</td>")
    capsys.readouterr()
    assert run(url, "import-mt5-report", str(path)) == 0
    assert "22 deals read, 0 stored, 21 already stored, 1 differing" in capsys.readouterr().out
    assert "1 deal(s) of the report differ from the stored deals with the same ticket (9007)" in caplog.text
    assert [d.comment for d in stored(url) if d.ticket == 9007] == ["Withdrawal"]


def test_import_and_verify_on_postgresql(tmp_path, postgres_url, capsys):
    path = write(tmp_path / "report", "de", "xlsx")
    assert run(postgres_url, "import-mt5-report", str(path), "--server-timezone", "Europe/Athens") == 0
    assert run(postgres_url, "import-mt5-report", str(path), "--server-timezone", "Europe/Athens") == 0
    assert stored(postgres_url) == deals()
    assert run(postgres_url, "verify-report", str(path), "--server-timezone", "Europe/Athens") == 0
    assert "24/24 report figures equal ours (MT5 convention)" in capsys.readouterr().out


def test_figures_are_compared_at_the_precision_the_report_prints(tmp_path, url, capsys):
    results = printed_results()
    results[3], results[4] = "1.3300", "10.5056"  # 381.05 / 286.50 = 1.33002; 94.55 / 9 = 10.50556
    results[23], results[24] = "1.25", "1.5"  # average consecutive wins and losses, unrounded
    path = write(tmp_path / "precise", "en", "html", results=results)
    assert run(url, "import-mt5-report", str(path)) == 0
    assert run(url, "verify-report", str(path)) == 0
    assert "24/24 report figures equal ours" in capsys.readouterr().out
    results[4] = "10.5055"  # one unit off in the 4th place
    assert run(url, "verify-report", str(write(tmp_path / "off", "en", "html", results=results))) == 1
    assert "24/24" not in capsys.readouterr().out


def test_damaged_files_are_refused_or_read_never_a_crash(tmp_path):
    """Random damage to a good workbook and a good HTML report: each is a ReportError or still reads."""
    import random

    from db.report_grid import ReportError

    rng = random.Random(17)
    workbook = write(tmp_path / "x", "en", "xlsx").read_bytes()
    html = write(tmp_path / "h", "de", "html").read_bytes().decode("utf-16")
    outcomes = {"read": 0, "refused": 0}
    for n in range(450):
        if n < 150:
            damaged = bytearray(workbook)
            for _ in range(rng.randint(1, 5)):
                damaged[rng.randrange(len(damaged))] = rng.randrange(256)
            path = _raw(tmp_path / "damaged.xlsx", bytes(damaged))
        else:
            text = list(html)
            for _ in range(rng.randint(1, 4)):
                text[rng.randrange(len(text))] = rng.choice("0123456789.-: <>/tdrh=\"x\u00a0ä")
            path = _raw(tmp_path / "damaged.html", b"\xff\xfe" + "".join(text).encode("utf-16-le"))
        try:
            parse_report(path)
            outcomes["read"] += 1
        except ReportError:
            outcomes["refused"] += 1
    assert outcomes["refused"] > 100 and sum(outcomes.values()) == 450


def test_deals_the_bot_recorded_are_not_differing_for_what_the_report_cannot_print(tmp_path, url, capsys):
    from db import Repository, init_db

    database = init_db(url)
    repo = Repository(database)
    for record in deals():  # as the bot records them: its magic, DEAL_REASON_EXPERT
        repo.record_deal(dataclasses.replace(record, magic=4242, reason=3) if record.type in (0, 1) else record)
    database.dispose()
    path = write(tmp_path / "report", "en", "html")
    assert run(url, "import-mt5-report", str(path), "--server-timezone", "Europe/Athens") == 0
    assert "22 deals read, 0 stored, 22 already stored, 0 differing" in capsys.readouterr().out
    assert {d.magic for d in stored(url) if d.type in (0, 1)} == {4242}, "the bot's facts are kept"
