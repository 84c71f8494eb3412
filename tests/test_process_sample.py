"""bot.telemetry.process_sample: the history's cheap process samples give psutil's figures."""

from __future__ import annotations

from types import SimpleNamespace

import psutil

from bot.telemetry import process_sample
from bot.telemetry.process_sample import ProcessSampler


def test_rss_is_psutils_and_cpu_percent_is_cpu_seconds_over_wall_seconds(monkeypatch):
    clock = {"wall": 1000.0, "cpu": 50.0}
    monkeypatch.setattr(process_sample, "time", SimpleNamespace(monotonic=lambda: clock["wall"],
                                                                process_time=lambda: clock["cpu"]))
    sampler = ProcessSampler()
    rss, _ = sampler.sample()
    assert abs(rss - psutil.Process().memory_info().rss) < 8 * 2**20  # the same figure, moments apart
    assert rss % process_sample._PAGE == 0
    clock["wall"] += 10
    clock["cpu"] += 2.5
    assert sampler.sample()[1] == 25.0
    clock["wall"] += 4
    clock["cpu"] += 6  # two busy threads
    assert sampler.sample()[1] == 150.0
    assert sampler.sample()[1] == 0.0  # no time between two samples: no interval


def test_without_proc_psutil_answers(monkeypatch):
    monkeypatch.setattr(process_sample, "_STATM", "/nonexistent/statm")
    monkeypatch.setattr(process_sample, "_open", [None, None])
    sampler = ProcessSampler()
    assert sampler._process is not None
    rss, cpu = sampler.sample()
    assert abs(rss - psutil.Process().memory_info().rss) < 8 * 2**20
    assert cpu >= 0.0
