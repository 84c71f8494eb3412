"""The chaos suite (short version of `python -m bench.chaos`): the real bot process, the simulated
broker behind the real bridge with --state, a real Postgres, Loki unreachable. Bridge SIGKILLed (also
mid-order), Postgres stopped and restarted, the bot SIGKILLed and restarted; then the broker is
frozen, the bot makes a last reconciling run against it, and only then is the simulator's own
history compared with the store and the bot's logs (a free-running broker would keep closing
positions at their stops after the bot's last look: that is not a loss, and must not count as one).

On every shipped broker profile (the bridge plays it with --broker; the bot trades its symbol names):
one round of every fault kind per profile, the four runs at the same time (most of a run is waiting
for processes and faults, so together they take about what the former three-round demo run took).
The long runs stay in `make bench` / `make chaos`."""

from __future__ import annotations

import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sim_profile_helpers import broker_symbols, shipped_profiles

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.chaos import run_chaos  # noqa: E402

PROFILES = shipped_profiles()


@pytest.fixture(scope="module")
def chaos_runs(tmp_path_factory):
    workdirs = {profile: tmp_path_factory.mktemp(f"chaos-{profile}") for profile in PROFILES}  # not thread-safe

    def one(profile: str):
        return run_chaos(workdirs[profile], rounds=1, bridge_kills_per_round=1, pg_every=1,
                         bot_kill_every=1, settle_seconds=12.0, pause=1.5, trip_order_breaker=True,
                         broker=profile, symbols=",".join(broker_symbols(profile)))

    with ThreadPoolExecutor(max_workers=len(PROFILES)) as pool:
        futures = {profile: pool.submit(one, profile) for profile in PROFILES}
        return {profile: future.result() for profile, future in futures.items()}


@pytest.mark.timeout(300)
@pytest.mark.parametrize("profile", PROFILES)
def test_chaos_loses_nothing_and_sends_nothing_twice(chaos_runs, profile):
    result = chaos_runs[profile]
    figures = result.figures()
    assert result.bridge_kills == 2 and result.mid_order_kills == 1, figures
    assert result.pg_restarts == 1 and result.bot_kills == 1, figures
    assert result.cycles > 60 and result.broker_orders > 3 and result.broker_deals > 3, figures
    assert result.lost_deal_rows == 0 and result.lost_trade_rows == 0, figures
    assert result.duplicate_orders == 0, figures
    assert result.sent_past_ttl == 0 and result.sent_past_deviation == 0, figures
    assert result.unresolved == 0, figures
    assert result.untraced_in_logs == 0, figures
    assert result.bot_exits_by_itself == [] and result.shutdown_code == 0, figures
    assert result.final_run_code == 0, figures
    assert len(result.reconnect_seconds) >= result.bridge_kills - 1, figures  # the bot reconnected each time
    assert result.spool_drain_seconds, figures  # writes spooled while Postgres was down reached it
