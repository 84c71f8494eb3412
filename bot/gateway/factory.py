"""Build the gateway named by MT5_MODE. The only place that knows the three backends exist."""

from __future__ import annotations

from typing import Any

from ..config import Settings
from .mt5api import Mt5ApiGateway


def make_gateway(settings: Settings, sim: Any = None) -> Mt5ApiGateway:
    """`sim` lets the caller share an in-process simulated terminal (tests step its clock)."""
    credentials = {"login": settings.mt5_login, "password": settings.mt5_password, "server": settings.mt5_server}
    if settings.mt5_mode == "sim":
        from mt5bridge.sim.mt5module import Mt5Module

        terminal = sim if sim is not None else make_sim(settings)
        # The module-shaped stand-in: the package's argument rules over the simulated terminal.
        return Mt5ApiGateway(lambda: Mt5Module(terminal), credentials, name="sim", trading=settings.trading)
    if settings.mt5_mode == "bridge":
        from mt5bridge.client import connect

        def open_bridge() -> Any:
            return connect(
                settings.mt5_host,
                settings.mt5_port,
                token=settings.mt5_bridge_token,
                timeout=settings.mt5_bridge_timeout,
                ca_file=settings.mt5_bridge_ca_file,
                fingerprint=settings.mt5_bridge_fingerprint,
                insecure=settings.mt5_bridge_insecure,
            )

        # The broker login/password live on the terminal side (the bridge server's environment):
        # nothing of them crosses the network; initialize() there uses its own.
        return Mt5ApiGateway(open_bridge, {}, name="bridge", trading=settings.trading)
    import MetaTrader5  # noqa: N813 - Windows only; imported only in native mode

    if settings.mt5_path:
        credentials["path"] = settings.mt5_path
    return Mt5ApiGateway(lambda: MetaTrader5, credentials, name="native", trading=settings.trading)


def make_sim(settings: Settings, stepped: bool = False, state_file: str | None = None) -> Any:
    """The in-process simulated terminal; with `state_file` its books and clock outlive the process."""
    from mt5bridge.sim import SimTerminal

    try:
        return SimTerminal(seed=settings.sim_seed, speed=settings.sim_speed, stepped=stepped, state_file=state_file,
                           profile=settings.sim_broker, start=sim_start(getattr(settings, "sim_start", "")))
    except OSError as exc:
        raise ValueError(f"SIM_STATE_PATH: cannot write the simulator's state file {state_file}: "
                         f"{exc.strerror or exc}") from None


def sim_state_file(configured: str, database_url: Any) -> str | None:
    """Where the in-process simulator keeps its state: as configured, else beside the store.

    The store keeps the broker's deals and tickets, so the broker it was written from must survive
    with it: a simulator started afresh would hand out the same tickets again for other deals. Next
    to a SQLite file (`data/tradewatch.db.sim_state.json`), so deleting the store's files starts both
    afresh; an in-memory store keeps nothing, so neither does its simulator; any other store:
    `data/sim_state.json`.
    """
    if configured:
        return configured
    from sqlalchemy.engine import make_url

    url = make_url(database_url)
    if url.get_backend_name() != "sqlite":
        return "data/sim_state.json"
    path = url.database or ""
    if path in ("", ":memory:") or path.startswith("file::memory:") or url.query.get("mode") == "memory":
        return None
    return f"{path}.sim_state.json"


def sim_start(value: str) -> Any:
    """SIM_START as the simulator's start: None (its fixed 2026-01-05 start, what tests rely on),
    the wall clock now (an honest demo: dashboards and alerts read live times), or an ISO time (UTC
    when it names no zone). A state file, when there is one, restores its own clock instead."""
    from datetime import UTC, datetime

    if not value:
        return None
    if value == "now":
        return datetime.now(UTC).replace(microsecond=0)
    moment = datetime.fromisoformat(value)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
