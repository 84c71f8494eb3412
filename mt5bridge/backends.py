"""What the bridge server calls into: the real MetaTrader5 module or the simulated terminal.

Both offer the MetaTrader5 call surface (same names, same argument rules, same result shapes):
the sim backend is the module-shaped stand-in ``mt5bridge.sim.mt5module.Mt5Module``.
The MetaTrader5 package is imported lazily because it only exists in Windows Python next
to terminal64.exe; the simulator is imported only when asked for, so the server runs on a
Windows Python that has nothing but MetaTrader5 and numpy.
"""

import logging
import os
from typing import Any

from mt5bridge.signatures import SIGNATURES

log = logging.getLogger("mt5bridge.backend")

BACKEND_NAMES = ("metatrader5", "sim")


class BackendUnavailable(RuntimeError):
    """The requested backend cannot be created here (e.g. MetaTrader5 missing on Linux)."""


class Metatrader5Backend:
    """Thin wrapper over the MetaTrader5 module: every package function passes straight through.

    Its only addition: initialize() without credentials logs in with MT5_LOGIN /
    MT5_PASSWORD / MT5_SERVER / MT5_PATH from the server's environment, so the password
    lives next to the terminal and never travels over the bridge.
    """

    def __init__(self, module: Any = None, environ: dict[str, str] | None = None) -> None:
        if module is None:
            try:
                import MetaTrader5 as module  # noqa: N813 - the package's own name
            except ImportError as exc:
                raise BackendUnavailable(
                    f"the MetaTrader5 package is not importable ({exc}); it runs only in Windows Python"
                ) from exc
        self._mt5 = module
        self._environ = os.environ if environ is None else environ

    def _env_credentials(self) -> tuple[str | None, dict[str, Any]]:
        """(path, keyword credentials) from the environment; values are never logged."""
        path = self._environ.get("MT5_PATH") or None
        credentials: dict[str, Any] = {}
        raw_login = self._environ.get("MT5_LOGIN", "").strip()
        if raw_login:
            try:
                credentials["login"] = int(raw_login)
            except ValueError:
                raise ValueError("MT5_LOGIN must be an integer account number") from None
        if self._environ.get("MT5_PASSWORD"):
            credentials["password"] = self._environ["MT5_PASSWORD"]
        if self._environ.get("MT5_SERVER"):
            credentials["server"] = self._environ["MT5_SERVER"]
        return path, credentials

    def initialize(self, path: str | None = None, **kwargs: Any) -> bool:
        has_credentials = any(kwargs.get(key) is not None for key in ("login", "password", "server"))
        if not has_credentials:
            env_path, credentials = self._env_credentials()
            path = path or env_path
            kwargs.update(credentials)
            log.info(
                "initialize with the server's environment credentials (login set: %s)", "login" in credentials
            )
        if path:
            return self._mt5.initialize(path, **kwargs) if kwargs else self._mt5.initialize(path)
        return self._mt5.initialize(**kwargs) if kwargs else self._mt5.initialize()


def _passthrough(name: str):
    def call(self: "Metatrader5Backend", *args: Any, **kwargs: Any) -> Any:
        method = getattr(self._mt5, name)
        # An empty **{} would make the package refuse positional arguments: splat only when needed.
        return method(*args, **kwargs) if kwargs else method(*args)

    call.__name__ = name
    return call


for _name in SIGNATURES:
    if _name != "initialize":
        setattr(Metatrader5Backend, _name, _passthrough(_name))


def make_backend(name: str, **options: Any) -> Any:
    """Create the backend called ``name`` ("metatrader5" or "sim").

    ``options`` go to the sim's constructor (seed, speed, stepped, start, state_file, ...);
    the metatrader5 backend takes none (its credentials come from the environment).
    """
    if name == "metatrader5":
        if options:
            raise ValueError(f"the metatrader5 backend takes no options, got {sorted(options)}")
        return Metatrader5Backend()
    if name == "sim":
        from mt5bridge.sim import SimTerminal
        from mt5bridge.sim.mt5module import Mt5Module

        return Mt5Module(SimTerminal(**options))
    raise ValueError(f"unknown backend {name!r}; expected one of {', '.join(BACKEND_NAMES)}")
