"""exporter/exposition.py writes exactly what prometheus_client's generate_latest writes, only faster."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector

from exporter.exposition import Rows, render

HOSTILE = ['plain', 'quote"d', "back\\slash", "new\nline", "ünïcode €", "", "a,b=c}{"]


class Families(Collector):
    def __init__(self, families) -> None:
        self.families = families

    def collect(self):
        return iter(self.families)


def rows_families():
    gauge = Rows("tradewatch_test_gauge", "A gauge.\nWith \\ a second line.", labels=["symbol", "account"])
    for k, value in enumerate(HOSTILE):
        gauge.add((value, str(k)), [0.1, -2, float("inf"), float("-inf"), 1e21, 123456789.0, 0][k % 7])
    counter = Rows("tradewatch_test_things", "Things.", labels=["result"], kind="counter")
    for result, count in (("win", 3), ("loss", 0), ("big", 1_234_567), ("bigger", 10**17), ("minus", -999_999_999)):
        counter.add((result,), count)
    bare = Rows("tradewatch_test_bare", "No labels.", labels=[])
    bare.add((), 1.5)
    return [gauge, counter, bare, Rows("tradewatch_test_empty", "No rows.", labels=["account"])]


def test_rows_render_as_generate_latest_renders_their_samples():
    families = Families(rows_families())
    text = render(families)
    assert text == generate_latest(families)
    assert b'symbol="quote\\"d"' in text and b'symbol="new\\nline"' in text
    assert b"tradewatch_test_things_total{result=\"win\"} 3.0\n" in text


def test_library_families_render_the_same_including_created_samples():
    registry = CollectorRegistry(auto_describe=False)
    counter = Counter("tradewatch_test_requests", "Requests.", ["code"], registry=registry)
    counter.labels("404").inc()
    counter.labels('we"ird').inc(2)
    Gauge("tradewatch_test_level", "A level.", registry=registry).set(0.25)
    gauge = GaugeMetricFamily("tradewatch_test_family", "Family.", labels=["account"])
    for value in HOSTILE:
        gauge.add_metric([value], 1)
    closed = CounterMetricFamily("tradewatch_test_closed", "Closed.", labels=["account"])
    closed.add_metric(["1"], 5)
    registry.register(Families([gauge, closed, *rows_families()]))
    text = render(registry)
    assert text == generate_latest(registry)
    assert b"tradewatch_test_requests_created" in text


def test_what_it_does_not_reproduce_goes_through_the_library():
    registry = CollectorRegistry(auto_describe=False)
    Histogram("tradewatch_test_seconds", "A histogram.", registry=registry).observe(0.3)
    registry.register(Families(rows_families()))
    assert render(registry) == generate_latest(registry)
    timed = GaugeMetricFamily("tradewatch_test_timed", "With a timestamp.")
    timed.add_metric([], 1.0, timestamp=1700000000)
    assert render(Families([timed])) == generate_latest(Families([timed]))


def test_rows_refuse_names_the_fast_path_cannot_write():
    with pytest.raises(ValueError, match="legacy"):
        Rows("trade-watch", "Bad name.", labels=[])
    with pytest.raises(ValueError, match="label name"):
        Rows("tradewatch_ok", "Bad label.", labels=["acc-ount"])
    with pytest.raises(ValueError):
        Rows("tradewatch_ok", "Bad kind.", labels=[], kind="histogram")


def test_blocks_of_the_same_source_are_reused_and_the_text_stays_exact():
    """Rows.block: an account's rows taken over (rows and lines) from the earlier family when built from the
    very same object, added afresh otherwise; around plain rows, the text is generate_latest's."""
    kept, moved = [("a", 1.5), ("b", -2)], [("a", 7)]

    built = []  # the accounts whose rows were added (not taken over)

    def build(sources, earlier=None):
        family = Rows("tradewatch_test_blocks", "Blocks.", labels=["account", "strategy"])
        if earlier is not None:
            family.reuse_prefixes(earlier)
        family.add(("0", "plain"), 1)
        for account, source in sources:
            def add(rows, a=account, s=source):
                built.append(a)
                for k, v in s:
                    rows.add((a, k), v)
            family.block(source, add)
            family.add((account, "between"), 2)
        return family

    first = build([("1", kept), ("2", moved)])
    assert render(Families([first])) == generate_latest(Families([first]))
    adds = []
    moved_now = [("a", 8), ("c", 9)]
    built.clear()
    second = build([("1", kept), ("2", moved_now)], first)
    assert built == ["2"]
    second.block(adds, lambda rows: adds.append("added"))  # a new source: its rows are added
    assert adds == ["added"]
    reused = build([("1", kept)], second)  # not rendered yet: nothing to take over, the rows are added
    text = render(Families([second]))
    assert text == generate_latest(Families([second]))
    assert b'tradewatch_test_blocks{account="2",strategy="c"} 9.0' in text
    assert render(Families([reused])) == generate_latest(Families([reused]))
    built.clear()
    third = build([("1", kept), ("2", moved_now)], second)  # both taken over: the same rows, the same text
    assert built == []
    assert [s for s in third.samples] == [s for s in second.samples]
    assert render(Families([third])) == text
