"""Defocus in words, the one convention users read: underfocus for a positive ``defocus_nm`` (abTEM's sign, as
params and domain names use it), overfocus for a negative one. Standard library only."""

from __future__ import annotations


def focus_words(defocus_nm: float) -> str:
    """``underfocus 12.3 nm`` for a positive defocus, ``overfocus 12.3 nm`` for a negative one."""
    if abs(defocus_nm) < 0.05:
        return "in focus (0 nm)"
    return f"{'underfocus' if defocus_nm > 0 else 'overfocus'} {abs(defocus_nm):.1f} nm"
