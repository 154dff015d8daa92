"""Where a quoted part of SQL ends: the one rule the migration splitter and the embedded
store's insert scanner both follow (ClickHouse's: a backslash escapes the next character,
and a doubled quote stands for itself).

>>> quoted_end("'it''s' + 1", 0), quoted_end(b"`a\\\\`b` c", 0), quoted_end("'open", 0)
(6, 5, 5)
"""

from __future__ import annotations

from typing import AnyStr

__all__ = ["quoted_end"]


def quoted_end(text: AnyStr, start: int) -> int:
    """The index of the quote that closes the string or quoted name opened at
    ``text[start]``, or ``len(text)`` when the text ends first."""
    quote = text[start : start + 1]
    backslash = "\\" if isinstance(text, str) else b"\\"
    n = len(text)
    j = start + 1
    while j < n:
        c = text[j : j + 1]
        if c == backslash:
            j += 2
            continue
        if c == quote:
            if text[j + 1 : j + 2] == quote:  # doubled quote
                j += 2
                continue
            return j
        j += 1
    return n
