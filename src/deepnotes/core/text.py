"""Small helpers for text shown to the person at the keyboard.

Messages echo back what the user gave (a value, a path, a run id) so the mistake can be seen; a
value of 100,000 characters must not flood the terminal, so every echoed value goes through
:func:`shorten` first.
"""

from __future__ import annotations

__all__ = ["shorten"]


def shorten(text: object, limit: int = 80) -> str:
    """Return ``str(text)`` cut to its first ``limit`` characters plus ``"..."`` when longer.

    Arguments:
        text: anything; it is converted with ``str`` (pass ``repr(value)`` to keep quotes).
        limit: how many characters of the text to keep (at least 1).

    Example:
        >>> shorten("x" * 100, limit=5)
        'xxxxx... (100 characters)'
        >>> shorten("short")
        'short'
    """
    if limit < 1:
        raise ValueError(f"shorten needs limit >= 1, got {limit}")
    text = str(text)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text)} characters)"
