"""Stage ``match``: which model for which micrographs. The defocus estimate from Thon rings, calibrated and
validated on the simulated domains; the model recommendation, validated leave-one-out; both applied to each
ingested dataset's test micrographs (read from its source files at their own pixel size; the stage's data
dependency is their ingest output, which they decide); and the domains' and datasets' power spectra."""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from hrtem_ood.config.domains import domain_imaging, domain_names, domain_structures, ingested_names
from hrtem_ood.dataio.datasets import read_h5
from hrtem_ood.dataio.ingest import micrograph_files, read_image
from hrtem_ood.dataio.io import write_json
from hrtem_ood.matching import recommend
from hrtem_ood.physics import thon
from hrtem_ood.results.aggregation import aggregate, aggregate_as_params
from hrtem_ood.results.results_io import grid_result_files, read_results
from hrtem_ood.stages import entry
from hrtem_ood.units import A_to_nm, eV_to_keV, keV_to_eV

if TYPE_CHECKING:
    from hrtem_ood.config.schema import Params

#: Train images per simulated domain that calibrate the support-to-particle offset.
CALIBRATION_IMAGES = 20
#: The highest defocus the fit considers (A), for the simulated tiles and for micrographs.
MAX_DEFOCUS_SIMULATED_A = 1000.0
MAX_DEFOCUS_A = 5000.0
#: Widths of the recommendation's kernel, in domain spacings, whose leave-one-out result is recorded too.
WIDTHS = (0.5, 1.0, 2.0, 4.0, math.inf)


def _fits(images: np.ndarray, pixel_A: float, cfg: dict) -> list[thon.Fit]:
    return [thon.estimate_defocus(im, pixel_A, max_defocus_A=MAX_DEFOCUS_SIMULATED_A, **cfg) for im in images]


def _simulated(params: Params, domains_dir: Path, split: str, n: int | None) -> dict[str, dict]:
    """Per simulated domain: the images of ``split`` (the first ``n``), their support-plane fits and true
    particle-plane defoci (nm)."""
    out = {}
    for dom in params.domains:
        data, attrs = read_h5(domains_dir / dom / f"{split}.h5", ("images", "defocus_A", "zero_defocus_A"))
        img = domain_imaging(params, dom)
        carbon = domain_structures(params, dom).carbon.thickness_A
        cfg = {"energy_eV": float(attrs["energy_eV"]), "Cs_mm": img.Cs_mm,
               "thickness_A": float(np.mean(carbon))}
        take = slice(None) if n is None else slice(0, n)
        images = data["images"][take]
        fits = _fits(images, float(attrs["sampling_A"]), cfg)
        out[dom] = {"images": images, "fits": fits, "support_nm": A_to_nm(np.array([f.defocus_A for f in fits])),
                    "particle_nm": A_to_nm(data["defocus_A"][take] - data["zero_defocus_A"][take]),
                    "sign_known": all(f.sign_known for f in fits), "defocus_nm": img.defocus_nm}
    return out


def _test_micrographs(params: Params, dataset: str, domains_dir: Path) -> list[tuple[str, np.ndarray, float]]:
    """An ingested dataset's test-split micrographs as recorded (native pixel size), from its source files."""
    cfg = params.ingest.datasets[dataset]
    data, _ = read_h5(domains_dir / dataset / "test.h5", ("sources", "source_index"))
    names = {s.decode() if isinstance(s, bytes) else str(s) for s in data["sources"][np.unique(data["source_index"])]}
    out = []
    for path in micrograph_files([Path(cfg.root) / "images"]):
        if path.stem in names:
            image, pixel = read_image(path)
            out.append((path.stem, image, float(pixel) if pixel else cfg.pixel_size_A))
    return out


def _profile(images: list[np.ndarray], pixel_A: float, q_max: float) -> list[tuple[float, float]]:
    """The mean of the micrographs' radial profiles, each normalised by its median over the shown band."""
    q_min = thon.MIN_FREQUENCY_PER_A
    profiles = []
    for im in images:
        q, p, _ = thon.radial_power(im, pixel_A)
        band = (q >= q_min) & (q <= q_max)
        profiles.append(p[band] / np.median(p[band]))
    mean = np.mean(profiles, axis=0)
    return [(round(float(a), 5), round(float(np.log10(b)), 5)) for a, b in zip(q[band], mean, strict=True)]


def _validation(test: dict[str, dict], offset: float) -> dict[str, dict]:
    """Per simulated domain: the median error of the nearer candidate over its test images, the share of them
    passing the ring check, and where the set's median estimate places it."""
    out = {}
    for dom, v in test.items():
        err = thon.candidate_error_nm(v["support_nm"], v["particle_nm"], v["sign_known"], offset)
        summary = thon.summarize(v["fits"])
        out[dom] = {"defocus_nm": v["defocus_nm"], "n_images": len(err),
                    "median_abs_error_nm": round(float(np.median(err)), 3),
                    "share_showing_rings": round(float(np.mean([f.rings_chi2 >= thon.MIN_RINGS_CHI2
                                                                for f in v["fits"]])), 3),
                    "support_nm": round(A_to_nm(summary["defocus_A"]), 3),
                    "candidates_nm": [round(c, 3) for c in thon.particle_plane_nm(
                        A_to_nm(summary["defocus_A"]), summary["sign_known"], offset)]}
    return out


def _leave_one_out(models, domains: list[str], column_nm: np.ndarray, validation: dict[str, dict]) -> dict:
    """The recommendation left one domain out at the estimated placement, at each kernel width, and at the true
    defocus."""
    placed = {d: v["candidates_nm"] for d, v in validation.items()}
    spacing = recommend.spacing_nm(column_nm)
    loo = recommend.leave_one_out(models, domains, column_nm, placed)
    widths = {f"{w:g}": recommend.leave_one_out(models, domains, column_nm, placed, w * spacing)
              ["summary"]["recommended"] for w in WIDTHS}
    oracle = recommend.leave_one_out(models, domains, column_nm,
                                     {d: [v["defocus_nm"]] for d, v in validation.items()})["summary"]["recommended"]
    return dict(loo["summary"], rows=loo["rows"], kernel_width_nm=spacing, by_width_in_spacings=widths,
                true_defocus_placement=oracle)


def _ingested(params: Params, dataset: str, found: dict, offset: float, models, column_nm: np.ndarray,
              scores: dict, assumed: dict) -> dict:
    """An ingested dataset's estimate, its recommendation, and the measured Dice of the recommended model against
    the best zero-shot one."""
    s = found["summary"]
    support_nm = A_to_nm(s["defocus_A"])
    rec = recommend.recommend(models, column_nm, thon.particle_plane_nm(support_nm, s["sign_known"], offset))
    measured = {"recommended": _measured(scores, rec["pretrain"], rec["target"], dataset)}
    zero_shot = {p: _measured(scores, p, None, dataset) for p in params.pretrain.domains}
    best = max(zero_shot, key=lambda p: zero_shot[p]["dice"])
    measured["best_zero_shot"] = dict(zero_shot[best], model=f"pretrained on {best}")
    return {"micrographs": {n: {"support_defocus_nm": round(A_to_nm(f.defocus_A), 2),
                                "rings_chi2": round(f.rings_chi2, 1)} for n, f in found["fits"].items()},
            "support_defocus_nm": round(support_nm, 2), "uncertainty_nm": round(A_to_nm(s["uncertainty_A"]), 2),
            "sd_nm": round(A_to_nm(s["sd_A"]), 2), "sign_known": s["sign_known"],
            "n_micrographs_with_rings": s["n_micrographs"], "recommendation": rec, "measured": measured,
            "assumed": {"energy_keV": eV_to_keV(assumed["energy_eV"]), "Cs_mm": assumed["Cs_mm"],
                        "support_thickness_nm": A_to_nm(assumed["thickness_A"])}}


def match(params: Params, args) -> None:
    domains_dir = Path(args.domains_dir)
    calibration = _simulated(params, domains_dir, "train", CALIBRATION_IMAGES)
    sign_known = all(v["sign_known"] for v in calibration.values())
    offset = thon.calibrate_offset_nm(np.concatenate([v["support_nm"] for v in calibration.values()]),
                                      np.concatenate([v["particle_nm"] for v in calibration.values()]), sign_known)
    test = _simulated(params, domains_dir, "test", None)
    validation = _validation(test, offset)
    far = [v["median_abs_error_nm"] for v in validation.values() if abs(v["defocus_nm"]) >= 5]
    rows = [r for f in grid_result_files(params.pretrain.domains, args.results_dir) for r in read_results(f)]
    sim = aggregate_as_params(params, rows, simulated_only=True)
    column_nm = np.array([test[d]["defocus_nm"] for d in sim["domains"]])
    models = recommend.models_of(sim)
    ac = params.aggregate
    scores = {m: aggregate(rows, domain_names(params), params.pretrain.domains, metric=m, reduce=ac.reduce,
                           filters=ac.filters) for m in ("paper_loss", "dice")}
    assumed = {"energy_eV": keV_to_eV(params.simulate.energy_keV), "Cs_mm": params.imaging.Cs_mm,
               "thickness_A": float(np.mean(params.structures.carbon.thickness_A))}
    spectra = [{"source": d, "kind": "simulated", "q_per_A": q, "log10_power": p}
               for d in params.domains
               for q, p in _profile(test[d]["images"], params.simulate.output_sampling_A, args.q_max)]
    ingested = {}
    for dataset in ingested_names(params):
        micrographs = _test_micrographs(params, dataset, domains_dir)
        try:
            found = thon.estimate_set(micrographs, max_defocus_A=MAX_DEFOCUS_A, **assumed)
        except thon.ThonError as exc:  # recorded, not fatal: the other datasets and the validation still hold
            ingested[dataset] = {"error": str(exc)}
            continue
        ingested[dataset] = _ingested(params, dataset, found, offset, models, column_nm, scores, assumed)
        pixel = micrographs[0][2]
        spectra += [{"source": dataset, "kind": "ingested", "q_per_A": q, "log10_power": p}
                    for q, p in _profile([m[1] for m in micrographs], pixel, min(args.q_max, 0.8 / (2 * pixel)))]
    out = {"defocus_convention": "abTEM: positive defocus = underfocus; support = the amorphous support's middle "
                                 "plane, particle plane = the domains' calibrated zero",
           "calibration": {"offset_nm": offset, "split": "train", "images_per_domain": CALIBRATION_IMAGES},
           "validation": {"per_domain": validation, "max_median_abs_error_nm_at_5nm_or_more": max(far)},
           "leave_one_out": _leave_one_out(models, sim["domains"], column_nm, validation),
           "ingested": ingested}
    write_json(args.out, out)
    write_json(args.plot, spectra)


def _measured(scores: dict, pretrain: str, target: str | None, dataset: str) -> dict:
    """A model's measured paper_loss and Dice on a dataset's test split (reduced over its models)."""
    out = {}
    for metric, agg in scores.items():
        i, j = agg["pretrain_domains"].index(pretrain), agg["domains"].index(dataset)
        value = agg["P"][i, j] if target is None else agg["A"][i, agg["domains"].index(target), j]
        out[metric] = round(float(value), 6)
    return out


def _options(ap) -> None:
    ap.add_argument("--q-max", type=float, default=1.0, help="highest frequency of the spectra table (1/A)")


main = entry("match", __doc__, match,
             {"--domains-dir": "folder of the domain datasets", "--results-dir": "folder of the grid's results tables",
              "--out": "the match metrics (JSON)", "--plot": "the power spectra table (JSON)"}, _options)


if __name__ == "__main__":
    sys.exit(main())
