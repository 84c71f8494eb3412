"""The trade server's wall clock: what MT5 writes as "epoch seconds" in every tick, bar and deal.

A real terminal reports times as the *server's* local wall clock encoded as if it were UTC; most FX
brokers run GMT+2 in northern winter and GMT+3 in summer, switching on the US daylight-saving
dates so that server midnight is always 17:00 in New York (the FX daily close). The US rule is
written out here instead of using ``zoneinfo``: the bridge server runs on a bare Windows Python,
which has no time-zone database unless the tzdata package is installed.
"""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

HOUR = 3600
#: Names a profile may use for ``account.server_time``.
RULES = ("utc", "fixed", "us-dst")


def _nth_sunday(year: int, month: int, n: int) -> datetime:
    first = datetime(year, month, 1, tzinfo=UTC)
    to_sunday = (6 - first.weekday()) % 7
    return first + timedelta(days=to_sunday + 7 * (n - 1))


def us_dst_bounds(year: int) -> tuple[float, float]:
    """UTC epochs when US daylight saving starts and ends (rule in force since 2007).

    It starts on the second Sunday of March at 02:00 EST (07:00 UTC) and ends on the first
    Sunday of November at 02:00 EDT (06:00 UTC).
    """
    start = _nth_sunday(year, 3, 2) + timedelta(hours=7)
    end = _nth_sunday(year, 11, 1) + timedelta(hours=6)
    return start.timestamp(), end.timestamp()


def in_us_dst(utc_epoch: float) -> bool:
    year = datetime.fromtimestamp(utc_epoch, UTC).year
    start, end = us_dst_bounds(year)
    return start <= utc_epoch < end


@dataclass(frozen=True)
class ServerTime:
    """A server clock rule: ``utc``, ``fixed`` (``offset_hours``) or ``us-dst`` (``offset_hours``/+1)."""

    rule: str = "utc"
    offset_hours: float = 0.0  # fixed offset, or the winter offset of us-dst

    def offset(self, utc_epoch: float) -> int:
        """Seconds to add to UTC to get the server wall clock at ``utc_epoch``."""
        if self.rule == "utc":
            return 0
        seconds = round(self.offset_hours * HOUR)
        if self.rule == "us-dst" and in_us_dst(utc_epoch):
            seconds += HOUR
        return seconds

    def to_server(self, utc_epoch: float) -> float:
        return utc_epoch + self.offset(utc_epoch)

    def describe(self) -> str:
        if self.rule == "utc":
            return "UTC"
        base = f"GMT{self.offset_hours:+g}"
        return base if self.rule == "fixed" else f"{base}/GMT{self.offset_hours + 1:+g} (US DST)"
