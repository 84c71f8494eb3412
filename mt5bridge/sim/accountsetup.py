"""Constructor-time checks of a SimTerminal: account arguments, start instant, restored state."""

from datetime import UTC, datetime
from decimal import Decimal

from . import money
from .apicall import is_plain_int
from .book import Books
from .tradingtime import DEFAULT_START, to_epoch

MIN_EPOCH = datetime(2000, 1, 1, tzinfo=UTC).timestamp()
MAX_EPOCH = datetime(2100, 1, 1, tzinfo=UTC).timestamp()  # keeps a runaway advance() finite


def check_account_arguments(seed, login, password, balance, leverage, currency, profile_currency) -> Decimal:
    """Validate the constructor's account arguments; returns the opening balance."""
    if not is_plain_int(seed):
        raise ValueError(f"seed must be an integer, got {seed!r}")
    if currency != profile_currency:
        raise ValueError(f"only {profile_currency} accounts are simulated on this broker profile, got {currency!r}")
    if not is_plain_int(leverage) or leverage <= 0:
        raise ValueError(f"leverage must be a positive integer, got {leverage!r}")
    if not is_plain_int(login) or login <= 0:
        raise ValueError(f"login must be a positive integer, got {login!r}")
    if password is not None and not isinstance(password, str):
        raise ValueError("password must be a string or None")
    try:
        opening_balance = money.cents(Decimal(str(balance)))
    except ArithmeticError:
        raise ValueError(f"balance must be a number, got {balance!r}") from None
    if opening_balance < 0:
        raise ValueError(f"balance must not be negative, got {balance!r}")
    return opening_balance


def start_epoch(start: datetime | None) -> float:
    if start is None:
        return DEFAULT_START.timestamp()
    if not isinstance(start, datetime):
        raise ValueError(f"start must be a datetime, got {start!r}")
    epoch = to_epoch(start)
    if not MIN_EPOCH <= epoch < MAX_EPOCH:
        raise ValueError(f"start must be between 2000 and 2100, got {start!r}")
    return epoch


def restore(state: dict, state_file: str, seed: int, login: int, profile: str) -> tuple[float, Books, int, int]:
    """Clock, books and market-time cursors from a saved state (which must be this account's)."""
    if state.get("seed") != seed or state.get("login") != login:
        raise ValueError(
            f"sim state file {state_file} belongs to seed {state.get('seed')} / login {state.get('login')}, "
            f"not seed {seed} / login {login}: use those or remove the file"
        )
    saved_profile = state.get("profile", "demo")  # files from before broker profiles are demo accounts
    if saved_profile != profile:
        raise ValueError(
            f"sim state file {state_file} belongs to broker profile {saved_profile!r}, not {profile!r}: "
            "use that profile or remove the file"
        )
    try:
        return (
            float(state["clock"]),
            Books.from_dict(state["books"]),
            int(state["synced_k"]),
            int(state["rolled_day"]),
        )
    except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
        raise ValueError(f"sim state file {state_file} is incomplete or corrupt: {exc!r}") from None
