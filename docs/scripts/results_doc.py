"""Write the tables of docs/results.md and the README's "What the default run shows" from committed
metrics, so neither can drift from the runs.

    python docs/scripts/results_doc.py collect NAME=EXPERIMENT ...   # snapshot dvc experiments' metrics, figures
    python docs/scripts/results_doc.py write                         # regenerate the tables in place
    python docs/scripts/results_doc.py check                         # exit 1 if a table is stale (tested)

Runs are listed in docs/results/runs.json: each with its ood.json (the committed metrics/ood.json, or
a snapshot under docs/results/ taken from a dvc experiment by `collect`), its command, wall time and
seeds. Tables go between <!-- results:NAME --> and <!-- /results:NAME --> markers.
"""

from __future__ import annotations

import json
import re
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RUNS = ROOT / "docs/results/runs.json"
TARGETS = {"docs/results.md": ("answer", "seeds", "versions", "conditions", "dose", "structures", "real", "defocus"),
           "docs/archive/results-history.md": ("presets", "numerics"),
           "README.md": ("default", "real_summary"), "docs/real-data.md": ("real", "labels", "labels_seed1"),
           "docs/ablations/optimizer.md": ("probes", "default_probes", "zero_nm_probes"),
           "docs/matching.md": ("recommend", "real_match", "matched")}
#: The study's numbers for the series it reports outside its defocus matrices (paper_loss units):
#: Fig. 9.1, the dose series' diagonal after pretraining; Fig. 9.2, the extremes of the structure series'
#: in-domain losses (CdSe best, C worst).
STUDY_DOSE_DIAGONAL = {30: 0.053, 75: 0.026, 150: 0.018, 300: 0.014, 600: 0.012}
STUDY_STRUCTURE_IN_DOMAIN = {"CdSe-wurtzite": 0.004, "C-diamond": 0.077}
#: The figures `collect` copies from an experiment to docs/results/<name>/.
FIGURES = ("generalization.png", "domain_loss.png", "transfer_conditions.png")


def _load_runs() -> list[dict]:
    runs = json.loads(RUNS.read_text())
    for r in runs:
        r["head"] = json.loads((ROOT / r["metrics"]).read_text())
    return runs


def _fmt(v) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, bool):
        return "yes" if v else "no"
    return f"{v:.4f}".rstrip("0").rstrip(".") if isinstance(v, float) else str(v)


def _card(head: dict) -> list[dict]:
    """``report.scorecard`` of a run's phenomena against the study's (the same measure on its medians)."""
    from hrtem_ood.results.aggregation import phenomena
    from hrtem_ood.results.reference import study_as_aggregate
    from hrtem_ood.results.report import scorecard

    return scorecard(head["phenomena"], phenomena(*study_as_aggregate()))


def _cells(head: dict) -> list[str]:
    """Each phenomenon of the scorecard: this run's value, a mark if it meets the threshold."""
    return [f"{_fmt(row['value'])} {'✓' if row['held'] else '✗'}" for row in _card(head)]


def _study_cells(head: dict) -> list[str]:
    return [_fmt(row["study"]) for row in _card(head)]


HEADER = ("| run | command | wall (2 cores) | seeds | 1: failing-row PG ≥ 0.04 "
          "| 2: row spread ratio ≤ 0.3 | 3a: 0 nm hardest | 3b: 0 nm model rank ≤ 2 "
          "| 4: distant shift ≤ -0.03 | in-domain ≤ 0.03 | held | figure |")


def _kind(runs: list[dict], kind: str) -> list[dict]:
    return [r for r in runs if r.get("kind", "defocus") == kind]


def presets_table(runs: list[dict]) -> str:
    lines = [HEADER, "|" + "---|" * 12]
    lines.append("| the study (7,200 models, medians) | | | 3 | " + " | ".join(_study_cells(runs[0]["head"]))
                 + " | 6/6 | |")
    for r in _kind(runs, "defocus"):
        h = r["head"]
        lines.append(f"| {r['name']} | `{r['command']}` | {r['wall']} | {r['seeds']} | " + " | ".join(_cells(h))
                     + f" | {h['scorecard_held']}/{h['scorecard_total']} | {r.get('figure', '')} |")
    return "\n".join(lines)


#: Short names of the scorecard's measures, for the README's table.
SHORT = ("1. pretraining domain matters: failing row's OOD std",
         "2. rows alike after transfer: spread after / before",
         "3a. 0 nm is the hardest domain",
         "3b. 0 nm model's OOD-std rank (1 = best)",
         "4. distant transfer improves OOD: median shift",
         "in-domain loss, pretrained (0 nm excluded)")


#: The measures' short ids, in SHORT's order.
MEASURE_IDS = ("1", "2", "3a", "3b", "4", "in-domain")


def default_summary(runs: list[dict]) -> str:
    """The README's answer: the committed run's six measures, the three seeds pooled as the study pools, and how many
    of the seeds run with the committed params meet each measure."""
    runs0 = [r for r in runs if r.get("kind", "defocus") == "defocus"]
    seed0 = next(r for r in runs0 if r["metrics"] == "metrics/ood.json")
    pooled = next(r for r in runs0 if "pooled" in r["name"])
    c0, cp = _card(seed0["head"]), _card(pooled["head"])
    lines = ["Seed 0 (the committed run) and seeds 0-2 pooled as the study pools them:", "",
             "| the study's measure | threshold | seed 0 | seeds 0-2 pooled | the study |", "|---|---|---|---|---|"]
    for name, a, b in zip(SHORT, c0, cp, strict=True):
        want = "yes" if a["threshold"] == "== True" else a["threshold"]
        lines.append(f"| {name} | {want} | {_fmt(a['value'])} {'✓' if a['held'] else '✗'} | "
                     f"{_fmt(b['value'])} {'✓' if b['held'] else '✗'} | {_fmt(a['study'])} |")
    lines.append(f"| held | | {sum(r['held'] for r in c0)}/6 | {sum(r['held'] for r in cp)}/6 | 6/6 |")
    cards = [_card(r["head"]) for r in _per_seed(runs)]
    missed = [f"{name} holds at {n}" for name, n in zip(MEASURE_IDS, _held_by_measure(cards), strict=True)
              if n < len(cards)]
    lines += ["", f"At {len(cards)} seeds, " + (", ".join(missed) + " and every other measure" if missed else
                                               "every measure") + f" at all {len(cards)} (`docs/results.md`)."]
    return "\n".join(lines)


def answer_table(runs: list[dict]) -> str:
    """docs/results.md's first screen: the six measures at seeds 0, 1 and 2 and pooled, beside the study."""
    current = [r for r in runs if r.get("kind", "defocus") == "defocus"][:4]  # seed 0, 1, 2, pooled
    cards = [_card(r["head"]) for r in current]
    lines = ["| the study's measure | threshold | seed 0 | seed 1 | seed 2 | pooled | the study |",
             "|---|---|---|---|---|---|---|"]
    for k, name in enumerate(SHORT):
        want = "yes" if cards[0][k]["threshold"] == "== True" else cards[0][k]["threshold"]
        cells = [f"{_fmt(c[k]['value'])} {'✓' if c[k]['held'] else '✗'}" for c in cards]
        lines.append(f"| {name} | {want} | " + " | ".join(cells) + f" | {_fmt(cards[0][k]['study'])} |")
    lines.append("| held | | " + " | ".join(f"{sum(r['held'] for r in c)}/6" for c in cards) + " | 6/6 |")
    return "\n".join(lines)


#: The pretraining models whose OOD std decides measure 3b in this project's runs: the flattest three.
FLATTEST = {"df0": "0 nm", "dfp5": "under 5 nm", "dfp10": "under 10 nm"}


def _per_seed(runs: list[dict]) -> list[dict]:
    """The committed params' runs of one seed each."""
    return [r for r in _kind(runs, "defocus") if r["name"].startswith("default, seed ")]


def _held_by_measure(cards: list[list[dict]]) -> list[int]:
    """How many of the runs' scorecards hold each measure."""
    return [sum(c[k]["held"] for c in cards) for k in range(len(SHORT))]


def seeds_table(runs: list[dict]) -> str:
    """docs/results.md: the committed params at every seed run, a row each: the six measures, and the OOD std after
    pretraining of the three flattest models, whose order decides measure 3b."""
    per_seed = _per_seed(runs)
    cards = [_card(r["head"]) for r in per_seed]
    lines = ["| seed | " + " | ".join(MEASURE_IDS).replace("3b", "3b: rank") + " | held | "
             + " | ".join(f"OOD std, {v} model" for v in FLATTEST.values()) + " |", "|---" * (8 + len(FLATTEST)) + "|"]
    for r, card in zip(per_seed, cards, strict=True):
        pg = r["head"]["ood_std_pretrain"]
        lines.append(f"| {r['seeds']} | " + " | ".join(f"{_fmt(c['value'])} {'✓' if c['held'] else '✗'}" for c in card)
                     + f" | {sum(c['held'] for c in card)}/6 | " + " | ".join(_fmt(pg[d]) for d in FLATTEST) + " |")
    lines.append("| held at | " + " | ".join(f"{h}/{len(cards)}" for h in _held_by_measure(cards))
                 + f" | {sum(all(c['held'] for c in card) for card in cards)}/{len(cards)} seeds |"
                 + " |" * len(FLATTEST))
    return "\n".join(lines)


#: The real micrographs' dataset in the default run, and the source paper's test Dice on its 600-image test split,
#: each model trained on 1,400 labelled images of the same kind (data/real/segtrack/README.md).
REAL = "real_segtrack"
PUBLISHED_DICE = {"YOLOv8n-seg": 0.965, "Swin-UNet": 0.982, "VMamba": 0.997, "EfficientSAM-tiny": 0.998}


def _labels(path: str = f"metrics/labels/{REAL}.json") -> dict:
    return json.loads((ROOT / path).read_text())


def real_table(runs: list[dict]) -> str:
    """Dice and IoU on the real test split: zero-shot, after the default transfer, the label-count study's models
    trained on every labelled train micrograph, and the source paper's models."""
    h = next(r for r in runs if r["metrics"] == "metrics/ood.json")["head"]
    real, lab = h["ingested"][REAL], _labels()
    n_all = max(r["n_micrographs"] for r in lab["test_split"])
    lines = ["| model | labelled real training data | Dice | IoU | paper_loss |", "|---|---|---|---|---|"]
    for p, v in real["zero_shot"].items():
        lines.append(f"| pretrained on `{p}` (simulated), zero-shot | none | {v['dice']:.3f} | {v['iou']:.3f} | "
                     f"{v['paper_loss']:.4f} |")
    for p, v in real["after_transfer"].items():
        lines.append(f"| `{p}` transferred (the matrix's transfer row) | 20 tiles of 256 px from the {n_all} train "
                     f"micrographs | {v['dice']:.3f} | {v['iou']:.3f} | {v['paper_loss']:.4f} |")
    for r in lab["test_split"]:
        if r["n_micrographs"] == n_all:
            start = ("from scratch" if r["start"] == "scratch"
                     else f"`{r['pretrain_domain']}` ({r['start']}) transferred")
            lines.append(f"| {start}, {lab['epochs']} epochs | all {n_all} train micrographs | {r['dice']:.3f} | "
                         f"{r['iou']:.3f} | {r['paper_loss']:.4f} |")
    for name, dice in PUBLISHED_DICE.items():
        lines.append(f"| {name} (the source paper, its own 600-image test split) | 1,400 images | {dice:.3f} | | |")
    return "\n".join(lines)


def labels_table(runs: list[dict], path: str = f"metrics/labels/{REAL}.json") -> str:
    """The label-count study: Dice (and paper_loss) on the real test split against the labelled train micrographs,
    per start (the committed run's, or a snapshot of an experiment's)."""
    lab = _labels(path)
    ns = sorted({r["n_micrographs"] for r in lab["test_split"]})
    starts = list(dict.fromkeys((r["start"], r["pretrain_domain"]) for r in lab["test_split"]))
    lines = ["| start | " + " | ".join(f"{n} micrograph{'s' if n > 1 else ''}" for n in ns) + " |",
             "|---|" + "---|" * len(ns)]
    for start, dom in starts:
        cells = {r["n_micrographs"]: r for r in lab["test_split"] if (r["start"], r["pretrain_domain"]) == (start, dom)}
        name = "from scratch" if start == "scratch" else f"{start}: `{dom}`"
        lines.append(f"| {name} | " + " | ".join(f"{cells[n]['dice']:.3f} ({cells[n]['paper_loss']:.4f})"
                                                 if n in cells else "" for n in ns) + " |")
    return "\n".join(lines)


def real_summary(runs: list[dict]) -> str:
    """Three lines for the README: zero-shot Dice on the real test split, after the label-count study's training on
    the fewest and on all labelled micrographs (the range over its starts), and the ready model."""
    h = next(r for r in runs if r["metrics"] == "metrics/ood.json")["head"]
    zs, lab = h["ingested"][REAL]["zero_shot"], _labels()
    best_zs, worst_zs = max(zs, key=lambda p: zs[p]["dice"]), min(zs, key=lambda p: zs[p]["dice"])
    ns = sorted({r["n_micrographs"] for r in lab["test_split"]})

    def span(n: int) -> str:
        d = [r["dice"] for r in lab["test_split"] if r["n_micrographs"] == n]
        return f"{min(d):.3f}-{max(d):.3f}"

    card = json.loads((ROOT / "models/ready" / f"{REAL}.json").read_text())
    ready = card["ood_row"][REAL]
    return (f"- **Zero-shot** (6 held-out micrographs): Dice **{zs[best_zs]['dice']:.3f}** from `{best_zs}`, "
            f"**{zs[worst_zs]['dice']:.3f}** from `{worst_zs}`.\n"
            f"- **With labels**: Dice {span(ns[0])} from {ns[0]} labelled "
            f"micrograph{'s' if ns[0] > 1 else ''}, {span(ns[-1])} from all {ns[-1]} (the source paper: 0.965-0.998 "
            "from 1,400).\n"
            f"- **The ready model** `models/ready/{REAL}.pt2`: Dice {ready['dice']:.3f}, IoU {ready['iou']:.3f}.")


def _curves(path: str) -> dict[str, list[float]]:
    return {d: [c["val_loss"] for c in rows] for d, rows in json.loads((ROOT / path).read_text()).items()}


def numerics_table(runs: list[dict]) -> str:
    """bf16 against float32 (same seed) beside seed 1 against seed 0 (both bf16): the largest difference of
    the pretraining validation loss over the epochs, and of the OOD std after pretraining."""
    base, fp32, s1 = (_curves(f"docs/results/default-{k}-pretrain-curves.json") for k in ("s0-bf16", "fp32", "s1"))
    heads = {r["metrics"]: r["head"] for r in runs}
    h0, h32, h1 = (heads[f"docs/results/default-{k}.json"] for k in ("s0-bf16", "fp32", "s1"))
    h_avx2 = heads["docs/results/default-v19-avx2.json"]
    lines = ["| pretraining domain | max abs. diff. of validation loss over the epochs: bf16 vs float32 (seed 0) "
             "| the same: seed 1 vs seed 0 (bf16) | OOD std after pretraining: bf16 / float32 / seed 1 "
             "| the same, float32 on the AVX2 CPU |", "|---|---|---|---|---|"]
    for d in base:
        dq = max(abs(a - b) for a, b in zip(base[d], fp32[d], strict=True))
        ds = max(abs(a - b) for a, b in zip(base[d], s1[d], strict=True))
        pg = " / ".join(_fmt(h["ood_std_pretrain"][d]) for h in (h0, h32, h1))
        lines.append(f"| {d} | {dq:.4f} | {ds:.4f} | {pg} | {_fmt(h_avx2['ood_std_pretrain'][d])} |")
    return "\n".join(lines)


PROBES = ROOT / "docs/ablations/pretrain-probes.jsonl"
PROBE_DOMAINS = ("dfm10", "dfp10")
DEFAULT_PROBES = ROOT / "docs/ablations/default-probes.jsonl"
ZERO_NM_PROBES = ROOT / "docs/ablations/zero-nm-probes.jsonl"
DEFAULT_PROBE_DOMAINS = ("dfm10", "dfm5", "dfp5", "dfp10")  # the in-domain measure's domains (0 nm excluded)


def _probe_row(name: str, overrides: str, models: dict, wall: str, domains=PROBE_DOMAINS) -> str:
    """One probe: each domain's in-domain loss / OOD std / best epoch, and the mean in-domain loss."""
    cells = [f"{_fmt(models[d]['in_domain'])} / {_fmt(models[d]['ood_std'])} / {models[d]['best_epoch']}"
             for d in domains]
    mean = sum(models[d]["in_domain"] for d in domains) / len(domains)
    return f"| {name} | {overrides} | " + " | ".join(cells) + f" | {_fmt(round(mean, 4))} | {wall} |"


def _probe_header(first: str, domains) -> list[str]:
    return [f"| probe | {first} | " + " | ".join(f"{d}: in-domain / OOD std / best epoch" for d in domains)
            + " | mean in-domain | wall |", "|" + "---|" * (len(domains) + 4)]


def _logged_probe_rows(log: Path, domains) -> list[str]:
    """A row per probe of a log written by docs/scripts/pretrain_probe.py, in the order they were run."""
    rows = []
    for line in log.read_text().splitlines():
        pr = json.loads(line)
        over = ", ".join(f"{k}={v}" for k, v in pr["overrides"].items())
        rows.append(_probe_row(pr["name"], over, pr, f"{pr['wall_s']} s", domains))
    return rows


def _stage_models(head: dict, domains) -> dict:
    """A run's pretraining models as probe cells (best epochs are not in ood.json)."""
    return {d: {"in_domain": head["in_domain_loss_by_domain"][d], "ood_std": head["ood_std_pretrain"][d],
                "best_epoch": "-"} for d in domains}


#: The runs whose pretraining stages head the table of default probes: the retuned default on the 1.0 A
#: labels (the data of the probes), then on the study's 1.6 A labels (the committed default), seeds 0, 1, 2.
DEFAULT_STAGE_RUNS = {"docs/results/labels1A-s0.json": "simulate.label.smoothing_A=1.0",
                      "docs/results/retuned-s1.json": "simulate.label.smoothing_A=1.0",
                      "docs/results/retuned-s2.json": "simulate.label.smoothing_A=1.0",
                      "docs/results/labels16-s0.json": "none", "docs/results/labels16-s1.json": "none",
                      "docs/results/labels16-s2.json": "none"}


def default_probes_table(runs: list[dict]) -> str:
    """Pretraining-only probes of the retuned default on the committed run's CPU, beside the pretraining
    stages (2 threads per model) of the committed run and its seed experiments, on both label widths."""
    lines = _probe_header("overrides of the default", DEFAULT_PROBE_DOMAINS)
    heads = {r["metrics"]: r for r in runs}
    for path, over in DEFAULT_STAGE_RUNS.items():
        r = heads[path]
        lines.append(_probe_row(f"{r['name']}: its `pretrain` stages", over,
                                _stage_models(r["head"], DEFAULT_PROBE_DOMAINS), "", DEFAULT_PROBE_DOMAINS))
    return "\n".join(lines + _logged_probe_rows(DEFAULT_PROBES, DEFAULT_PROBE_DOMAINS))


def _zero_nm_rank(ood_std: dict) -> int:
    """The 0 nm model's rank by OOD std among the FLATTEST models (1 = lowest), as measure 3b ranks it."""
    return 1 + sum(ood_std[d] < ood_std["df0"] for d in FLATTEST)


def zero_nm_probes_table(runs: list[dict]) -> str:
    """Measure 3b's three flattest models at every seed of the committed params: their pretraining stages (raw
    weights) against a probe that keeps an average of the weights. Rank = the 0 nm model's among the three."""
    logged = [json.loads(line) for line in ZERO_NM_PROBES.read_text().splitlines()]
    probe = next(p for p in logged if "pretrain.ema_half_life_epochs" in p["overrides"])
    lines = ["| seed | " + " | ".join(f"OOD std, {v} model: raw / averaged" for v in FLATTEST.values())
             + f" | 0 nm model's rank: raw / averaged | best epochs ({', '.join(FLATTEST.values())}): averaged |",
             "|---" * (len(FLATTEST) + 3) + "|"]
    seeds = _per_seed(runs)
    held = {"raw": 0, "averaged": 0}  # seeds where the 0 nm model ranks <= 2
    for r in seeds:
        raw = {d: r["head"]["ood_std_pretrain"][d] for d in FLATTEST}
        avg = {d: probe[f"{d}/s{r['seeds']}"]["ood_std"] for d in FLATTEST}
        rank = {k: _zero_nm_rank(v) for k, v in (("raw", raw), ("averaged", avg))}
        for k in held:
            held[k] += rank[k] <= 2
        lines.append(f"| {r['seeds']} | " + " | ".join(f"{_fmt(raw[d])} / {_fmt(avg[d])}" for d in FLATTEST)
                     + f" | {rank['raw']} / {rank['averaged']} | "
                     + ", ".join(str(probe[f"{d}/s{r['seeds']}"]["best_epoch"]) for d in FLATTEST) + " |")
    lines.append(f"| rank <= 2 at | | | | {held['raw']}/{len(seeds)} / {held['averaged']}/{len(seeds)} | |")
    return "\n".join(lines)


VERSION_PROBES = ROOT / "docs/ablations/versions-3b-probes.jsonl"
#: Full runs of each version, one seed each, by the CPU that made them; this version's Intel Xeon seeds are
#: the seeds table's runs. More seeds come from VERSION_PROBES (pretraining of the three flattest models only).
VERSION_RUNS = {"previous": {"Intel Xeon, bf16": ["docs/results/labels16-s0.json", "docs/results/labels16-s1.json",
                                                  "docs/results/labels16-s2.json"],
                             "AMD EPYC, float32": ["docs/results/amd-previous-s0.json"]},
                "this": {"AMD EPYC, float32": ["docs/results/amd-default-s0.json"]}}


def versions_table(runs: list[dict]) -> str:
    """docs/results.md: measure 3b's three flattest models in the previous default and this version, seed by seed
    on both CPUs: their OOD std after pretraining, the 0 nm model's rank among them, and its distance above the
    flatter of the other two (negative: it is the flattest)."""
    heads = {r["metrics"]: r for r in runs}
    found = {v: {} for v in VERSION_RUNS}  # version -> (cpu, seed) -> {domain: OOD std}
    for version, by_cpu in VERSION_RUNS.items():
        for cpu, paths in by_cpu.items():
            for path in paths:
                found[version][cpu, int(heads[path]["seeds"])] = heads[path]["head"]["ood_std_pretrain"]
    for r in _per_seed(runs):
        found["this"]["Intel Xeon, bf16", int(r["seeds"])] = r["head"]["ood_std_pretrain"]
    for line in VERSION_PROBES.read_text().splitlines():
        pr = json.loads(line)
        found[pr["version"]][pr["cpu"], pr["seed"]] = {d: pr[d]["ood_std"] for d in FLATTEST}
    names = {"previous": "the previous default", "this": "this version"}
    lines = ["| CPU | seed | " + " | ".join(f"{names[v]}: OOD std, " + " / ".join(FLATTEST.values())
                                           + " | rank | above the flattest" for v in names) + " |", "|---" * 8 + "|"]
    summary = {v: [] for v in found}  # version -> [(rank, distance)]
    for key in sorted(set(found["previous"]) | set(found["this"]), key=lambda k: (not k[0].startswith("Intel"), k[1])):
        cells = []
        for version in names:
            pg = found[version].get(key)
            if pg is None:
                cells.append("– | | ")
                continue
            rank = _zero_nm_rank(pg)
            gap = pg["df0"] - min(pg[d] for d in FLATTEST if d != "df0")
            summary[version].append((rank, gap))
            cells.append(" / ".join(_fmt(round(pg[d], 4)) for d in FLATTEST)
                         + f" | {rank} {'✓' if rank <= 2 else '✗'} | {gap:+.4f}")
        lines.append(f"| {key[0]} | {key[1]} | " + " | ".join(cells) + " |")
    cells = []
    for version in names:
        ranks, gaps = zip(*summary[version], strict=True)
        cells.append(f"| rank <= 2 at {sum(r <= 2 for r in ranks)}/{len(ranks)} "
                     f"| mean {statistics.mean(gaps):+.4f}, sd {statistics.stdev(gaps):.4f}")
    lines.append("| held | | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def probes_table(runs: list[dict]) -> str:
    """Pretraining-only probes (docs/scripts/pretrain_probe.py) against the stage numbers of the params they
    started from (issue 19's default, committed float32 run on the AVX2 CPU)."""
    base = next(r["head"] for r in runs if r["metrics"] == "docs/results/default-v19-avx2.json")
    lines = _probe_header("overrides of issue 19's default", PROBE_DOMAINS)
    models = _stage_models(base, PROBE_DOMAINS)
    lines.append(_probe_row("issue 19's default (its `pretrain` stages, 2 threads)",
                            "none (lr 0.001, decay 0.99, ce, 50 epochs)", models, ""))
    return "\n".join(lines + _logged_probe_rows(PROBES, PROBE_DOMAINS))


def _run_line(r: dict) -> str:
    return f"`{r['command']}` ({r['wall']}, seeds {r['seeds']})"


def conditions_table(runs: list[dict]) -> str:
    """Phenomenon 5: the loss on the target after transfer by condition, beside the study's Fig. 6.1."""
    from hrtem_ood.results.conditions import CONDITION_PANELS
    from hrtem_ood.results.reference import load_study_medians

    study = load_study_medians()["fig6_1"]
    lines = []
    for r in _kind(runs, "phenomenon5"):
        tc, timing = r["head"]["transfer_conditions"], json.loads((ROOT / r["timing"]).read_text())
        lines += [f"{r['name']}: {_run_line(r)}, {tc['n_models']} transfer models (0 nm targets left out).", "",
                  "| condition | this run | the study |", "|---|---|---|"]
        for key, title in CONDITION_PANELS:
            ours, theirs = tc[key], study[key]
            for cond in list(ours) + [c for c in theirs if c not in ours]:
                lines.append(f"| {title}: {cond} | {_fmt(ours.get(cond))} | {_fmt(theirs.get(cond))} |")
        lines.append(f"| loss falls with the transfer size | {_fmt(tc['loss_falls_with_transfer_size'])} | yes |")
        lines.append(f"| frozen encoder's cost in loss | {_fmt(tc['freeze_encoder_loss_cost'])} | "
                     f"{_fmt(study['by_freeze']['encoder'] - study['by_freeze']['none'])} |")
        for part, study_saving in (("encoder", "15-25%"), ("decoder", "")):
            saving = timing[f"freeze_{part}_time_saving"]
            lines.append(f"| training time saved by freezing the {part} (median over matched models; "
                         f"`metrics/timing.json`) | {'n/a' if saving is None else f'{saving:.0%}'} | {study_saving} |")
    return "\n".join(lines)


def dose_table(runs: list[dict]) -> str:
    """The dose series: each dose's own loss after pretraining beside the study's Fig. 9.1 diagonal, and the
    loss on each target after transfer (mean over the rows transferring to it) against its diagonal."""
    lines = []
    for r in _kind(runs, "dose"):
        h = r["head"]
        lines += [f"{r['name']}: {_run_line(r)}.", "",
                  "| dose (e-/Å²) | in-domain after pretraining | the study | on this target after transfer "
                  "| after transfer / diagonal |", "|---|---|---|---|---|"]
        for d, own in h["in_domain_loss_by_domain"].items():
            dose = int(d.removeprefix("dose"))
            after = h["target_loss_after_transfer"].get(d)
            ratio = f"{after / own:.2f}" if after is not None and own else "n/a"
            lines.append(f"| {dose} | {_fmt(own)} | {_fmt(STUDY_DOSE_DIAGONAL.get(dose))} | {_fmt(after)} | {ratio} |")
    return "\n".join(lines)


def structures_table(runs: list[dict]) -> str:
    """The structure series: each lattice and size's own loss after pretraining, and its loss as a target
    after transfer; the study's in-domain loss where it states it."""
    from hrtem_ood.config.presets import read_preset

    lines = []
    for r in _kind(runs, "structures"):
        h, domains = r["head"], read_preset(r["preset"], ROOT / "presets")["domains"]
        lines += [f"{r['name']}: {_run_line(r)}.", "",
                  "| domain | lattice | diameter (Å) | in-domain after pretraining | the study (in-domain) "
                  "| on this target after transfer |", "|---|---|---|---|---|---|"]
        for d, own in h["in_domain_loss_by_domain"].items():
            st = domains[d]["structure"]
            mat, size = st["material"], "-".join(f"{v:g}" for v in st["diameter_A"])
            lines.append(f"| {d} | {mat} | {size} | {_fmt(own)} | {_fmt(STUDY_STRUCTURE_IN_DOMAIN.get(mat))} "
                         f"| {_fmt(h['target_loss_after_transfer'].get(d))} |")
    return "\n".join(lines)


def render(name: str, runs: list[dict]) -> str:
    sys.path.insert(0, str(ROOT / "docs/scripts"))
    import matching_doc

    if name in matching_doc.RENDER:
        return matching_doc.RENDER[name]()
    return {"presets": presets_table, "numerics": numerics_table, "default": default_summary,
            "conditions": conditions_table, "dose": dose_table, "structures": structures_table,
            "probes": probes_table, "default_probes": default_probes_table, "real": real_table,
            "labels": labels_table, "real_summary": real_summary, "answer": answer_table, "seeds": seeds_table,
            "zero_nm_probes": zero_nm_probes_table, "versions": versions_table,
            "labels_seed1": lambda runs: labels_table(runs, "docs/results/labels-seed1.json")}[name](runs)


def _replace(text: str, name: str, body: str, path: str) -> str:
    pat = re.compile(rf"(<!-- results:{name} -->\n)(?:.*?\n)?(<!-- /results:{name} -->)", re.S)
    if not pat.search(text):
        raise SystemExit(f"{path}: no <!-- results:{name} --> ... <!-- /results:{name} --> markers")
    return pat.sub(lambda m: m.group(1) + body + "\n" + m.group(2), text)


def main(argv: list[str]) -> int:
    cmd = argv[0] if argv else "check"
    if cmd == "collect":
        import dvc.api

        from hrtem_ood.results.analysis import experiment_revs

        pairs = dict(a.split("=", 1) for a in argv[1:])
        revs = experiment_revs(list(pairs.values()), ROOT)
        for name, exp in pairs.items():
            text = dvc.api.read("metrics/ood.json", repo=str(ROOT), rev=revs[exp])
            head = json.loads(text)
            head["experiment"] = {"name": exp, "rev": revs[exp],
                                  "train.seeds": dvc.api.params_show(repo=str(ROOT), rev=revs[exp])["train"]["seeds"]}
            (ROOT / "docs/results" / f"{name}.json").write_text(json.dumps(head, indent=1) + "\n")
            timing = dvc.api.read("metrics/timing.json", repo=str(ROOT), rev=revs[exp])
            (ROOT / "docs/results" / f"{name}-timing.json").write_text(timing)
            (ROOT / "docs/results" / name).mkdir(exist_ok=True)
            for fig in FIGURES:
                data = dvc.api.read(f"plots/{fig}", repo=str(ROOT), rev=revs[exp], mode="rb")
                (ROOT / "docs/results" / name / fig).write_bytes(data)
            curves = {d: json.loads(dvc.api.read(f"metrics/curves/pretrain/{d}.json", repo=str(ROOT), rev=revs[exp]))
                      for d in dvc.api.params_show(repo=str(ROOT), rev=revs[exp])["pretrain"]["domains"]}
            (ROOT / "docs/results" / f"{name}-pretrain-curves.json").write_text(json.dumps(curves) + "\n")
        return 0
    runs = _load_runs()
    stale = []
    for path, names in TARGETS.items():
        text = (ROOT / path).read_text()
        new = text
        for name in names:
            new = _replace(new, name, render(name, runs), path)
        if new != text:
            stale.append(path)
            if cmd == "write":
                (ROOT / path).write_text(new)
    if cmd == "check" and stale:
        print(f"stale tables in {stale}: run python docs/scripts/results_doc.py write", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
