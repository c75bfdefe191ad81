"""Pipeline stages: read inputs, call the science modules, write outputs atomically.

Each ``run_*`` function is what one ``dvc.yaml`` stage executes (through the CLI). Heavy libraries
are imported inside the functions that need them so each stage starts quickly.
"""

from __future__ import annotations

import functools
import json
import time
from pathlib import Path

import numpy as np

from .datasets import SPLITS, domain_file, read_h5, write_h5
from .io import atomic_path, derive_seed, read_json, stable_hash, write_json
from .params import domain_defocus_nm, domain_imaging, domain_names, validate

# ----------------------------------------------------------------------------------- structures


def run_structures(params: dict, out_dir: str | Path) -> None:
    from tqdm import tqdm

    from .structures import build_scene, scene_plan

    validate(params, ("structures",))
    sp = params["structures"]
    arrays: dict[str, list] = {"numbers": [], "positions": [], "is_particle": []}
    offsets, cells, specs = [0], [], []
    for sid, split, seed in tqdm(scene_plan(sp), desc="structures", unit="scene", mininterval=1.0):
        full, part, spec = build_scene(sp, sid, split, seed)
        n_part = len(part)
        arrays["numbers"].append(full.numbers)
        arrays["positions"].append(full.positions)
        is_particle = np.zeros(len(full), bool)
        is_particle[:n_part] = True
        arrays["is_particle"].append(is_particle)
        offsets.append(offsets[-1] + len(full))
        cells.append(np.diag(full.cell.array))
        specs.append(spec.to_dict())
    with atomic_path(out_dir, is_dir=True) as tmp:
        write_h5(tmp / "atoms.h5",
                 {"numbers": np.concatenate(arrays["numbers"]).astype(np.int16),
                  "positions_A": np.concatenate(arrays["positions"]).astype(np.float64),
                  "is_particle": np.concatenate(arrays["is_particle"]),
                  "offsets": np.asarray(offsets, np.int64), "cell_A": np.asarray(cells)},
                 {"params_hash": stable_hash(sp), "units": "Angstrom"})
        write_json(tmp / "scenes.json", specs)


def _load_scenes(structures_dir: str | Path) -> tuple[list[dict], dict]:
    structures_dir = Path(structures_dir)
    specs = read_json(structures_dir / "scenes.json")
    atoms, _ = read_h5(structures_dir / "atoms.h5")
    return specs, atoms


# ----------------------------------------------------------------------------------- simulate


def run_simulate(params: dict, structures_dir: str | Path, out_dir: str | Path) -> None:
    from .parallel import map_ordered
    from .simulation import simulate_scene

    validate(params, ("simulate", "imaging"))
    sim = params["simulate"]
    specs, atoms = _load_scenes(structures_dir)
    off = atoms["offsets"]
    tasks = []
    for i, spec in enumerate(specs):
        sl = slice(off[i], off[i + 1])
        tasks.append({"scene_id": spec["scene_id"], "numbers": atoms["numbers"][sl],
                      "positions": atoms["positions_A"][sl], "cell": atoms["cell_A"][i],
                      "is_particle": atoms["is_particle"][sl], "sim": sim,
                      "Cs_mm": float(params["imaging"]["Cs_mm"]),
                      "seed": derive_seed(sim["seed"], "phonons", spec["scene_id"])})
    t0 = time.perf_counter()
    results = map_ordered(simulate_scene, tasks, desc="multislice")
    print(f"simulate: {len(results)} scenes in {time.perf_counter() - t0:.1f} s")
    empty = [r["scene_id"] for r in results if r["mask"].sum() == 0 and specs[r["scene_id"]]["particles"]]
    if empty:
        raise RuntimeError(f"simulate: the labels of scenes {empty[:10]} are empty although they hold particles; "
                           "raise simulate.label.smoothing_A, lower simulate.label.threshold_rad or use larger "
                           "structures.particles.diameter_A")
    with atomic_path(out_dir, is_dir=True) as tmp:
        write_h5(tmp / "exitwaves.h5",
                 {"waves": np.stack([r["waves"] for r in results]),
                  "masks": np.stack([r["mask"] for r in results]),
                  "zero_defocus_A": np.array([r["zero_defocus_A"] for r in results]),
                  "scene_id": np.array([s["scene_id"] for s in specs], np.int64),
                  "split": np.array([s["split"] for s in specs])},
                 {"sampling_A": float(sim["output_sampling_A"]), "energy_eV": float(sim["energy_keV"]) * 1e3,
                  "Cs_mm_calibration": float(params["imaging"]["Cs_mm"]), "units_waves": "vacuum = 1",
                  "params_hash": stable_hash(sim)})
        write_json(tmp / "summary.json", {  # no timings here: same params, same bytes
            "n_scenes": len(results),
            "mask_fraction_mean": float(np.mean([r["mask"].mean() for r in results])),
            "zero_defocus_A": [r["zero_defocus_A"] for r in results],
            "particle_phase_max_rad": [r["particle_phase_max_rad"] for r in results]})


# ----------------------------------------------------------------------------------- image


def domain_images(waves: np.ndarray, zero_defocus_A: np.ndarray, scene_ids: np.ndarray, dom: dict,
                  sampling_A: float, energy_eV: float) -> dict[str, np.ndarray]:
    """Images of one domain: calibrated zero + domain defocus + seeded jitter, CTF with focal spread,
    Poisson noise at the dose. Every draw is seeded by (imaging seed, domain, scene id)."""
    from .imaging import image_intensity, poisson_counts

    out: dict[str, list] = {"images": [], "defocus_A": [], "jitter_A": [], "noise_seed": []}
    for w, z0, sid in zip(waves, zero_defocus_A, scene_ids, strict=True):
        rng = np.random.default_rng(derive_seed(dom["seed"], dom["name"], "jitter", int(sid)))
        jitter = float(rng.normal(0.0, 10.0 * dom["defocus_sigma_nm"]))
        defocus = float(z0) + 10.0 * float(dom["defocus_nm"]) + jitter
        intensity = image_intensity(w, sampling_A, energy_eV, defocus, dom["Cs_mm"], dom["focal_spread_A"],
                                    dom.get("aperture_mrad"))
        seed = derive_seed(dom["seed"], dom["name"], "noise", int(sid))
        out["images"].append(poisson_counts(intensity, sampling_A, dom["dose_e_per_A2"], seed))
        out["defocus_A"].append(defocus)
        out["jitter_A"].append(jitter)
        out["noise_seed"].append(seed)
    return {k: np.asarray(v) for k, v in out.items()}


def run_image(params: dict, domain: str, exitwaves_dir: str | Path, out_dir: str | Path) -> None:
    from tqdm import tqdm

    from .imaging import configure_abtem

    validate(params, ("imaging",))
    if domain not in params["domains"]:
        raise ValueError(f"{params.get('_source', 'params.yaml')}: domains: unknown domain {domain!r}; "
                         f"declared: {domain_names(params)}")
    dom = domain_imaging(params, domain)
    configure_abtem("numpy")
    ew, attrs = read_h5(Path(exitwaves_dir) / "exitwaves.h5")
    sampling, energy = float(attrs["sampling_A"]), float(attrs["energy_eV"])
    with atomic_path(out_dir, is_dir=True) as tmp:
        for split in tqdm(SPLITS, desc=f"image {domain}", unit="split"):
            sel = ew["split"] == split
            imgs = domain_images(ew["waves"][sel], ew["zero_defocus_A"][sel], ew["scene_id"][sel], dom,
                                 sampling, energy)
            write_h5(tmp / f"{split}.h5",
                     {"images": imgs["images"], "masks": ew["masks"][sel], "scene_id": ew["scene_id"][sel],
                      "zero_defocus_A": ew["zero_defocus_A"][sel], "defocus_A": imgs["defocus_A"],
                      "jitter_A": imgs["jitter_A"], "noise_seed": imgs["noise_seed"].astype(np.int64)},
                     {"domain": domain, "split": split, "source": "simulated", "sampling_A": sampling,
                      "image_units": "electron counts", "defocus_nm": float(dom["defocus_nm"]),
                      "defocus_sigma_nm": float(dom["defocus_sigma_nm"]),
                      "dose_e_per_A2": float(dom["dose_e_per_A2"]), "focal_spread_A": float(dom["focal_spread_A"]),
                      "Cs_mm": float(dom["Cs_mm"]), "energy_eV": energy,
                      "aperture_mrad": float(dom.get("aperture_mrad") or 0.0),
                      "defocus_convention": "abTEM: defocus = -C10, positive = underfocus",
                      "params_hash": stable_hash({"imaging": dom, "exitwaves": attrs["params_hash"]})})


def run_examples(params: dict, domains_dir: str | Path, out_png: str | Path, split: str = "test",
                 index: int = 0) -> None:
    from .plots import montage_png

    names = list(params["domains"])
    panels, titles = [], []
    mask = None
    for name in names:
        arrays, attrs = read_h5(domain_file(domains_dir, name, split), ("images", "masks"))
        panels.append(arrays["images"][index])
        dnm = attrs.get("defocus_nm")
        titles.append(f"{name} ({dnm:+g} nm)" if isinstance(dnm, float) else name)
        mask = arrays["masks"][index]
    panels.append(mask.astype(np.float32))
    titles.append("mask")
    montage_png(panels, titles, out_png)



# ----------------------------------------------------------------------------------- training

RESULT_COLUMNS = ["run", "stage", "pretrain_domain", "target_domain", "eval_domain", "metric", "value", "seed",
                  "freeze", "n_transfer", "lr_pretrain", "lr_transfer", "epoch"]
METRIC_NAMES = ("ce", "paper_loss", "dice", "iou")


def _eval_sets(params: dict, domains_dir: str | Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Standardized test images and masks of every declared domain."""
    return _load_eval_sets(str(Path(domains_dir).resolve()), tuple(domain_names(params)))


@functools.lru_cache(maxsize=1)
def _load_eval_sets(domains_dir: str, names: tuple[str, ...]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Loaded once per process (a stage's seeds, or the tasks a dask worker runs, share it); callers must not
    modify the arrays."""
    from .datasets import load_split
    from .evaluation import standardize

    out = {}
    for name in names:
        d = load_split(domains_dir, name, "test")
        out[name] = (standardize(d["images"]), d["masks"])
    return out


def _train_set(domains_dir, domain: str, split: str, n_images: int | None):
    from .datasets import load_split
    from .evaluation import standardize

    d = load_split(domains_dir, domain, split)
    images, masks = d["images"], d["masks"]
    if n_images is not None:
        if n_images > len(images):
            raise ValueError(f"{d['path']}: asked for {n_images} images but the {split} split holds {len(images)}")
        images, masks = images[:n_images], masks[:n_images]
    return standardize(images), masks


def train_one_seed(job: dict) -> dict:
    """Train and evaluate one model (one seed). Plain-data in and out, so it can run on a dask worker.

    ``job``: params, stage, domains, lr, epochs, n_images, freeze, seed, init_state (or None),
    domains_dir. Returns the best state, its epoch, the result rows and the learning curve.
    """

    from .evaluation import evaluate
    from .model import build_model
    from .training import select_device, set_threads, train

    params, seed = job["params"], job["seed"]
    tc = params["train"]
    set_threads(tc["threads"])
    device = select_device()
    tr_x, tr_y = _train_set(job["domains_dir"], job["target_domain"], "train", job["n_images"])
    va_x, va_y = _train_set(job["domains_dir"], job["target_domain"], "val", None)
    model = build_model(params["model"], seed)
    if job["init_state"] is not None:
        model.load_state_dict(job["init_state"])
    model.freeze(job["freeze"])
    res = train(model, tr_x, tr_y, va_x, va_y, tc, job["lr"], job["epochs"], seed=seed, device=device)
    model.load_state_dict(res.best_state)
    stage, p, t = job["stage"], job["pretrain_domain"], job["target_domain"]
    run = f"pretrain:{p}:s{seed}" if stage == "pretrain" else f"transfer:{p}->{t}:s{seed}"
    common = {"run": run, "stage": stage, "pretrain_domain": p, "target_domain": t, "seed": seed,
              "freeze": job["freeze"] if stage == "transfer" else None,
              "n_transfer": job["n_images"] if stage == "transfer" else None,
              "lr_pretrain": float(params["pretrain"]["lr"]), "lr_transfer": job["lr"] if stage == "transfer" else None,
              "epoch": res.best_epoch}
    rows = []
    for eval_domain, (ex, ey) in _eval_sets(params, job["domains_dir"]).items():
        m = evaluate(model, ex, ey, device)
        rows.extend({**common, "eval_domain": eval_domain, "metric": metric, "value": round(m[metric], 7)}
                    for metric in METRIC_NAMES)
    curve = [{"run": run, "seed": seed, **{k: round(v, 7) if isinstance(v, float) else v for k, v in c.items()}}
             for c in res.curve]
    print(f"{run}: best epoch {res.best_epoch}/{job['epochs']}, val loss {res.best_val_loss:.4f}, "
          f"{res.images_seen / res.seconds:.1f} crops/s")
    state = {k: v.detach().cpu() for k, v in res.best_state.items()}
    return {"seed": seed, "state": state, "epoch": res.best_epoch, "rows": rows, "curve": curve}


def _train_and_evaluate(params: dict, *, stage: str, pretrain_domain: str, target_domain: str, domains_dir,
                        lr: float, epochs: int, n_images, freeze: str, init_dir: Path | None,
                        model_dir: Path, results_path: Path, curves_path: Path) -> None:
    """One model per seed: on the dask cluster when one is configured, else one after another here."""
    import torch

    from .io import write_csv
    from .parallel import map_ordered, scheduler_address

    jobs = []
    for seed in params["train"]["seeds"]:
        init = None
        if init_dir is not None:
            init = torch.load(init_dir / f"seed{seed}.pt", map_location="cpu", weights_only=True)["state_dict"]
        jobs.append({"params": {k: v for k, v in params.items() if k != "_source"}, "stage": stage,
                     "pretrain_domain": pretrain_domain, "target_domain": target_domain,
                     "domains_dir": str(Path(domains_dir).resolve()), "lr": lr, "epochs": epochs,
                     "n_images": n_images, "freeze": freeze, "seed": seed, "init_state": init})
    if scheduler_address():
        results = map_ordered(train_one_seed, jobs, desc=f"{stage} seeds")
    else:  # torch already uses every core for one model
        results = [train_one_seed(job) for job in jobs]
    with atomic_path(model_dir, is_dir=True) as tmp_models:
        for r in results:
            torch.save({"state_dict": r["state"], "model": params["model"], "seed": r["seed"], "epoch": r["epoch"],
                        "stage": stage, "pretrain_domain": pretrain_domain, "target_domain": target_domain},
                       tmp_models / f"seed{r['seed']}.pt")
    write_csv(results_path, [row for r in results for row in r["rows"]], RESULT_COLUMNS)
    write_json(curves_path, [c for r in results for c in r["curve"]])


def run_pretrain(params: dict, domain: str, domains_dir: str | Path) -> None:
    validate(params, ("model", "train", "pretrain"))
    if domain not in params["pretrain"]["domains"]:
        raise ValueError(f"{params.get('_source', 'params.yaml')}: pretrain.domains: {domain!r} is not listed "
                         f"({params['pretrain']['domains']})")
    pc = params["pretrain"]
    _train_and_evaluate(params, stage="pretrain", pretrain_domain=domain, target_domain=domain,
                        domains_dir=domains_dir, lr=float(pc["lr"]), epochs=int(pc["epochs"]),
                        n_images=pc["n_images"], freeze="none", init_dir=None,
                        model_dir=Path("models/pretrain") / domain,
                        results_path=Path("metrics/results/pretrain") / f"{domain}.csv",
                        curves_path=Path("metrics/curves/pretrain") / f"{domain}.json")


def run_transfer(params: dict, pair: str, domains_dir: str | Path) -> None:
    validate(params, ("model", "train", "pretrain", "transfer"))
    pairs = params["transfer"]["pairs"]
    if pair not in pairs:
        raise ValueError(f"{params.get('_source', 'params.yaml')}: transfer.pairs: unknown pair {pair!r}")
    p, t = pairs[pair]["pretrain"], pairs[pair]["target"]
    tc = params["transfer"]
    _train_and_evaluate(params, stage="transfer", pretrain_domain=p, target_domain=t, domains_dir=domains_dir,
                        lr=float(tc["lr"]), epochs=int(tc["epochs"]), n_images=int(tc["n_images"]),
                        freeze=tc["freeze"], init_dir=Path("models/pretrain") / p,
                        model_dir=Path("models/transfer") / pair,
                        results_path=Path("metrics/results/transfer") / f"{pair}.csv",
                        curves_path=Path("metrics/curves/transfer") / f"{pair}.json")


def run_pairs(params: dict, params_path: str | Path, write: bool = False) -> None:
    """Print the expected transfer pairs, or rewrite ``transfer.pairs`` in the params file in place
    (only that block; comments elsewhere are kept)."""
    from .params import expected_pairs

    validate(params, ("pretrain",))
    pairs = expected_pairs(params)
    block = "".join(f"    {k}: {{pretrain: {v['pretrain']}, target: {v['target']}}}\n" for k, v in pairs.items())
    if not write:
        print(block, end="")
        return
    text = Path(params_path).read_text()
    lines = text.splitlines(keepends=True)
    try:
        start = next(i for i, ln in enumerate(lines) if ln.rstrip() in ("  pairs:", "  pairs: {}"))
    except StopIteration as exc:
        raise ValueError(f"{params_path}: transfer.pairs: no '  pairs:' line to rewrite") from exc
    end = start + 1
    while end < len(lines) and lines[end].startswith("    "):
        end += 1
    lines[start:end] = ["  pairs:\n", block]
    with atomic_path(params_path) as tmp:
        tmp.write_text("".join(lines))
    print(f"{params_path}: wrote {len(pairs)} transfer pairs")


# ----------------------------------------------------------------------------------- aggregate


def grid_result_files(params: dict, root: str | Path = ".") -> list[Path]:
    """The results tables of the current grid (never a glob: stale tables of removed pairs are ignored)."""
    root = Path(root)
    files = [root / "metrics/results/pretrain" / f"{d}.csv" for d in params["pretrain"]["domains"]]
    files += [root / "metrics/results/transfer" / f"{k}.csv" for k in params["transfer"]["pairs"]]
    return files


def aggregate_as_params(params: dict, rows: list[dict]) -> dict:
    """``aggregation.aggregate`` of ``rows`` over the declared domains, as the ``aggregate`` params say."""
    from .aggregation import aggregate

    ac = params["aggregate"]
    return aggregate(rows, domain_names(params), params["pretrain"]["domains"], metric=ac["metric"],
                     reduce=ac["reduce"], exclude_from_std=ac["exclude_from_std"], filters=ac["filters"])


def aggregate_and_write(params: dict, rows: list[dict], out_metrics: str | Path, out_plots: str | Path,
                        extra_head: dict | None = None) -> dict:
    from .aggregation import headline, plot_tables
    from .plots import domain_loss_chart, generalization_chart, render, report_html

    ac = params["aggregate"]
    agg = aggregate_as_params(params, rows)
    defocus = domain_defocus_nm(params)
    tables = plot_tables(agg, defocus, ac["pairs"])
    out_plots, out_metrics = Path(out_plots), Path(out_metrics)
    for name, table in tables.items():
        write_json(out_plots / f"{name}.json", table)
    head = headline(agg)
    head.update(extra_head or {})
    head["vs_study"] = vs_study_head(agg, defocus)
    head["pooled_conditions"] = {k: v for k, v in agg["pooled"].items()}
    head["models_per_cell"] = {k: list(v) for k, v in agg["models_per_cell"].items()}
    write_json(out_metrics / "ood.json", head)
    gen = generalization_chart(tables, defocus, ac["metric"])
    dom = domain_loss_chart(tables, defocus, ac["metric"])
    render(gen, out_plots / "generalization.png", "png")
    render(gen, out_plots / "generalization.svg", "svg")
    render(dom, out_plots / "domain_loss.png", "png")
    notes = [f"metric {ac['metric']}, {ac['reduce']} over all models of a cell; std excludes "
             f"{ac['exclude_from_std']}; pooled: {head['pooled_conditions']}"]
    report_html({"OOD generalization": gen, "Loss before and after transfer": dom},
                {k: v for k, v in head.items() if not isinstance(v, dict)}, notes, out_plots / "report.html")
    return head


def run_aggregate(params: dict, results: list[str] | None, out_metrics: str | Path, out_plots: str | Path) -> None:
    from .aggregation import read_results

    validate(params, ("aggregate",))
    files = [Path(f) for f in results] if results else grid_result_files(params)
    rows = [row for f in files for row in read_results(f)]
    head = aggregate_and_write(params, rows, out_metrics, out_plots)
    print(json.dumps({k: v for k, v in head.items() if not isinstance(v, dict)}, indent=1))


# ----------------------------------------------------------------------------------- analysis


def run_ctf_overlap(params: dict, exitwaves_dir: str | Path, q_max_per_A: float, out: str | Path | None) -> dict:
    """Does the overlap of two domains' phase CTFs predict the OOD gap L_j(f_i) - L_i(f_i) after
    pretraining (the companion paper's hypothesis)? Uses the median calibrated zero defocus of the
    scenes as the absolute focus of the 0 nm domain; domains without a known defocus are skipped.
    Cs and focal spread are taken per evaluated domain (the study's domains share them). Loss cells
    are reduced as the aggregate stage reduces them (``aggregate.metric``, ``reduce``, ``filters``)."""
    from scipy.stats import spearmanr

    from .aggregation import read_results
    from .imaging import ctf_overlap

    validate(params, ("imaging", "simulate", "aggregate"))
    summary = read_json(Path(exitwaves_dir) / "summary.json")
    zero_A = float(np.median(summary["zero_defocus_A"]))
    doms, pres = domain_names(params), list(params["pretrain"]["domains"])
    rows = [row for d in pres for row in read_results(Path("metrics/results/pretrain") / f"{d}.csv")]
    agg = aggregate_as_params(params, rows)  # the same cells (filters, reduction) as the aggregate stage
    energy_eV = float(params["simulate"]["energy_keV"]) * 1e3
    defocus = domain_defocus_nm(params)
    table = []
    for i, p in enumerate(pres):
        for j, d in enumerate(doms):
            dp, dd = defocus.get(p), defocus.get(d)
            if d == p or dp is None or dd is None or np.isnan(agg["P"][i, j]):
                continue
            im = domain_imaging(params, d)
            ov = ctf_overlap(zero_A + 10 * dp, zero_A + 10 * dd, float(im["Cs_mm"]), energy_eV, q_max_per_A,
                             float(im["focal_spread_A"]))
            table.append({"pretrain": p, "eval": d, "ctf_overlap": round(ov, 4),
                          "ood_gap": round(float(agg["P"][i, j] - agg["P"][i, doms.index(p)]), 6)})
    if len(table) < 3:
        raise ValueError("ctf-overlap needs pretraining results on at least 3 (pretrain, eval) pairs")
    rho, pval = spearmanr([t["ctf_overlap"] for t in table], [t["ood_gap"] for t in table])
    result = {"zero_defocus_A_median": round(zero_A, 2), "q_max_per_A": q_max_per_A, "metric": agg["metric"],
              "spearman_overlap_vs_gap": round(float(rho), 4), "p_value": float(f"{pval:.3g}"), "pairs": table}
    for t in table:
        print(f"{t['pretrain']:>8} -> {t['eval']:<8} overlap {t['ctf_overlap']:+.3f}  OOD gap {t['ood_gap']:+.4f}")
    print(f"Spearman rho(overlap, OOD gap) = {rho:+.3f} (p = {pval:.2g}, {len(table)} pairs; negative = "
          f"less overlap, larger gap)")
    if out:
        write_json(out, result)
    return result


VS_STUDY_KEYS = ("P", "P_without_0nm", "PG", "T", "shift")


def vs_study_head(agg: dict, defocus: dict[str, float | None]) -> dict:
    """Spearman rho of each matrix with the study's, both readings of its sign (for ``ood.json``)."""
    from .reference import readings

    return {name: {k: r[k]["rho"] for k in VS_STUDY_KEYS} for name, r in readings(agg, defocus).items()}


def run_vs_study(params: dict, results: list[str] | None, out: str | Path | None) -> dict:
    """Rank correlations of this run's matrices with the study's published ones, reading the study's
    defocus sign both ways (:mod:`reference`). Uses the grid's results tables that exist, so a run
    with only some stages (e.g. pretraining only) compares what it has."""
    from .aggregation import read_results
    from .reference import readings

    validate(params, ("aggregate",))
    files = [Path(f) for f in results] if results else [f for f in grid_result_files(params) if f.is_file()]
    if not files:
        raise FileNotFoundError("no results tables found (metrics/results/pretrain/*.csv); run the pipeline first")
    agg = aggregate_as_params(params, [row for f in files for row in read_results(f)])
    defocus = domain_defocus_nm(params)
    result = {"metric": agg["metric"], "reduce": agg["reduce"], "readings": list(readings(agg, defocus).values())}
    print("Spearman rho with the study's published matrices (cells compared in brackets):")
    for r in result["readings"]:
        cells = "  ".join(f"{k} {_rho(r[k]['rho'])} ({r[k]['n']})" for k in VS_STUDY_KEYS)
        print(f"  {r['reading']:<34} {cells}")
    if out:
        write_json(out, result)
    return result


def _rho(x: float | None) -> str:
    return "  n/a" if x is None else f"{x:+.2f}"


# ----------------------------------------------------------------------------------- presets


def preset_overrides(name: str, presets_dir: str | Path = "presets") -> list[str]:
    """``-S key=value`` arguments (shell-quoted) that apply ``presets/<name>.yaml`` with ``dvc exp run``."""
    import shlex

    import yaml

    path = Path(presets_dir) / f"{name}.yaml"
    if not path.is_file():
        available = sorted(p.stem for p in Path(presets_dir).glob("*.yaml"))
        raise FileNotFoundError(f"{path}: no such preset (available: {available})")
    out: list[str] = []

    def walk(node, prefix):
        if isinstance(node, dict) and node:
            for k, v in node.items():
                walk(v, f"{prefix}.{k}" if prefix else str(k))
        else:
            value = yaml.safe_dump(node, default_flow_style=True).strip().removesuffix("\n...").strip()
            out.extend(["-S", shlex.quote(f"{prefix}={value}")])

    walk(yaml.safe_load(path.read_text()) or {}, "")
    return out


# ----------------------------------------------------------------------------------- compare


def experiment_revs(exps: list[str] | None = None, repo: str | Path = ".") -> dict[str, str]:
    """``{experiment name: commit}`` of the named experiments, or of all experiments."""
    import dvc.api

    rows = dvc.api.exp_show(repo=str(repo))
    found = {r["Experiment"]: r["rev"] for r in rows if r.get("Experiment") and r.get("typ") != "baseline"}
    if not exps:
        if not found:
            raise ValueError("no dvc experiments found (run some with `dvc exp run`)")
        return found
    missing = [e for e in exps if e not in found]
    if missing:
        raise ValueError(f"unknown experiments {missing}; known: {sorted(found)}")
    return {e: found[e] for e in exps}


def experiment_rows(name: str, rev: str, repo: str | Path = ".") -> list[dict]:
    """Every results row of one experiment's grid, tagged with the experiment's name."""
    import dvc.api

    from .aggregation import read_results

    p = dvc.api.params_show(repo=str(repo), rev=rev)
    files = [f"metrics/results/pretrain/{d}.csv" for d in p["pretrain"]["domains"]]
    files += [f"metrics/results/transfer/{k}.csv" for k in p["transfer"]["pairs"]]
    rows = []
    for f in files:
        for row in read_results(f"{name}:{f}", text=dvc.api.read(f, repo=str(repo), rev=rev)):
            row["run"] = f"{name}/{row['run']}"
            row["experiment"] = name
            rows.append(row)
    return rows


def run_compare(params: dict, exps: list[str] | None, out_metrics: str | Path, out_plots: str | Path) -> dict:
    """Pool the results of several experiments (the study's "median over all hyperparameter
    conditions") and aggregate them with the workspace's ``aggregate`` params."""
    validate(params, ("aggregate",))
    revs = experiment_revs(exps)
    rows = [row for name, rev in revs.items() for row in experiment_rows(name, rev)]
    head = aggregate_and_write(params, rows, out_metrics, out_plots, {"experiments": sorted(revs)})
    pooled = head["pooled_conditions"]
    print(f"pooled {len(revs)} experiments ({', '.join(sorted(revs))}); conditions pooled per cell: "
          + "; ".join(f"{k}={v}" for k, v in pooled.items()))
    return head


# ----------------------------------------------------------------------------------- ingest


def run_ingest(params: dict, dataset: str, out_dir: str | Path) -> None:
    from .ingest import ingest_dataset

    validate(params, ("ingest",))
    datasets = (params.get("ingest") or {}).get("datasets") or {}
    if dataset not in datasets:
        raise ValueError(f"{params.get('_source', 'params.yaml')}: ingest.datasets: unknown dataset {dataset!r}; "
                         f"declared: {sorted(datasets)}")
    cfg = datasets[dataset]
    sampling = float(params["simulate"]["output_sampling_A"])
    result = ingest_dataset(cfg, sampling)
    with atomic_path(out_dir, is_dir=True) as tmp:
        for split in SPLITS:
            d = result[split]
            write_h5(tmp / f"{split}.h5",
                     {"images": d["images"], "masks": d["masks"], "source_index": d["source_index"],
                      "tile_y": d["tile_y"], "tile_x": d["tile_x"], "pixel_size_A_raw": d["pixel_size_A_raw"],
                      "sources": np.array(result["_sources"])},
                     {"domain": dataset, "split": split, "source": "ingested", "sampling_A": sampling,
                      "image_units": "raw detector values (resampled)", "has_masks": bool(result["_has_masks"]),
                      "defocus_nm": cfg.get("defocus_nm"), "dose_e_per_A2": cfg.get("dose_e_per_A2"),
                      "params_hash": stable_hash(cfg)})
    counts = {s: len(result[s]["images"]) for s in SPLITS}
    print(f"ingested {dataset}: {len(result['_sources'])} files -> tiles per split {counts}")
