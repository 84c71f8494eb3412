"""`python -m stack up|down|status`: the monitoring stack without Docker (`make stack`, `make stack-down`).

Settings from the environment: STACK_DIR (default .stack), SIM_SPEED (default 60: simulated
seconds per wall second, for the bridge and the bot), LOKI_URL (an external Loki to push logs to
and to scrape), else LOKI_BIN (a Loki binary the stack runs on loopback with loki/loki.yml, its
data under STACK_DIR/loki), else `loki` on PATH; with none, logs go to stdout only. Ports are the compose ones when free, else any free port; `up` prints them.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import confcheck
from stack.native import DEFAULT_ROOT, NativeStack, StackError, StackSettings

log = logging.getLogger("stack")
_SPEED = confcheck.number(0, 1_000_000, above=True)


def _settings() -> StackSettings:
    """SIM_SPEED, LOKI_URL and STACK_DIR for `up`; a bad one is a confcheck.SettingError naming it."""
    raw_speed = os.environ.get("SIM_SPEED", "")
    speed = confcheck.read("SIM_SPEED", raw_speed, _SPEED) if raw_speed.strip() else 60.0
    loki = confcheck.read("LOKI_URL", os.environ.get("LOKI_URL", ""), confcheck.optional(confcheck.url()))
    return StackSettings(root=confcheck.read("STACK_DIR", os.environ.get("STACK_DIR", ""), _stack_dir),
                         speed=speed, loki_url=loki)


def _stack_dir(raw: str) -> Path:
    """The state folder `up` creates (or reuses): an existing writable folder, or one its parent can hold."""
    root = Path(confcheck.text(1024)(raw) or DEFAULT_ROOT)
    if root.exists() and not root.is_dir():
        raise ValueError("exists and is not a folder")
    confcheck.writable_file(str(root / ".probe") if root.is_dir() else str(root))
    return root


def _root() -> Path:
    return Path(confcheck.read("STACK_DIR", os.environ.get("STACK_DIR", ""), confcheck.text(1024)) or DEFAULT_ROOT)


def main(argv: list[str] | None = None) -> int:
    parser = confcheck.OneLineParser(prog="python -m stack", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["up", "down", "status"])
    args = parser.parse_args(argv)
    try:
        settings = _settings() if args.command == "up" else None
        root = _root()
    except confcheck.SettingError as exc:
        parser.exit(2, f"{parser.prog}: config error: {exc}\n")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        if args.command == "up":
            stack = NativeStack(settings)
            urls = stack.up()
            log.info("stack is up (state, logs and pid files in %s):", stack.root)
            for name, url in urls.items():
                log.info("  %-13s %s", name, url)
            log.info("stop it with: make stack-down")
        elif args.command == "down":
            stopped = NativeStack.from_root(root).down()
            log.info("stopped: %s", ", ".join(stopped) or "nothing was running")
        else:
            stack = NativeStack.from_root(root)
            running = stack.status()
            for name, up in running.items():
                where = stack.urls.get(name, "") if stack.ports else ""
                log.info("  %-13s %-8s %s", name, "running" if up else "stopped", where)
            return 0 if all(running.values()) else 1
    except StackError as exc:
        log.error("%s", exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
