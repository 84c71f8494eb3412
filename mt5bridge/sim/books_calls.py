"""The simulated terminal's book and history reads: positions_*, orders_*, history_orders_* and
history_deals_*, filtered as the real package filters (a mixin of SimTerminal, whose broker they read)."""

import math
from operator import attrgetter

from .apicall import INVALID_PARAMS as _INVALID_PARAMS
from .apicall import ApiError as _ApiError
from .apicall import api as _api
from .apicall import epoch_arg as _epoch_arg
from .apicall import symbol_filter as _symbol_filter
from .views import deal_view, order_view, position_view

#: The fields the history reads select by, read in C (a lambda was a Python call per record).
_TIME_SETUP_MSC, _TICKET = attrgetter("time_setup_msc"), attrgetter("ticket")
_TIME_MSC, _ORDER = attrgetter("time_msc"), attrgetter("order")


class BooksCalls:
    """SimTerminal's MT5 position, order and history reads (mixed into SimTerminal)."""

    # ================================================================ books
    def _position_views(self, positions) -> tuple:
        views = []
        for position in positions:
            profit, current = self._broker.valuation(position, self._k)
            views.append(position_view(position, self._symbols[position.symbol], profit, current))
        return tuple(views)

    def _select_open(self, symbol, group, ticket):
        positions = list(self._broker.books.positions.values())
        if ticket is not None:
            positions = [p for p in positions if p.ticket == ticket]
        if symbol is not None:
            positions = [p for p in positions if p.symbol == symbol]
        wanted = _symbol_filter(group)
        if group is None:  # every symbol: no call per position to say so (issue 16)
            return positions
        return [p for p in positions if wanted(p.symbol)]

    @_api()
    def positions_total(self) -> int:
        return len(self._broker.books.positions)

    @_api()
    def positions_get(self, symbol=None, group=None, ticket=None) -> tuple:
        return self._position_views(self._select_open(symbol, group, ticket))

    @_api()
    def orders_total(self) -> int:
        return 0  # market orders fill at once; pending orders are not simulated

    @_api()
    def orders_get(self, symbol=None, group=None, ticket=None) -> tuple:
        _symbol_filter(group)
        return ()

    def _history(self, records, time_of, order_of, date_from, date_to, group, ticket, position) -> list:
        """MT5 selection rules: by ticket, by position, or by a date range (with optional group)."""
        if ticket is not None:
            return [r for r in records if order_of(r) == ticket]
        if position is not None:
            return [r for r in records if r.position_id == position]
        if date_from is None or date_to is None:
            raise _ApiError(_INVALID_PARAMS)
        first_ms = math.floor(_epoch_arg(date_from) * 1000)
        last_ms = math.floor(_epoch_arg(date_to) * 1000)
        wanted = _symbol_filter(group)
        if group is None:  # every symbol: no call per record to say so (issue 16)
            return [r for r in records if first_ms <= time_of(r) <= last_ms]
        return [r for r in records if first_ms <= time_of(r) <= last_ms and wanted(r.symbol)]

    def _orders(self, date_from, date_to, group, ticket, position) -> list:
        return self._history(
            self._broker.books.orders,
            _TIME_SETUP_MSC,
            _TICKET,
            date_from,
            date_to,
            group,
            ticket,
            position,
        )

    def _deals(self, date_from, date_to, group, ticket, position) -> list:
        return self._history(
            self._broker.books.deals,
            _TIME_MSC,
            _ORDER,
            date_from,
            date_to,
            group,
            ticket,
            position,
        )

    @_api()
    def history_orders_total(self, date_from, date_to) -> int:
        return len(self._orders(date_from, date_to, None, None, None))

    @_api()
    def history_orders_get(
        self, date_from=None, date_to=None, group=None, ticket=None, position=None
    ) -> tuple:
        orders = self._orders(date_from, date_to, group, ticket, position)
        return tuple(order_view(o, self._symbols[o.symbol]) for o in orders)

    @_api()
    def history_deals_total(self, date_from, date_to) -> int:
        return len(self._deals(date_from, date_to, None, None, None))

    @_api()
    def history_deals_get(
        self, date_from=None, date_to=None, group=None, ticket=None, position=None
    ) -> tuple:
        deals = self._deals(date_from, date_to, group, ticket, position)
        return tuple(deal_view(d, self._symbols.get(d.symbol)) for d in deals)  # balance deals: no symbol
