"""Build the gateway named by MT5_MODE. The only place that knows the three backends exist."""

from __future__ import annotations

from typing import Any

from ..config import Settings
from .mt5api import Mt5ApiGateway


def make_gateway(settings: Settings, sim: Any = None) -> Mt5ApiGateway:
    """`sim` lets the caller share an in-process simulated terminal (tests step its clock)."""
    credentials = {"login": settings.mt5_login, "password": settings.mt5_password, "server": settings.mt5_server}
    if settings.mt5_mode == "sim":
        terminal = sim if sim is not None else make_sim(settings)
        return Mt5ApiGateway(lambda: terminal, credentials, name="sim")
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
        return Mt5ApiGateway(open_bridge, {}, name="bridge")
    import MetaTrader5  # noqa: N813 - Windows only; imported only in native mode

    if settings.mt5_path:
        credentials["path"] = settings.mt5_path
    return Mt5ApiGateway(lambda: MetaTrader5, credentials, name="native")


def make_sim(settings: Settings, stepped: bool = False) -> Any:
    from mt5bridge.sim import SimTerminal

    return SimTerminal(seed=settings.sim_seed, speed=settings.sim_speed, stepped=stepped)
