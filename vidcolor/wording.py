"""Small helpers for the words of messages, shared by every command."""

from __future__ import annotations


def count_of(n: int, noun: str) -> str:
    """A number with its noun, singular for one.

    Args:
        n: how many.
        noun: the singular noun (plural by adding "s").

    Returns:
        E.g. ``"1 chunk"``, ``"3 chunks"``.
    """
    return f"{n} {noun}" + ("" if n == 1 else "s")
