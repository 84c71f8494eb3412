"""The schema's fast yes for a whole record, compiled once per record kind (issue 16).

`bot.gateway.schema` judges every position, quote, account and symbol record every cycle. Its fast
yes was one small function per field (as tests/quick_reference.py still writes it), called in a loop: ~50 calls a cycle whose
frames cost more than the comparisons they make. `compile_record` writes the same tests out as
the source of one function per kind, with each rule's limits bound by name and the branches that
cannot apply to the rule left out, and compiles it once at import. It says True exactly where
every field's per-field fast yes says True, asking in the same order and stopping at the
same field (`context.symbol_known` may ask the terminal, so even that is the same); anything else
is judged field by field by the full rules, which name the problem. The tests check the two
against each other on hostile values.

Why source text rather than closures: only a single frame per record removes the per-field call;
dataclasses and namedtuple build their methods the same way.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple


class QuickRule(NamedTuple):
    """What the fast yes of one field depends on (see schema._quick_rule)."""

    name: str
    text: bool  # a text field; else a number (int, float or time)
    optional: bool
    whole: bool = False  # an int field: a float must be integral
    is_time: bool = False
    relative: bool = True  # a time within the window around the broker clock
    positive: bool = False
    non_negative: bool = False
    limit: float = math.inf
    choices: frozenset[int] | None = None
    max_len: float = math.inf
    symbol: bool = False  # a text that must be a symbol the terminal knows


def _number(index: int, rule: QuickRule, consts: dict[str, Any]) -> list[str]:
    limit = f"L{index}"
    consts[limit], consts[f"M{limit}"] = rule.limit, -rule.limit
    # A float must be finite (and integral for an int field); within a finite limit it is finite:
    # NaN fails every comparison and an infinity the limit's, below.
    float_tests = ([] if math.isfinite(rule.limit) else ["not -inf < v < inf"]) + (
        ["not v.is_integer()"] if rule.whole else [])
    if float_tests:
        lines = ["t = type(v)", "if t is float:", f"    if {' or '.join(float_tests)}:", "        return False",
                 "elif t is not int:", "    return False"]
    else:
        lines = ["t = type(v)", "if t is not float and t is not int:", "    return False"]
    rest = []
    tests = (["v <= 0"] if rule.positive else []) + (["v < 0"] if rule.non_negative else [])
    tests.append(f"not M{limit} < v < {limit}")
    if rule.choices is not None:
        consts[f"C{index}"] = rule.choices
        tests.append(f"v not in C{index}")
    rest += [f"if {' or '.join(tests)}:", "    return False"]
    if rule.is_time:
        rest += [f"first, last = context.window({rule.relative!r})", "if not first <= v <= last:", "    return False"]
    if rule.is_time and rule.optional:  # 0 is "no time"
        return lines + ["if v != 0:"] + ["    " + line for line in rest]
    return lines + rest


def _text(index: int, rule: QuickRule, consts: dict[str, Any]) -> list[str]:
    consts[f"X{index}"] = rule.max_len
    symbol = ' or v == "" or not context.symbol_known(v)' if rule.symbol else ""
    return [f"if type(v) is not str or len(v) > X{index}{symbol}:", "    return False"]


def compile_record(kind: str, rules: Sequence[QuickRule]) -> Callable[[Mapping[str, Any], Any], bool]:
    """One function (record, context) -> bool: every field of `rules`, in order, plainly good."""
    consts: dict[str, Any] = {"inf": math.inf}
    body = ["get = record.get"]
    for index, rule in enumerate(rules):
        consts[f"N{index}"] = rule.name
        tests = (_text if rule.text else _number)(index, rule, consts)
        body.append(f"v = get(N{index})")
        if rule.optional:  # missing is fine; a required one missing (None) fails its type test
            body += ["if v is not None:"] + ["    " + line for line in tests]
        else:
            body += tests
    body.append("return True")
    name = f"{kind}_plainly_good"
    source = f"def {name}(record, context):\n" + "".join(f"    {line}\n" for line in body)
    namespace = dict(consts)
    exec(compile(source, f"<bot.gateway.quickcheck {kind}>", "exec"), namespace)  # noqa: S102 - our own text
    function = namespace[name]
    function.source = source  # for the curious and for the tests
    return function
