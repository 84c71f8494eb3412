"""/api/v1: the analytics of db.analytics, raw trades and signals, as JSON or CSV (`?format=csv`).

    GET /api/v1/accounts
    GET /api/v1/performance/strategies   account, from, to, symbol, strategy
    GET /api/v1/performance/symbols      account, from, to, symbol, strategy
    GET /api/v1/performance/time         ... and bucket=hour|weekday|day|week|month (default day)
    GET /api/v1/correlation              ... and by=symbol|strategy (default symbol)
    GET /api/v1/drawdown                 account, from, to, symbol, strategy, convention=position|mt5
    GET /api/v1/report                   account, from, to, symbol, strategy, convention=position|mt5
    GET /api/v1/daily-summaries          account, from, to (the stored daily_performance rows)
    GET /api/v1/trades                   ... and status=closed|open, limit (1-1000), cursor
    GET /api/v1/signals                  ... and signal=BUY|SELL|HOLD, executed=true|false, limit, cursor
    GET /api/v1/execution                account, from, to, symbol, strategy (execution quality, db.execution;
                                         here from/to are UTC days of the send)

`convention` (default position) picks our figures (a closed position is one trade) or those of
MT5's Trade History Report (an exit deal is one trade, the balance after every deal; see
db.mt5report); the MT5 ones cover the whole account, so they take no symbol or strategy.
`from` and `to` are UTC days (YYYY-MM-DD, both included).  Lists answer {"items": [...]}
(paged ones add "next_cursor", also sent as the X-Next-Cursor header); money is a string.
Each view reads its parameters through `Params` (anything unexpected is a 400 naming the
parameter), calls one db function, and renders the records it returns.
"""

from __future__ import annotations

from flask import Blueprint, current_app, request

from db import analytics, browse, conventions, daily_results
from db.analytics import BUCKETS, CORRELATE_BY, Selection
from db.database import Database
from db.execution import ExecutionLine, execution_quality
from db.reading import reading
from db.records import DailyPerformance, TradeRow
from db.scoreboard import known_accounts
from exporter.params import Params
from exporter.render import (
    csv_response,
    json_response,
    plain,
    ready_json_response,
    record_response,
    records_response,
)

api = Blueprint("api", __name__, url_prefix="/api/v1")
SELECTION = {"account", "from", "to", "symbol", "strategy"}


def _database() -> Database:
    return current_app.config["DATABASE"]


def _selection(params: Params) -> Selection:
    start, end = params.days()
    return Selection(params.account(), start, end, params.symbol(), params.strategy())


@api.get("/accounts")
def accounts():
    params = Params(request.args, set())
    with reading(_database()) as connection:
        names = known_accounts(connection)
    if params.format() == "csv":
        return csv_response(["account"], [[name] for name in names])
    return json_response({"items": names})


@api.get("/performance/strategies")
def strategies():
    params = Params(request.args, SELECTION)
    lines = analytics.strategy_performance(_database(), _selection(params))
    return records_response(lines, analytics.StrategyPerformance, params.format())


@api.get("/performance/symbols")
def symbols():
    params = Params(request.args, SELECTION)
    lines = analytics.symbol_performance(_database(), _selection(params))
    return records_response(lines, analytics.SymbolPerformance, params.format())


@api.get("/performance/time")
def time_buckets():
    params = Params(request.args, SELECTION | {"bucket"})
    bucket = params.choice("bucket", BUCKETS, default="day")
    lines = analytics.time_performance(_database(), _selection(params), bucket)
    return records_response(lines, analytics.TimeBucket, params.format(), extra={"bucket": bucket})


@api.get("/correlation")
def correlation():
    params = Params(request.args, SELECTION | {"by"})
    by = params.choice("by", CORRELATE_BY, default="symbol")
    result = analytics.correlation(_database(), _selection(params), by)
    if params.format() == "csv":
        rows = ([name, *line] for name, line in zip(result.names, result.matrix, strict=True))
        return csv_response([by, *result.names], rows)
    return json_response(result)


@api.get("/drawdown")
def drawdown():
    params = Params(request.args, SELECTION | {"convention"})
    if params.convention() == "mt5":
        return record_response(conventions.mt5_drawdown(_database(), _selection(params)), params.format())
    return record_response(analytics.drawdown(_database(), _selection(params)), params.format())


@api.get("/report")
def report():
    params = Params(request.args, SELECTION | {"convention"})
    convention = params.convention()
    record = conventions.summary(_database(), _selection(params), convention)
    if params.format() == "csv":
        return record_response(record, "csv")
    return json_response({"convention": convention, **plain(record)})


@api.get("/daily-summaries")
def daily_summaries():
    params = Params(request.args, {"account", "from", "to"})
    start, end = params.days()
    account, fmt = params.account(), params.format()
    if fmt != "csv":  # the rows as JSON-ready values: what rendering the records gives, without the records
        return ready_json_response({"items": daily_results.daily_summaries_plain(_database(), account, start, end)})
    rows = daily_results.daily_summaries(_database(), account, start, end)
    return records_response(rows, DailyPerformance, fmt)


@api.get("/trades")
def trades():
    params = Params(request.args, SELECTION | {"status", "limit", "cursor"})
    start, end = params.days()
    query = browse.TradeQuery(
        account=params.account(),
        status=params.choice("status", ("closed", "open"), default="closed"),  # type: ignore[arg-type]
        symbol=params.symbol(),
        strategy=params.strategy(),
        start=start,
        end=end,
        limit=params.limit(),
        cursor=params.cursor(),
    )
    return _page_response(browse.trades(_database(), query), TradeRow, params.format())


@api.get("/signals")
def signals():
    params = Params(request.args, SELECTION | {"signal", "executed", "limit", "cursor"})
    start, end = params.days()
    query = browse.SignalQuery(
        account=params.account(),
        symbol=params.symbol(),
        strategy=params.strategy(),
        signal=params.signal(),
        executed=params.flag("executed"),
        start=start,
        end=end,
        limit=params.limit(),
        cursor=params.cursor(),
    )
    return _page_response(browse.signals(_database(), query), browse.SignalRow, params.format())


@api.get("/execution")
def execution():
    params = Params(request.args, SELECTION)
    lines = execution_quality(_database(), _selection(params))
    return records_response(lines, ExecutionLine, params.format())


def _page_response(page: browse.Page, record_type: type, fmt: str):
    headers = {"X-Next-Cursor": page.next_cursor} if page.next_cursor else None
    return records_response(page.items, record_type, fmt, extra={"next_cursor": page.next_cursor}, headers=headers)
