"""`hrtem-ood predict`'s masks against the hand-labelled masks of the real test micrographs, at their own 512 px,
for a range of assumed pixel sizes (how much an error in the pixel size costs).

    python docs/scripts/real_predict.py [MODEL] [PIXEL_SIZES...]   # default: models/ready/real_segtrack.pt2,
                                                                  # 0.50 0.57 0.65 A; prints a Markdown table

The test micrographs are those ingest put in the test split of real_segtrack (its seeded split by file); none
of them trained or chose any model. Dice and IoU are pooled over all test pixels, as the pipeline pools them.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from hrtem_ood.config.params import load_params, validate
from hrtem_ood.dataio.datasets import read_h5
from hrtem_ood.dataio.ingest import read_image
from hrtem_ood.learning.predict import load_model, segment

ROOT = Path(__file__).resolve().parents[2]


def main(model_path: str = "models/ready/real_segtrack.pt2", *pixel_sizes: str) -> None:
    params = validate(load_params(ROOT / "params.yaml"))
    root = ROOT / params.ingest.datasets["real_segtrack"].root
    arrays, _ = read_h5(ROOT / "data/domains/real_segtrack/test.h5", ("sources", "source_index"))
    names = [str(arrays["sources"][i]) for i in sorted(set(arrays["source_index"].tolist()))]
    model = load_model(ROOT / model_path, params.simulate.output_sampling_A)
    print(f"{model_path} on the {len(names)} test micrographs ({', '.join(names)}):\n")
    print("| assumed pixel size (A) | Dice | IoU |\n|---|---|---|")
    for px in [float(p) for p in pixel_sizes] or [0.50, 0.57, 0.65]:
        tp = fp = fn = 0
        for name in names:
            image, _ = read_image(root / "images" / f"{name}.png")
            truth = read_image(root / "masks" / f"{name}.png")[0] > 0
            _, mask = segment(model, image, px, 256, 64, min_diameter_nm=0.5)  # as predict does by default
            mask = mask.astype(bool)
            tp, fp, fn = tp + np.sum(mask & truth), fp + np.sum(mask & ~truth), fn + np.sum(~mask & truth)
        print(f"| {px:.2f} | {2 * tp / (2 * tp + fp + fn):.3f} | {tp / (tp + fp + fn):.3f} |")


if __name__ == "__main__":
    main(*sys.argv[1:])
