"""Units, converted in one place, and defocus in words.

Params carry their units in their names (``defocus_nm``, ``Cs_mm``, ``energy_keV``); the physics works in Angstrom
and eV (abTEM's units). Every conversion between them goes through this module. Defocus in words is the one
convention users read: underfocus for a positive ``defocus_nm`` (abTEM's sign, as params and domain names use it),
overfocus for a negative one. The study's figures label overfocus d nm as +d nm (its sign read mirrored,
docs/ablations/study-sign.md). Standard library only."""

from __future__ import annotations

A_PER_NM = 10.0
A_PER_MM = 1e7
EV_PER_KEV = 1e3


def nm_to_A(x):
    """Nanometres (a float or an array) in Angstrom."""
    return x * A_PER_NM


def A_to_nm(x):
    """Angstrom (a float or an array) in nanometres."""
    return x / A_PER_NM


def mm_to_A(x):
    """Millimetres (Cs) in Angstrom."""
    return x * A_PER_MM


def keV_to_eV(x):
    """A beam energy in keV, in eV."""
    return x * EV_PER_KEV


def eV_to_keV(x):
    """A beam energy in eV, in keV."""
    return x / EV_PER_KEV


#: The convention, stated once: on every figure, in ``ood.json`` and in the report.
CONVENTION = ("Defocus in words: 'under d nm' = underfocus (params and domain names: defocus_nm = +d, 'dfp'), "
              "'over d nm' = overfocus (defocus_nm = -d, 'dfm'). The study's figures label overfocus d nm as +d nm.")


def focus_words(defocus_nm: float) -> str:
    """``underfocus 12.3 nm`` for a positive defocus, ``overfocus 12.3 nm`` for a negative one."""
    if abs(defocus_nm) < 0.05:
        return "in focus (0 nm)"
    return f"{'underfocus' if defocus_nm > 0 else 'overfocus'} {abs(defocus_nm):.1f} nm"


def focus_label(defocus_nm: float | None, name: str = "") -> str:
    """A short axis label: ``under 10 nm``, ``over 2.5 nm``, ``0 nm``; ``name`` when the defocus is unknown (an
    ingested dataset)."""
    if defocus_nm is None:
        return name
    if defocus_nm == 0:
        return "0 nm"
    return f"{'under' if defocus_nm > 0 else 'over'} {abs(defocus_nm):g} nm"
