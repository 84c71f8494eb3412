"""The store as the engine uses it: a durable spool in front of the database, and a circuit breaker.

    store = SpooledRepository(Repository(init_db(url)), "data/store-spool.db",
                              breaker=CircuitBreaker("store", 3, 10.0, on_state_change=metrics.set_circuit_state),
                              on_depth=metrics.set_store_spool_depth)
"""

from bot.store.breaker import CLOSED, HALF_OPEN, OPEN, CircuitBreaker, CircuitOpenError
from bot.store.errors import StoreUnavailable, is_connectivity_error
from bot.store.spool import SpooledRepository

__all__ = [
    "CLOSED",
    "HALF_OPEN",
    "OPEN",
    "CircuitBreaker",
    "CircuitOpenError",
    "SpooledRepository",
    "StoreUnavailable",
    "is_connectivity_error",
]
