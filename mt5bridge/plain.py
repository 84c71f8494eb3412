"""Turn MetaTrader5 results into plain, JSON-able Python data.

MetaTrader5 returns namedtuples (some nesting another namedtuple, like
OrderSendResult.request), tuples of namedtuples, and numpy structured arrays for rates.
None of that may cross the bridge (an object protocol would hand out references that die with the
connection), and the bot's gateway wants the same plain shapes in-process. numpy is
duck-typed so this module imports nothing: the bridge server runs on a bare Windows Python.
"""

from typing import Any

_SCALARS = frozenset((str, int, float, bool, type(None)))
_STR = frozenset((str,))


def to_plain(obj: Any) -> Any:
    """Convert an MT5 result to dicts, lists and Python scalars (None stays None).

    - namedtuple -> dict (recursively)
    - tuple / list -> list
    - dict -> dict with str keys
    - numpy structured array -> list of dicts of Python ints/floats
    - other numpy arrays -> nested lists; numpy scalars -> Python scalars
    """
    if type(obj) in _SCALARS:  # exact: numpy.float64 subclasses float but must be converted
        return obj
    if getattr(obj, "dtype", None) is not None:
        return _numpy_to_plain(obj)
    if isinstance(obj, tuple) and hasattr(obj, "_asdict"):
        fields = obj._asdict()
        if _SCALARS.issuperset(map(type, fields.values())) and _STR.issuperset(map(type, fields)):
            # Flat (every record but OrderSendResult/OrderCheckResult): what the walk below would
            # build, without a call per field; a symbol_info has 96 of them.
            return dict(fields)
        return {str(key): to_plain(value) for key, value in fields.items()}
    if isinstance(obj, (tuple, list)):
        return [to_plain(item) for item in obj]
    if isinstance(obj, dict):
        return {str(key): to_plain(value) for key, value in obj.items()}
    return obj


def _numpy_to_plain(obj: Any) -> Any:
    """Arrays and scalars via tolist()/item(), which already yield Python scalars."""
    names = obj.dtype.names
    if getattr(obj, "ndim", 0) == 0:
        value = obj.item()
        if names:
            return {name: to_plain(field) for name, field in zip(names, value, strict=True)}
        return to_plain(value)
    rows = obj.tolist()
    if names:
        return [{name: to_plain(field) for name, field in zip(names, row, strict=True)} for row in rows]
    return to_plain(rows)


def to_wire(obj: Any) -> Any:
    """What the bridge server sends: to_plain, except that rates and ticks (numpy structured arrays)
    go by column, ``{"time": [...], "open": [...], ...}`` in the array's field order.

    Why: a list of one dict per bar repeats every field name in every row (17 KB for 121 bars,
    against 7.2 KB by column) and costs a dict per row to build, encode and decode on both sides;
    the bot's gateway wants columns anyway (bot/gateway/convert.bar_columns)."""
    names = getattr(getattr(obj, "dtype", None), "names", None)
    if names and getattr(obj, "ndim", 0) == 1:
        return {name: obj[name].tolist() for name in names}
    return to_plain(obj)
