"""Raise and resolve alerts straight into Alertmanager's v2 API, from a background thread.

Why direct alerts: some conditions are only known inside the bot (a breaker opened,
an order with unknown outcome) and should page without waiting for a scrape and a
rule. Why a thread: Alertmanager being down must never slow or break the trading
loop — :meth:`AlertmanagerClient.fire` and :meth:`resolve` only record the wish;
the sender POSTs, retries with backoff, and logs failures at WARNING.

Alertmanager expires an alert that has no ``endsAt`` after its ``resolve_timeout``
(5 min by default), so firing alerts are re-sent every ``resend_interval`` seconds;
``startsAt`` is kept from the first fire, and resolve sends ``endsAt`` = now. Firing
the same alert again with the same content is a no-op, so the engine may call fire()
every cycle while a condition holds.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from bot.telemetry.http_push import Pusher, backoff_delay, retry_after_seconds

log = logging.getLogger(__name__)

ALERTS_PATH = "/api/v2/alerts"
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")

_Key = tuple[str, tuple[tuple[str, str], ...]]


def _now_rfc3339() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _clean_labels(labels: Mapping[str, Any]) -> dict[str, str]:
    cleaned = {}
    for name, value in labels.items():
        if not _LABEL_NAME.match(name):
            raise ValueError(f"invalid alert label name {name!r}: must match [a-zA-Z_][a-zA-Z0-9_]*")
        if value is None or str(value) == "":
            raise ValueError(f"alert label {name!r} needs a non-empty value")
        cleaned[name] = str(value)
    return cleaned


class AlertmanagerClient:
    """Non-blocking Alertmanager v2 client for alerts raised by the bot itself.

    ``labels`` (e.g. account, service) are added to every alert. An alert is identified
    by its ``alertname`` plus the extra ``**labels`` given to fire()/resolve();
    ``severity`` is a label too but not part of the identity, so resolve() needs no severity.
    """

    def __init__(
        self,
        url: str,
        labels: Mapping[str, str],
        timeout: float = 5,
        *,
        resend_interval: float = 60.0,
        min_backoff: float = 1.0,
        max_backoff: float = 60.0,
        generator_url: str | None = None,
    ) -> None:
        if not timeout > 0 or not resend_interval > 0:
            raise ValueError("Alertmanager timeout and resend_interval must be > 0 seconds")
        self._pusher = Pusher(url, ALERTS_PATH, "Alertmanager")
        self._base_labels = _clean_labels(labels)
        self._timeout = float(timeout)
        self._resend_interval = float(resend_interval)
        self._min_backoff = min_backoff
        self._max_backoff = max_backoff
        self._generator_url = generator_url
        self._lock = threading.Lock()
        self._firing: dict[_Key, dict[str, Any]] = {}
        self._outbox: dict[Any, dict[str, Any]] = {}
        self._wake = threading.Event()
        self._closing = threading.Event()
        self._deadline = float("inf")
        self._failures = 0
        self.posts_ok = 0  # successful POSTs (observability and tests)
        self._thread = threading.Thread(target=self._run, name="alertmanager-push", daemon=True)
        self._thread.start()

    # -- caller side (never blocks) ------------------------------------------------------

    def fire(self, alertname: str, severity: str, summary: str, description: str, **labels: Any) -> None:
        """Raise (or keep raising) an alert; unchanged repeats cost nothing."""
        key = self._key(alertname, labels)
        full_labels = {**self._base_labels, **_clean_labels(labels), "alertname": alertname,
                       **_clean_labels({"severity": severity})}
        annotations = {"summary": str(summary), "description": str(description)}
        with self._lock:
            current = self._firing.get(key)
            if current is not None and current["labels"] == full_labels and current["annotations"] == annotations:
                return
            if current is not None and current["labels"] != full_labels:
                # Severity changed: Alertmanager sees a different alert; close the old one.
                self._outbox[("replaced", key, current["labels"]["severity"])] = self._ended(current)
                current = None
            alert = {"labels": full_labels, "annotations": annotations,
                     "startsAt": current["startsAt"] if current else _now_rfc3339()}
            if self._generator_url:
                alert["generatorURL"] = self._generator_url
            self._firing[key] = alert
            self._outbox[key] = alert
        self._wake.set()

    def resolve(self, alertname: str, **labels: Any) -> None:
        """Resolve an alert fired by this process (``endsAt`` = now).

        Unknown alerts (e.g. fired before a restart) are resolved only when ``severity``
        is given, since Alertmanager matches on every label; otherwise this is a no-op and
        Alertmanager expires the alert after its resolve_timeout.
        """
        severity = labels.pop("severity", None)
        key = self._key(alertname, labels)
        with self._lock:
            current = self._firing.pop(key, None)
            if current is None:
                if severity is None:
                    log.debug("resolve of an alert not fired here ignored", extra={"alertname": alertname})
                    return
                now = _now_rfc3339()
                current = {"labels": {**self._base_labels, **_clean_labels(labels), "alertname": alertname,
                                      **_clean_labels({"severity": severity})},
                           "annotations": {}, "startsAt": now}
            self._outbox[key] = self._ended(current)
        self._wake.set()

    def firing(self) -> list[dict[str, str]]:
        """Labels of the alerts this process currently holds as firing (for /status)."""
        with self._lock:
            return [dict(alert["labels"]) for alert in self._firing.values()]

    def close(self, timeout: float = 5.0) -> None:
        """Send pending changes within ``timeout`` seconds, then stop. Firing alerts are left
        to expire in Alertmanager (a stopped bot has not fixed anything)."""
        if self._closing.is_set():
            return
        self._deadline = time.monotonic() + max(timeout, 0.0)
        self._closing.set()
        self._wake.set()
        self._thread.join(max(0.0, self._deadline - time.monotonic()))
        if self._thread.is_alive():
            self._pusher.abort()
            self._thread.join(0.2)

    # -- sender thread -------------------------------------------------------------------

    def _key(self, alertname: str, labels: Mapping[str, Any]) -> _Key:
        if not alertname or not isinstance(alertname, str):
            raise ValueError(f"alertname must be a non-empty string, got {alertname!r}")
        return alertname, tuple(sorted(_clean_labels(labels).items()))

    @staticmethod
    def _ended(alert: dict[str, Any]) -> dict[str, Any]:
        ended = dict(alert)
        ended["endsAt"] = max(_now_rfc3339(), alert["startsAt"])
        return ended

    def _run(self) -> None:
        next_resend = time.monotonic() + self._resend_interval
        retry_at = 0.0
        while True:
            closing = self._closing.is_set()
            now = time.monotonic()
            if closing:
                if not self._outbox or now >= self._deadline:
                    return
            elif now < retry_at or (not self._outbox and now < next_resend):
                # Backing off, or idle until the next resend; fire()/close() wake us early
                # and the loop re-checks (a wake during back-off just waits again).
                self._wake.wait((retry_at if now < retry_at else next_resend) - now)
                self._wake.clear()
                continue
            with self._lock:
                batch = dict(self._outbox)
                self._outbox.clear()
                if not closing and time.monotonic() >= next_resend:
                    for key, alert in self._firing.items():
                        batch.setdefault(key, alert)
                    next_resend = time.monotonic() + self._resend_interval
            if not batch:
                continue
            sent, retry_after = self._post(list(batch.values()), closing)
            if sent:
                self._failures = 0
                retry_at = 0.0
                continue
            with self._lock:
                for key, alert in batch.items():
                    self._outbox.setdefault(key, alert)  # newer changes win over the failed ones
            if closing:
                return  # one attempt at shutdown; the deadline is short
            retry_at = time.monotonic() + backoff_delay(self._failures - 1, self._min_backoff, self._max_backoff,
                                                        retry_after)

    def _post(self, alerts: list[dict[str, Any]], closing: bool) -> tuple[bool, float | None]:
        """POST once; True when delivered or permanently rejected (nothing to retry)."""
        timeout = min(self._timeout, self._deadline - time.monotonic()) if closing else self._timeout
        if timeout <= 0:
            return False, None
        body = json.dumps(alerts).encode("utf-8")
        try:
            reply = self._pusher.post(body, {"Content-Type": "application/json"}, timeout)
        except Exception as exc:
            self._record_failure(f"{exc.__class__.__name__}: {exc}", len(alerts))
            return False, None
        if reply.ok:
            self.posts_ok += 1
            if self._failures:
                log.info("Alertmanager reachable again", extra={"alertmanager": self._pusher.target})
            return True, None
        detail = reply.body[:300].decode("utf-8", "replace").strip()
        if not reply.retryable:
            log.warning("Alertmanager rejected alerts; dropped",
                        extra={"status": reply.status, "detail": detail, "alerts": len(alerts)})
            return True, None
        self._record_failure(f"HTTP {reply.status}: {detail}", len(alerts))
        return False, retry_after_seconds(reply.headers.get("Retry-After"))

    def _record_failure(self, problem: str, count: int) -> None:
        self._failures += 1
        level = logging.WARNING if self._failures == 1 else logging.DEBUG
        log.log(level, "sending alerts to Alertmanager failed; will retry",
                extra={"alertmanager": self._pusher.target, "error": problem, "alerts": count,
                       "attempt": self._failures})
