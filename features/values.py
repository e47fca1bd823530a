"""Reading one value out of a config: the checks every key gets, whichever family or quirk reads it.

Each function takes the keys to try in order (the family's spelling first) and raises FeatureError naming the
key that holds the bad value, so a family's own keys (`num_kv_heads`, `rotary_pct`, …) are reported as such.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from features.errors import FeatureError

MAX_SIZE = 10**15  # no count in a config comes near this; past it, a value is refused before any arithmetic


def lookup(raw: Mapping[str, Any], keys: tuple[str, ...]) -> tuple[str | None, Any]:
    """(the first key present with a non-null value, its value), or (None, None)."""
    for key in keys:
        if raw.get(key) is not None:
            return key, raw[key]
    return None, None


def named(raw: Mapping[str, Any], keys: tuple[str, ...], fallback: str) -> str:
    """The key an error about this value names: the one the config set, else one it left null, else the family's
    first spelling, else `fallback`."""
    key, _ = lookup(raw, keys)
    return key or next((k for k in keys if k in raw), keys[0] if keys else fallback)


def size(raw: Mapping[str, Any], keys: tuple[str, ...], what: str, default: int | None = None) -> int:
    key, value = lookup(raw, keys)
    field = named(raw, keys, what)
    if key is None:
        if default is None:
            raise FeatureError(field, f"missing: the {what} is required (looked for {', '.join(keys)})")
        value = default
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise FeatureError(field, f"the {what} must be an integer, got {value!r}")
    if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
        raise FeatureError(field, f"the {what} must be an integer, got {value!r}")
    if abs(value) > MAX_SIZE:  # compared as int: a 400-digit integer must not reach float arithmetic
        raise FeatureError(field, f"the {what} ({len(str(int(value)))} digits) is beyond any supported size")
    value = int(value)
    if value <= 0:
        raise FeatureError(field, f"the {what} must be positive, got {value}")
    return value


def flag(raw: Mapping[str, Any], keys: tuple[str, ...], default: bool) -> bool:
    key, value = lookup(raw, keys)
    if key is None:
        return default
    # JSON configs spell a switch true/false; some older ones 0/1. Anything else (2, "yes") is a mistake.
    if isinstance(value, bool) or (isinstance(value, int) and value in (0, 1)):
        return bool(value)
    raise FeatureError(key, f"expected true or false, got {value!r}")


def number(
    raw: Mapping[str, Any],
    keys: tuple[str, ...],
    default: float | None,
    what: str,
    bounds: tuple[float, float] = (0.0, math.inf),
    zero: bool = False,
) -> float | None:
    """A real number within `bounds`; 0 (the lower bound) is allowed only with `zero` (a rotary fraction of 0
    means no rotary positions; a rotary base of 0 means nothing)."""
    rope = raw.get("rope_parameters") or raw.get("rope_scaling") or {}
    key, value = lookup(raw, keys)
    if key is None and isinstance(rope, Mapping):
        key, value = lookup(rope, keys)
    if key is None:
        return default
    low, high = bounds
    wanted = f"a number in [{low:g}, {high:g}]" if zero else f"a number in ({low:g}, {high:g}]"
    if math.isinf(high):
        wanted = "a non-negative number" if zero else "a positive number"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise FeatureError(key, f"the {what} must be {wanted}, got {value!r}")
    try:
        number = float(value)
    except OverflowError:  # an integer too large for a float
        raise FeatureError(key, f"the {what} is too large, got an integer of {len(str(value))} digits") from None
    if not math.isfinite(number) or number < low or number > high or (number == low and not zero):
        raise FeatureError(key, f"the {what} must be {wanted}, got {value!r}")
    return number
