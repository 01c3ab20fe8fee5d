"""Numbers typed by a user or read from a request: plain ASCII, finite, in range.

Python's int() and float() take more than a C tool's strtol() does: `６４`
(full-width digits) and `64_0` (640) are integers to int(), and `nan`,
`inf` and `1e400` (which overflows to inf) are floats to float(). A NaN
timeout never expires and a NaN cannot be sent as JSON, so every command and
the node parse numbers here instead: decimal digits 0-9 (an integer may be
hexadecimal where a tool takes 0x masks), a range always checked, and the
same two messages whatever the caller ("'x' is not a number", "N is out of
range (LOW to HIGH)").
"""

import math
import re

_INTEGER = re.compile(r"-?[0-9]+\Z")
_HEXADECIMAL = re.compile(r"0[xX][0-9a-fA-F]+\Z")
_DECIMAL = re.compile(r"-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)\Z")
_SHOWN = 24  # characters of a bad value quoted in a message: it stays one readable line


def shown(text):
    """text as an error message quotes it: repr, cut short when long (the repr, as one character
    may take ten to show)."""
    quoted = repr(text)
    return quoted if len(quoted) <= _SHOWN + 2 else quoted[:_SHOWN + 2] + "..."


def integer(text, low, high=None, *, hexadecimal=False):
    """The integer text spells in ASCII decimal (or 0x hex when allowed), low <= it <= high.

    No sign but a leading '-', no spaces, underscores or other scripts'
    digits; leading zeros are fine (064 is 64, as for sysctl(8)). Digits
    beyond the range are refused before Python's own limit on long numbers.
    """
    if not isinstance(text, str):
        raise TypeError(f"{text!r} is not text")
    if hexadecimal and _HEXADECIMAL.match(text):
        value = _bounded(text[2:], 16, low, high, text)
    elif _INTEGER.match(text):
        negative = text.startswith("-")
        value = _bounded(text.lstrip("-"), 10, low, high, text)
        value = -value if negative else value
    else:
        raise ValueError(f"{shown(text)} is not a number")
    return in_range(value, low, high)


def _bounded(digits, base, low, high, text):
    """int(digits, base), refusing more digits than any value in range has."""
    digits = digits.lstrip("0") or "0"
    widest = max(abs(low), abs(high) if high is not None else 10 ** 100)
    if len(digits) > len(format(widest, "x" if base == 16 else "d")):
        raise ValueError(f"{plain(text)} is out of range ({_span(low, high)})")
    return int(digits, base)


def decimal(text, low, high):
    """The finite float text spells in ASCII decimal (1, 0.5, .5, 2.), low <= it <= high.

    No exponent, nan or inf: what a user types for seconds or a rate.
    """
    if not isinstance(text, str):
        raise TypeError(f"{text!r} is not text")
    if not _DECIMAL.match(text):
        raise ValueError(f"{shown(text)} is not a number")
    value = float(text)
    if not math.isfinite(value):  # more digits than a double holds
        raise ValueError(f"{plain(text)} is out of range ({_span(low, high)})")
    return in_range(value, low, high)


def in_range(value, low, high=None):
    """value when it is a finite number from low to high (bool is not a number); else ValueError."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{value!r} is not a number")
    if isinstance(value, float) and not math.isfinite(value) or value < low or high is not None and value > high:
        raise ValueError(f"{plain(value)} is out of range ({_span(low, high)})")
    return value


def plain(value):
    """A number as a message prints it: 64 and 0.5 (not 64.0), cut short when long."""
    if isinstance(value, float):
        value = int(value) if value.is_integer() and abs(value) < 1e15 else value
    text = str(value)
    return text if len(text) <= _SHOWN else text[:_SHOWN] + "..."


def _span(low, high):
    return f"{plain(low)} to {plain(high)}" if high is not None else f"at least {plain(low)}"
