"""The /metrics text of a registry: byte for byte what prometheus_client's generate_latest writes.

Why our own loop: prometheus_client 0.26 re-validates and re-escapes every label *name* of every
sample (a regex and a per-character escape each time), about 20 us a sample.  A fleet's scrape
has ~8 000 series (exporter/cardinality.py), which made that alone several times the 50 ms
budget of a scrape.  Here a family's label names are checked once, label values are escaped
once per distinct value (accounts, strategies and symbols repeat on every line), and the value
uses the library's own float formatting.  Any family this loop does not handle (a name or label
name outside the legacy character set, a timestamp, an exemplar, another type) makes the whole
scrape go through generate_latest instead, so the output never differs
(tests/test_exporter_exposition.py compares the two).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from prometheus_client.exposition import generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString

_LEGACY_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LEGACY_LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_MINUS_INF = float("-inf")
_TYPES = {"counter": "counter", "gauge": "gauge", "unknown": "untyped"}


class _Fallback(Exception):
    """A family this renderer does not reproduce exactly: use generate_latest."""


def render(registry: Collector) -> bytes:
    """The Prometheus text format (0.0.4) of everything `registry` collects."""
    metrics = list(registry.collect())
    try:
        return _render(metrics)
    except _Fallback:
        return generate_latest(_Collected(metrics))


class Rows(Metric):
    """A gauge or counter family kept as (label values, value) rows: what a fleet's trading figures are.

    Why: prometheus_client's families build a Sample and a label dict per series (add_metric), which
    render() then takes apart again; at thousands of series that was a third of the scrape.  `samples`
    still gives real Samples (generate_latest, tests), built only when asked for.  Its text is kept
    once rendered: the exporter reuses a family while the store is unchanged (exporter/metrics.py),
    and then does not write its lines again (so no row is to be added once it was rendered).
    reuse_prefixes(): take over the line prefixes (name and labels, escaped) of the same family of an
    earlier scrape where the label values are the same: a fleet's series stay, only values move.
    block(): rows that depend on one object alone (an account's totals, read again only when its
    rollups changed): when the earlier family rendered a block of that very object, its rows and
    lines are taken over instead of being added and written again."""

    def __init__(self, name: str, documentation: str, labels: Sequence[str], kind: str = "gauge") -> None:
        if kind not in ("gauge", "counter") or not _LEGACY_NAME.match(name):
            raise ValueError(f"Rows: {kind} {name!r} is not a legacy-named gauge or counter")
        if not all(_LEGACY_LABEL.match(label) for label in labels):
            raise ValueError(f"Rows: a label name of {name} is not in the legacy character set: {labels}")
        # Metric.__init__ is not called: it would assign `samples`, a property here.
        self.name, self.documentation, self.type, self.unit = name, documentation, kind, ""
        self.labels = tuple(labels)
        self.sample_name = name + "_total" if kind == "counter" else name
        self.rows: list[tuple[tuple[str, ...], float]] = []
        self.text: str | None = None  # the sample lines, once rendered
        self.prefixes: dict[tuple[str, ...], str] = {}  # label values -> 'name{labels} ', once rendered
        self._known: dict[tuple[str, ...], str] = {}
        # (source, first row, end row, its lines or None) per block, in row order
        self._blocks: list[list] = []
        self.rendered: dict[int, tuple[object, int, int, str]] = {}  # id(source) -> block, once rendered
        self._earlier: Rows | None = None

    def reuse_prefixes(self, previous: Rows) -> None:
        if (previous.sample_name, previous.labels) == (self.sample_name, self.labels):
            self._known = previous.prefixes
            self._earlier = previous
            previous._earlier = None  # its rows are built: no chain of earlier families, rendered or not

    def add(self, values: tuple[str, ...], value: float) -> None:
        self.rows.append((values, value))

    def block(self, source: object, add: Callable[[Rows], None]) -> None:
        """The rows `add(self)` adds, which depend on `source` alone (the same object: the same rows)."""
        earlier = self._earlier
        found = earlier.rendered.get(id(source)) if earlier is not None else None
        start = len(self.rows)
        if found is not None and found[0] is source:
            _, first, end, text = found
            self.rows.extend(earlier.rows[first:end])
        else:
            add(self)
            text = None
        self._blocks.append([source, start, len(self.rows), text])

    @property
    def samples(self) -> list[Sample]:  # type: ignore[override]
        return [Sample(self.sample_name, dict(zip(self.labels, values, strict=True)), float(value))
                for values, value in self.rows]


def _rows_text(metric: Rows, escaped: dict[str, str]) -> str:
    if metric.text is None:
        lines: list[str] = []
        done = 0
        for block in metric._blocks:
            source, first, end, text = block
            _render_rows(metric, done, first, lines, escaped)
            if text is None:
                mine: list[str] = []
                _render_rows(metric, first, end, mine, escaped)
                text = block[3] = "".join(mine)
            lines.append(text)
            metric.rendered[id(source)] = (source, first, end, text)
            done = end
        _render_rows(metric, done, len(metric.rows), lines, escaped)
        metric.text = "".join(lines)
        metric._known, metric._earlier, metric._blocks = {}, None, []  # bounded: only this scrape's are kept
    return metric.text


def _render_rows(metric: Rows, first: int, end: int, output: list[str], escaped: dict[str, str]) -> None:
    if first >= end:
        return
    rows = metric.rows[first:end] if first or end < len(metric.rows) else metric.rows
    order = sorted(range(len(metric.labels)), key=lambda i: metric.labels[i])  # generate_latest sorts by name
    name = metric.sample_name
    if not order:
        output.extend(f"{name} {_number(value)}\n" for _, value in rows)
        return
    # One format string per family: name{a="{}",b="{}"}   (braces of the text doubled)
    fill = (name + "{{" + ",".join(f'{metric.labels[i]}="{{}}"' for i in order) + "}} ").format
    known, prefixes = metric._known, metric.prefixes
    for values, value in rows:
        prefix = known.get(values)
        if prefix is None:
            texts = []
            for i in order:
                text = escaped.get(values[i])
                if text is None:
                    text = escaped[values[i]] = _escape(values[i])
                texts.append(text)
            prefix = fill(*texts)
        prefixes[values] = prefix
        output.append(f"{prefix}{_number(value)}\n")


def _number(value: float) -> str:
    """floatToGoString, with the counts (small ints, most of a scrape) and the floats it writes as repr()
    (finite, below 1e6: Go writes no exponent there) written directly: the same text."""
    kind = type(value)
    if kind is int and -10**15 < value < 1_000_000:
        return f"{value}.0"
    if kind is float and _MINUS_INF < value < 1_000_000.0:  # False for NaN and -Inf
        return repr(value)
    return floatToGoString(value)


def _escape(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _render(metrics: list) -> bytes:
    output: list[str] = []
    escaped: dict[str, str] = {}
    checked: set[str] = set()
    for metric in metrics:
        kind = _TYPES.get(metric.type)
        if kind is None:
            raise _Fallback
        name = metric.name + "_total" if metric.type == "counter" else metric.name
        help_text = metric.documentation.replace("\\", r"\\").replace("\n", r"\n")
        output.append(f"# HELP {name} {help_text}\n# TYPE {name} {kind}\n")
        if isinstance(metric, Rows):
            output.append(_rows_text(metric, escaped))
            continue
        created_name = metric.name + "_created"
        created: list[str] = []
        for sample in metric.samples:
            if sample.timestamp is not None or sample.exemplar is not None or sample.native_histogram is not None:
                raise _Fallback
            if sample.name not in checked:
                if not _LEGACY_NAME.match(sample.name):
                    raise _Fallback
                checked.add(sample.name)
            labels = sample.labels
            if labels:
                pairs = []
                for key in sorted(labels):
                    if key not in checked:
                        if not _LEGACY_LABEL.match(key):
                            raise _Fallback
                        checked.add(key)
                    value = labels[key]
                    text = escaped.get(value)
                    if text is None:
                        text = escaped[value] = _escape(value)
                    pairs.append(f'{key}="{text}"')
                line = f"{sample.name}{{{','.join(pairs)}}} {_number(sample.value)}\n"
            else:
                line = f"{sample.name} {_number(sample.value)}\n"
            if sample.name == created_name:
                created.append(line)
            elif sample.name in (metric.name + "_gsum", metric.name + "_gcount"):
                raise _Fallback
            else:
                output.append(line)
        if created:
            output.append(f"# HELP {created_name} {help_text}\n# TYPE {created_name} gauge\n")
            output.extend(created)
    return "".join(output).encode("utf-8")


class _Collected(Collector):
    """Families already collected, handed to generate_latest without collecting (reading the store) twice."""

    def __init__(self, metrics: list) -> None:
        self._metrics = metrics

    def collect(self):
        return iter(self._metrics)
