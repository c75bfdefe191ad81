"""Read the study's published matrices from its figures.

docs/fidelity.md, "The study's matrices, read back from its figures", uses them.

Each cell of the two published figures is read by the nearest colour on its figure's colour bar
(`hrtem_ood.results.reference`). The pixel boxes below are those of the figures as published (2000 x 1059
and 2177 x 1057 px PNGs): plotted areas inside their black frames, colour bars between their
frames, and the colour bars' value scales from their tick marks. The script stops if any cell's
colour is further than 6 RGB units from its bar (a moved box or another figure), and writes
src/hrtem_ood/results/data/study_figures.json atomically.

    python docs/scripts/digitize_study.py ../shared/reference
"""
import argparse
from pathlib import Path

import numpy as np
import skimage.io

from hrtem_ood.dataio.io import write_json


def read_cells(image: np.ndarray, box: tuple[int, int, int, int], shape: tuple[int, int]) -> np.ndarray:
    """Median RGB of the central half of every cell of a matrix plot.

    ``image``: (H, W, 3+) array; ``box``: (top, bottom, left, right) pixel rows/columns of the plotted
    area inside its frame; ``shape``: (rows, columns) of the matrix. Returns (rows, columns, 3)."""
    top, bottom, left, right = box
    nr, nc = shape
    h, w = (bottom - top) / nr, (right - left) / nc
    if h < 4 or w < 4:
        raise ValueError(f"cells of {h:.1f} x {w:.1f} px are too small to read (box {box}, shape {shape})")
    out = np.empty((nr, nc, 3))
    for i in range(nr):
        for j in range(nc):
            r, c = int(top + (i + 0.5) * h), int(left + (j + 0.5) * w)
            patch = image[r - int(h / 4):r + int(h / 4) + 1, c - int(w / 4):c + int(w / 4) + 1, :3]
            out[i, j] = np.median(patch.reshape(-1, 3).astype(float), axis=0)
    return out


def colorbar_lookup(rgb: np.ndarray, bar_rgb: np.ndarray, bar_values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Value of the colour-bar entry nearest (Euclidean RGB) to each colour, and that distance.

    ``rgb``: (..., 3); ``bar_rgb``: (n, 3) colours along the bar; ``bar_values``: (n,) their values."""
    bar_rgb = np.asarray(bar_rgb, float)
    d2 = ((np.asarray(rgb, float)[..., None, :] - bar_rgb) ** 2).sum(-1)
    k = d2.argmin(-1)
    return np.asarray(bar_values, float)[k], np.sqrt(np.take_along_axis(d2, k[..., None], -1)[..., 0])

OUT = Path(__file__).resolve().parents[2] / "src/hrtem_ood/results/data/study_figures.json"
PRETRAIN_NM = [-10, -5, 0, 5, 10]
EVAL_NM = [-25, -20, -15, -10, -5, 0, 5, 10, 15, 20, 25]


def bar(image, rows, col, value_at):
    """Colours down a vertical colour bar (rows inside its frame, 11 px wide around `col`) and their
    values, linear in the row: value_at = ((row_a, value_a), (row_b, value_b)) from two tick marks."""
    (ra, va), (rb, vb) = value_at
    r = np.arange(*rows)
    return image[r, col - 5:col + 6, :3].astype(float).mean(1), va + (r - ra) * (vb - va) / (rb - ra)


def read(image, box, shape, bar_rgb, bar_values, name):
    values, dist = colorbar_lookup(read_cells(image, box, shape), bar_rgb, bar_values)
    if dist.max() > 6:
        raise SystemExit(f"{name}: a cell is {dist.max():.1f} RGB units from its colour bar; wrong box?")
    return values, float(dist.max())


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("reference", help="folder with fig_dataset_perf.png and fig_generalization.png")
    ref = Path(ap.parse_args().reference)
    perf = skimage.io.imread(ref / "fig_dataset_perf.png")
    gen = skimage.io.imread(ref / "fig_generalization.png")
    # loss bar: inside rows 86-430, 0.10 at the top edge, 0.00 at the bottom edge
    loss_rgb, loss_v = bar(perf, (87, 430), 1378, ((86, 0.10), (430, 0.0)))
    P, dp = read(perf, (91, 426, 588, 1331), (5, 11), loss_rgb, loss_v, "P")
    T, dt = read(perf, (572, 906, 588, 1331), (5, 11), loss_rgb, loss_v, "T")
    # OOD std bar: ticks 0.075 / 0.000 at rows 165 / 431; shift bar: ticks +0.05 / -0.05 at rows 671 / 848
    std_rgb, std_v = bar(gen, (168, 429), 1116, ((165, 0.075), (431, 0.0)))
    sh_rgb, sh_v = bar(gen, (630, 891), 1116, ((671, 0.05), (848, -0.05)))
    PG, dpg = read(gen, (139, 448, 184, 242), (5, 1), std_rgb, std_v, "PG")
    TG, dtg = read(gen, (139, 448, 364, 1049), (5, 11), std_rgb, std_v, "TG")
    SH, dsh = read(gen, (596, 903, 364, 1049), (5, 11), sh_rgb, sh_v, "shift")
    r4 = lambda a: np.round(a, 4).tolist()  # noqa: E731
    write_json(OUT, {
        "source": "Rangel DaCosta et al., Elemental Microscopy EM000010 (2025), CC-BY-4.0; figures "
                  "fig_dataset_perf.png (P, T) and fig_generalization.png (PG, TG, shift), read by "
                  "docs/scripts/digitize_study.py",
        "reduce": "mean over models (the published images)",
        "metric": "paper_loss",
        "loss_colorbar_max": 0.1,
        "max_colour_distance_rgb": round(max(dp, dt, dpg, dtg, dsh), 2),
        "pretrain_nm": PRETRAIN_NM, "eval_nm": EVAL_NM,
        "P": r4(P), "T": r4(T), "PG": r4(PG[:, 0]), "TG": r4(TG), "shift": r4(SH),
    })
    print(f"wrote {OUT}; largest colour distance {max(dp, dt, dpg, dtg, dsh):.1f} RGB units")


if __name__ == "__main__":
    main()
