"""A user's micrographs and their microscope, for ``hrtem-ood conditions`` and ``hrtem-ood recommend``: read the
files with their pixel size, beam energy and Cs (the file's metadata, else the command line), estimate the
defocus from their Thon rings (:mod:`hrtem_ood.physics.thon`), place them among the run's domains, recommend a model
(:mod:`hrtem_ood.matching.recommend`), and write a domain that matches them into ``params.yaml``.

Defocus words: underfocus = positive ``defocus_nm`` in params (abTEM's sign), overfocus = negative.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from hrtem_ood.errors import UserError
from hrtem_ood.matching import recommend
from hrtem_ood.physics import thon
from hrtem_ood.units import A_to_nm, focus_words, keV_to_eV, nm_to_A

if TYPE_CHECKING:
    from hrtem_ood.config.schema import Params


def load_micrographs(inputs: list[str], pixel_size_A: float | None, energy_keV: float | None,
                     Cs_mm: float | None) -> tuple[list[tuple[str, np.ndarray, float]], float, float]:
    """The micrographs named (files or folders) as ``(name, image, pixel size)``, with the beam energy (keV) and
    Cs (mm): each from the file's metadata where it records them, else from the command line. Every file
    must agree on the beam energy and Cs."""
    from hrtem_ood.dataio.ingest import micrograph_files, read_micrograph

    out, energies, aberrations = [], set(), set()
    for path in micrograph_files(inputs):
        image, pixel, meta = read_micrograph(path)
        pixel = pixel or pixel_size_A
        if not pixel or pixel <= 0:
            raise UserError(f"{path}: the file records no pixel size; pass --pixel-size-A")
        energy = meta.get("energy_keV", energy_keV)
        if not energy or energy <= 0:
            raise UserError(f"{path}: the file records no beam energy; pass --energy-keV")
        cs = meta.get("Cs_mm", Cs_mm)
        if cs is None:
            raise UserError(f"{path}: the file records no spherical aberration; pass --cs-mm (0 for a corrected "
                            "microscope)")
        if min(image.shape) < 64:
            raise UserError(f"{path}: {image.shape[0]} x {image.shape[1]} pixels is too small for a power spectrum")
        energies.add(float(energy))
        aberrations.add(float(cs))
        out.append((path.stem, image, float(pixel)))
    if len(energies) > 1 or len(aberrations) > 1:
        raise UserError(f"{inputs[0]}: the micrographs differ in beam energy {sorted(energies)} keV or Cs "
                        f"{sorted(aberrations)} mm; estimate each microscope's micrographs apart")
    return out, energies.pop(), aberrations.pop()


def calibrated_offset_nm(match_json: str | Path) -> float:
    """The support-to-particle offset calibrated on the simulated domains (the ``match`` stage's output)."""
    from hrtem_ood.dataio.io import read_json

    path = Path(match_json)
    if not path.is_file():
        raise UserError(f"{path}: not found; run `dvc repro match` (or `dvc pull`) first: it calibrates the offset "
                        "between the support's defocus and the domains' particle plane")
    try:
        return float(read_json(path)["calibration"]["offset_nm"])
    except (KeyError, TypeError, ValueError) as exc:
        raise UserError(f"{path}: holds no calibration.offset_nm") from exc


def conditions(micrographs: list[tuple[str, np.ndarray, float]], energy_keV: float, Cs_mm: float,
               support_thickness_nm: float, max_defocus_nm: float, offset_nm: float,
               q_range_per_A: tuple[float, float] | None = None) -> dict:
    """The set's support defocus (:func:`hrtem_ood.physics.thon.estimate_set`) and its particle-plane candidates."""
    found = thon.estimate_set(micrographs, energy_eV=keV_to_eV(energy_keV), Cs_mm=Cs_mm,
                              thickness_A=nm_to_A(support_thickness_nm), max_defocus_A=nm_to_A(max_defocus_nm),
                              q_range_per_A=q_range_per_A)
    s = found["summary"]
    support = A_to_nm(s["defocus_A"])
    return {"fits": found["fits"], "support_nm": support, "uncertainty_nm": A_to_nm(s["uncertainty_A"]),
            "sd_nm": A_to_nm(s["sd_A"]), "sign_known": s["sign_known"], "n_with_rings": s["n_micrographs"],
            "energy_keV": energy_keV, "Cs_mm": Cs_mm, "offset_nm": offset_nm,
            "candidates_nm": thon.particle_plane_nm(support, s["sign_known"], offset_nm)}


def at_energy_nm(defocus_nm: float, from_keV: float, to_keV: float) -> float:
    """The defocus that gives the same Thon rings (the same ``lambda * defocus``) at another beam energy; exact
    for Cs = 0."""
    return defocus_nm * thon.electron_wavelength_A(keV_to_eV(from_keV)) / thon.electron_wavelength_A(keV_to_eV(to_keV))


def matched_domain(params: Params, name: str, found: dict, sign: str | None, pretrain: bool) -> dict:
    """The ``params.yaml`` changes that add domain ``name`` that matches the estimate: the support defocus that
    gives the same rings at the simulation's beam energy, less the support-to-particle offset (a distance, the
    same at every energy); the spread between the micrographs as its jitter, where that exceeds the default;
    the Cs. ``sign`` (underfocus / overfocus) picks the candidate when the estimate leaves the sign open."""
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", name):
        raise UserError(f"--add-domain {name!r}: a domain name is a letter, then letters, digits or _")
    if name in params.domains or name in params.ingest.datasets:
        raise UserError(f"--add-domain {name!r}: params.yaml already has a domain or dataset of this name")
    sim_keV = params.simulate.energy_keV
    support = at_energy_nm(found["support_nm"], found["energy_keV"], sim_keV)
    candidates = thon.particle_plane_nm(support, found["sign_known"], found["offset_nm"])
    if len(candidates) > 1 and sign is None:
        raise UserError(f"the defocus sign is undetermined (Cs = {found['Cs_mm']:g} mm): {focus_words(candidates[0])} "
                        f"or {focus_words(candidates[1])}; pass --sign underfocus or --sign overfocus")
    if sign is not None and len(candidates) > 1:
        defocus = max(candidates) if sign == "underfocus" else min(candidates)
    else:
        defocus = candidates[0]
    domain = {"defocus_nm": round(defocus, 1)}
    spread = round(at_energy_nm(found["sd_nm"], found["energy_keV"], sim_keV), 1)
    if spread > params.imaging.defocus_sigma_nm:  # the micrographs' own spread, as the domain's jitter
        domain["defocus_sigma_nm"] = spread
    if float(found["Cs_mm"]) != params.imaging.Cs_mm:
        domain["Cs_mm"] = float(found["Cs_mm"])
    changes: dict = {"domains": {name: domain}}
    if pretrain:
        changes["pretrain"] = {"domains": [*params.pretrain.domains, name]}
    return changes


def place_and_recommend(params: Params, results_dir: str | Path, candidates_nm: list[float]) -> dict:
    """The recommendation (:func:`hrtem_ood.matching.recommend.recommend`) for micrographs at ``candidates_nm``, from
    the run's results tables, with the domains' defocus range."""
    from hrtem_ood.config.domains import domain_defocus_nm
    from hrtem_ood.results.aggregation import aggregate_as_params
    from hrtem_ood.results.results_io import grid_result_files, read_results

    files = grid_result_files(params.pretrain.domains, results_dir)
    missing = [f for f in files if not Path(f).is_file()]
    if missing:
        raise UserError(f"{missing[0]}: results table not found; run `dvc repro` (or `dvc pull`) first")
    rows = [r for f in files for r in read_results(f)]
    sim = aggregate_as_params(params, rows, simulated_only=True)
    defocus = domain_defocus_nm(params)
    column_nm = np.array([defocus[d] for d in sim["domains"]])
    out = recommend.recommend(recommend.models_of(sim), column_nm, candidates_nm)
    out["domains_nm"] = [float(column_nm.min()), float(column_nm.max())]
    return out
