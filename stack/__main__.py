"""`python -m stack up|down|status`: the monitoring stack without Docker (`make stack`, `make stack-down`).

Settings from the environment: STACK_DIR (default .stack), SIM_SPEED (default 60: simulated
seconds per wall second, for the bridge and the bot), LOKI_URL (an external Loki to push logs to
and to scrape), else LOKI_BIN (a Loki binary the stack runs on loopback with loki/loki.yml, its
data under STACK_DIR/loki), else `loki` on PATH; with none, logs go to stdout only. Ports are the compose ones when free, else any free port; `up` prints them.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from stack.native import DEFAULT_ROOT, NativeStack, StackError, StackSettings

log = logging.getLogger("stack")


def _settings() -> StackSettings:
    raw_speed = os.environ.get("SIM_SPEED", "").strip() or "60"
    try:
        speed = float(raw_speed)
    except ValueError:
        raise StackError(f"SIM_SPEED must be a number, got {raw_speed!r}") from None
    if not speed > 0:
        raise StackError(f"SIM_SPEED must be greater than 0, got {raw_speed!r}")
    loki = os.environ.get("LOKI_URL", "").strip().rstrip("/") or None
    if loki and not loki.startswith(("http://", "https://")):
        raise StackError("LOKI_URL must start with http:// or https://")
    return StackSettings(root=_root(), speed=speed, loki_url=loki)


def _root() -> Path:
    return Path(os.environ.get("STACK_DIR", "").strip() or DEFAULT_ROOT)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stack", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["up", "down", "status"])
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        if args.command == "up":
            stack = NativeStack(_settings())
            urls = stack.up()
            log.info("stack is up (state, logs and pid files in %s):", stack.root)
            for name, url in urls.items():
                log.info("  %-13s %s", name, url)
            log.info("stop it with: make stack-down")
        elif args.command == "down":
            stopped = NativeStack.from_root(_root()).down()
            log.info("stopped: %s", ", ".join(stopped) or "nothing was running")
        else:
            stack = NativeStack.from_root(_root())
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
