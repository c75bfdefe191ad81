"""The tables of docs/matching.md, from the committed `metrics/match.json` and the closed-loop experiment's snapshot
`docs/results/matched-segtrack.json` (written by `python docs/scripts/matching_doc.py collect EXPERIMENT`).
results_doc.py writes and checks them with the other generated tables."""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MATCH = ROOT / "metrics/match.json"
CLOSED_LOOP = ROOT / "docs/results/matched-segtrack.json"
REAL = "real_segtrack"


def _words(nm: float) -> str:
    sys.path.insert(0, str(ROOT / "src"))
    from hrtem_ood.units import focus_words

    return focus_words(nm)


def defocus_table() -> str:
    """Per simulated domain: the median absolute error of the defocus estimate on its 20 test images."""
    m = json.loads(MATCH.read_text())
    v = m["validation"]
    lines = [f"Offset from the support's middle plane to the particles' calibrated zero: "
             f"**{m['calibration']['offset_nm']:.2f} nm**, calibrated on {m['calibration']['images_per_domain']} "
             "train images per domain. Largest per-domain median error at 5 nm or more: "
             f"**{v['max_median_abs_error_nm_at_5nm_or_more']:.2f} nm**.", "",
             "| domain | true defocus (particle plane) | median absolute error, nearer candidate (nm) "
             "| estimate of the 20 (median): candidates | share of tiles passing the ring check |",
             "|---|---|---|---|---|"]
    for d, r in v["per_domain"].items():
        cands = " or ".join(_words(c) for c in r["candidates_nm"])
        lines.append(f"| {d} | {_words(r['defocus_nm'])} | {r['median_abs_error_nm']:.2f} | {cands} | "
                     f"{r['share_showing_rings']:.2f} |")
    return "\n".join(lines)


def recommend_table() -> str:
    """The leave-one-out validation of the recommendation, at each kernel width, and with the true defocus."""
    loo = json.loads(MATCH.read_text())["leave_one_out"]
    lines = ["| pick | placed by | kernel width | median regret | mean regret | hit rate |",
             "|---|---|---|---|---|---|"]

    def row(pick, placed, width, s):
        lines.append(f"| {pick} | {placed} | {width} | {s['median_regret']:.4f} | {s['mean_regret']:.4f} | "
                     f"{s['hit_rate']:.2f} |")

    spacing = loo["kernel_width_nm"]
    row("**recommended**", "the estimate", f"**{spacing:g} nm (the domains' spacing)**", loo["recommended"])
    row("the model that generalizes best overall", "-", "-", loo["baseline"])
    for w, s in loo["by_width_in_spacings"].items():
        if w != "1":
            width = "infinite (each model's mean loss)" if w == "inf" else f"{w} x the spacing"
            row("recommended", "the estimate", width, s)
    row("recommended", "the true defocus", f"{spacing:g} nm", loo["true_defocus_placement"])
    return "\n".join(lines)


def real_table() -> str:
    """The real micrographs: the estimate, the recommendation and the measured Dice."""
    r = json.loads(MATCH.read_text())["ingested"][REAL]
    rec, meas = r["recommendation"], r["measured"]
    cands = " or ".join(_words(c) for c in rec["placed_nm"])
    return "\n".join([
        "| | |", "|---|---|",
        f"| support defocus, {r['n_micrographs_with_rings']} test micrographs (median) | {r['support_defocus_nm']:.1f} "
        f"± {r['uncertainty_nm']:.1f} nm, sign {'known' if r['sign_known'] else 'undetermined (Cs = 0)'} |",
        f"| spread between them (robust SD) | {r['sd_nm']:.1f} nm |",
        "| per micrograph | " + ", ".join(f"{n}: {v['support_defocus_nm']:.0f}" for n, v in r["micrographs"].items())
        + " nm |",
        f"| at the particle plane | {cands}: {'outside every domain' if rec['outside'] else 'among the domains'} |",
        f"| recommended | {rec['model']}: Dice **{meas['recommended']['dice']:.3f}** on the test split |",
        f"| best measured zero-shot | {meas['best_zero_shot']['model']}: "
        f"Dice **{meas['best_zero_shot']['dice']:.3f}** |"])


def matched_table() -> str:
    """The closed loop: the matched domains' models zero-shot on the real test split, against the default's."""
    snap = json.loads(CLOSED_LOOP.read_text())
    lines = [f"Experiment `{snap['experiment']}`; matched domains written by `hrtem-ood conditions --add-domain` "
             "from the 12 train micrographs.", "",
             "| pretrained on | defocus (particle plane) | jitter (SD) | Dice | IoU | paper_loss |",
             "|---|---|---|---|---|---|"]
    for d, r in sorted(snap["zero_shot"].items(), key=lambda kv: -kv[1]["dice"]):
        dom = snap["domains"].get(d, {})
        jitter = dom.get("defocus_sigma_nm", snap["default_sigma_nm"])
        lines.append(f"| `{d}` | {_words(dom.get('defocus_nm', 0.0))} | {jitter:g} nm | {r['dice']:.3f} | "
                     f"{r['iou']:.3f} | {r['paper_loss']:.4f} |")
    return "\n".join(lines)


def collect(experiment: str) -> None:
    """Snapshot the closed-loop experiment: its params' domains and the zero-shot scores on the real test split."""
    import dvc.api

    sys.path.insert(0, str(ROOT / "src"))
    from hrtem_ood.results.analysis import experiment_revs

    rev = experiment_revs([experiment], ROOT)[experiment]
    params = dvc.api.params_show(repo=str(ROOT), rev=rev)
    zero_shot: dict = {}
    for d in params["pretrain"]["domains"]:
        text = dvc.api.read(f"metrics/results/pretrain/{d}.csv", repo=str(ROOT), rev=rev)
        for line in text.splitlines()[1:]:
            cells = line.split(",")
            if cells[4] == REAL and cells[5] in ("dice", "iou", "paper_loss"):
                zero_shot.setdefault(d, {})[cells[5]] = round(float(cells[6]), 6)
    snap = {"experiment": experiment, "rev": rev, "default_sigma_nm": params["imaging"]["defocus_sigma_nm"],
            "domains": {d: params["domains"][d] for d in params["pretrain"]["domains"]}, "zero_shot": zero_shot}
    CLOSED_LOOP.write_text(json.dumps(snap, indent=1) + "\n")


RENDER = {"defocus": defocus_table, "recommend": recommend_table, "real_match": real_table,
          "matched": matched_table}

if __name__ == "__main__":
    if sys.argv[1:2] == ["collect"]:
        collect(sys.argv[2])
