"""Bounded HTTP serving for the bot's telemetry and the exporter: one waitress profile for both.

Why waitress with these numbers: a production WSGI server whose connections live in one
asyncore (poll) loop, so an idle or half-sent connection costs a file descriptor, never a
thread; requests are handed to a FIXED pool of worker threads only once fully read.  The
stdlib ThreadingHTTPServer it replaces made one thread per connection (1 500 held
connections = 1 503 threads inside the trading process).

- ``connection_limit`` is far above what a scraper, a health probe and an operator need,
  so that 1 000 hostile connections still leave room for a scrape; above it waitress stops
  accepting until the reaper frees slots (bounded memory, no crash).
- ``channel_timeout``: a connection with no byte received or sent for this long is closed
  (idle keep-alives and stalled half-sent requests), checked every ``cleanup_interval``.
- Header and body size limits: the bot takes only GETs; the exporter's sink takes 1 MiB.
  (waitress answers its own refusals, 431 and 413, in plain text.)
- ``asyncore_use_poll``: select() cannot watch more than 1 024 descriptors.
The soft RLIMIT_NOFILE is raised (within the hard limit) so the connection limit is
reachable; if the hard limit is too low the connection limit is lowered, and said once.
"""

from __future__ import annotations

import logging
import resource
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import waitress
from waitress.server import BaseWSGIServer, MultiSocketServer

log = logging.getLogger(__name__)

_FD_HEADROOM = 256  # descriptors kept for the process's own files, database and broker connections


@dataclass(frozen=True, slots=True)
class ServerLimits:
    """waitress adjustments that bound what one client can hold (see the module docstring)."""

    threads: int = 4
    connection_limit: int = 2000
    channel_timeout: int = 20
    cleanup_interval: int = 2
    backlog: int = 2048
    max_request_header_size: int = 16 * 1024
    max_request_body_size: int = 1 << 20

    def adjustments(self) -> dict[str, Any]:
        return {
            "threads": self.threads,
            "connection_limit": self.connection_limit,
            "channel_timeout": self.channel_timeout,
            "cleanup_interval": self.cleanup_interval,
            "backlog": self.backlog,
            "max_request_header_size": self.max_request_header_size,
            "max_request_body_size": self.max_request_body_size,
            "asyncore_use_poll": True,
            "expose_tracebacks": False,
            "clear_untrusted_proxy_headers": True,
        }


#: The bot's telemetry server: GET only, tiny requests.
TELEMETRY_LIMITS = ServerLimits(threads=4, max_request_header_size=8 * 1024, max_request_body_size=1024)
#: The exporter: the app refuses bodies over 1 MiB with a JSON 413 (exporter.app.MAX_BODY_BYTES); waitress'
#: own, plain-text 413 only stops bodies beyond 8 MiB before they are buffered.
EXPORTER_LIMITS = ServerLimits(threads=4, max_request_body_size=8 << 20)


def fit_descriptor_limit(limits: ServerLimits) -> ServerLimits:
    """`limits` with a connection limit the process can actually hold open (raising the soft limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = limits.connection_limit + _FD_HEADROOM
    if soft != resource.RLIM_INFINITY and soft < wanted:
        target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    if soft != resource.RLIM_INFINITY and soft < wanted:
        lowered = max(16, int(soft) - _FD_HEADROOM)
        log.warning("open-file limit %d is too low for %d connections: serving at most %d",
                    soft, limits.connection_limit, lowered)
        return replace(limits, connection_limit=lowered)
    return limits


def create_bounded_server(app: Callable, host: str, port: int, limits: ServerLimits,
                          ident: str) -> BaseWSGIServer | MultiSocketServer:
    """A waitress server bound to host:port (0: any free port), not yet running."""
    fitted = fit_descriptor_limit(limits)
    return waitress.create_server(app, host=host, port=port, ident=ident, **fitted.adjustments())


class BackgroundServer:
    """A bounded waitress server run by one daemon thread; stop() closes every connection."""

    def __init__(self, app: Callable, host: str, port: int, limits: ServerLimits, ident: str,
                 thread_name: str) -> None:
        self.server = create_bounded_server(app, host, port, limits, ident)
        self._thread = threading.Thread(target=self.server.run, name=thread_name, daemon=True)

    @property
    def port(self) -> int:
        return int(self.server.effective_port)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Close the listener and every channel from inside the loop (asyncore is not thread-safe)."""
        done = threading.Event()

        def close_everything() -> None:
            for dispatcher in list(self.server._map.values()):
                if dispatcher is not self.server.trigger:
                    dispatcher.close()
            done.set()

        if self._thread.is_alive():
            try:
                self.server.trigger.pull_trigger(close_everything)
                done.wait(timeout)
            except OSError:  # the loop is already gone (its trigger closed): close from here instead
                close_everything()
            try:
                self.server.trigger.close()  # the map is empty now: the loop returns
            except OSError:
                pass  # already closed
            self._thread.join(timeout)
        else:
            self.server.close()
        self.server.task_dispatcher.shutdown(cancel_pending=True, timeout=timeout)
