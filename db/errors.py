"""What the store refuses, as exceptions the engine can catch by meaning."""


class StoreError(Exception):
    """Base class of the trade store's refusals."""


class DuplicateClientOrderId(StoreError):
    """An order intent reuses a client_order_id already recorded with different content."""


class OutcomeConflict(StoreError):
    """An outcome contradicts the final outcome already recorded for the order."""


class DuplicateSignal(StoreError):
    """A signal for the same (account, cycle, symbol, strategy) was already recorded with different content."""


class TradeConflict(StoreError):
    """A close contradicts the close already recorded for the trade."""


class DealConflict(StoreError):
    """A deal reuses a stored (account, ticket) with different content: the stored deal is kept."""


class UnknownOrder(StoreError, LookupError):
    """No order with that client_order_id: the intent must be recorded before its outcome."""


class UnknownSignal(StoreError, LookupError):
    """No signal with that id."""


class UnknownTrade(StoreError, LookupError):
    """No trade with that (account, ticket): it must be opened in the store before it is closed."""
