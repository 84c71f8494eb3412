"""The chaos suite (short version of `python -m bench.chaos`): the real bot process, the simulated
broker behind the real bridge with --state, a real Postgres, Loki unreachable. Bridge SIGKILLed (also
mid-order), Postgres stopped and restarted, the bot SIGKILLed and restarted; then the broker is
frozen, the bot makes a last reconciling run against it, and only then is the simulator's own
history compared with the store and the bot's logs (a free-running broker would keep closing
positions at their stops after the bot's last look: that is not a loss, and must not count as one)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.chaos import run_chaos  # noqa: E402


@pytest.mark.timeout(240)
def test_chaos_loses_nothing_and_sends_nothing_twice(tmp_path):
    result = run_chaos(tmp_path, rounds=3, bridge_kills_per_round=1, pg_every=2, bot_kill_every=2,
                       settle_seconds=12.0, pause=1.5, trip_order_breaker=True)
    figures = result.figures()
    assert result.bridge_kills == 6 and result.mid_order_kills == 3, figures
    assert result.pg_restarts == 2 and result.bot_kills == 1, figures
    assert result.cycles > 200 and result.broker_orders > 10 and result.broker_deals > 10, figures
    assert result.lost_deal_rows == 0 and result.lost_trade_rows == 0, figures
    assert result.duplicate_orders == 0, figures
    assert result.sent_past_ttl == 0 and result.sent_past_deviation == 0, figures
    assert result.unresolved == 0, figures
    assert result.untraced_in_logs == 0, figures
    assert result.bot_exits_by_itself == [] and result.shutdown_code == 0, figures
    assert result.final_run_code == 0, figures
    assert len(result.reconnect_seconds) >= result.bridge_kills - 1, figures  # the bot reconnected each time
    assert result.spool_drain_seconds, figures  # writes spooled while Postgres was down reached it
