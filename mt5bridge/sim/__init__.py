"""Simulated MetaTrader 5 terminal: the stand-in used by ``make run``, the demo stack and the tests.

``SimTerminal`` has the MetaTrader5 package's methods and result shapes on top of a seeded,
deterministic market (one tick per trading second, no movement at weekends) and an exact
(Decimal) account of the broker ``profile`` it plays (``profiles/``: demo by default). Only the
standard library and numpy are used, so the bridge server can serve it on a bare Windows Python.

Module map: ``terminal`` (the API facade), ``apicall`` (call wrapper, argument checks),
``hooks`` (test hooks, trading switches), ``accountsetup`` (constructor checks, restore),
``profiles``/``profile`` (broker profiles), ``broker`` (execution, SL/TP, stop-out, swaps),
``execution`` (execution and filling rules), ``netting``, ``stopout``, ``booking`` (deals into
the books), ``book`` (positions/orders/deals), ``money`` (profit, margin, swap, commission by
calc mode), ``conversion`` (currencies), ``orderrequest`` (request validation), ``servertime``
and ``sessions`` (the server clock), ``levels``/``daypath``/``pricepath`` (the seeded price
process), ``quotes`` (paths plus test-only pinned prices), ``tradingtime``, ``clock``,
``faults``, ``persistence``, ``records``/``views`` (MT5 result tuples), ``marketcalls`` (the calls
the stand-in adds, through ``SimTerminal.market_call``: ``marketdata`` history by date and ticks,
``marketbook`` Depth of Market). ``mt5module`` is the strict, module-shaped front
(``import mt5bridge.sim.mt5module as mt5``): the package's calling conventions over a SimTerminal.
"""

from .terminal import SimTerminal

__all__ = ["SimTerminal"]
