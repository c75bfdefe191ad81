"""Stage ``overlays``: what segmentation looks like on every domain. Each evaluated domain's first test image,
with its label outlined, segmented by one row of the transfer grid: the model pretrained on the first pretraining
domain (zero-shot on the others) and its transfer to that domain (the first condition of the grid, the first seed),
each with its Dice on that image (``plots/overlays.png``, shown in the report)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

from hrtem_ood.config.domains import domain_defocus_nm, domain_names
from hrtem_ood.dataio.datasets import load_split
from hrtem_ood.execution.grid import condition_tag, conditions
from hrtem_ood.results.images import overlay_grid_png, overlay_rgb
from hrtem_ood.stages import entry
from hrtem_ood.units import focus_label

if TYPE_CHECKING:
    from hrtem_ood.config.schema import Params


def write_overlays(params: Params, domains_dir: str | Path, models_dir: str | Path, out: str | Path,
                   index: int = 0) -> None:
    from hrtem_ood.learning.evaluation import mask_dice, model_input, predicted_masks
    from hrtem_ood.learning.predict import find_model, load_model
    from hrtem_ood.learning.training import select_device, set_threads

    set_threads(params.train.threads)
    device = select_device()
    row, seed = params.pretrain.domains[0], params.train.seeds[0]
    tags = {stage: condition_tag(conditions(params, stage)[0]) for stage in ("pretrain", "transfer")}

    def model(target: str | None):  # the row's pretrained model (target None), or its transfer to target
        path = find_model(models_dir, row, target, tags["pretrain" if target is None else "transfer"], seed)
        return load_model(path, params.simulate.output_sampling_A).net.to(device)

    pretrained = model(None)
    defocus, rows = domain_defocus_nm(params), []
    for d in domain_names(params):
        split = load_split(domains_dir, d, "test")
        x, label, image = model_input(split)[index:index + 1], split["masks"][index], split["images"][index]
        zero_shot = predicted_masks(pretrained, x, device)[0]
        panels = [("label", overlay_rgb(image, label, None)),
                  (f"{'in domain' if d == row else 'zero-shot'}: Dice {mask_dice(zero_shot, label):.2f}",
                   overlay_rgb(image, label, zero_shot))]
        if d != row:
            after = predicted_masks(model(d), x, device)[0]
            panels.append((f"transferred: Dice {mask_dice(after, label):.2f}", overlay_rgb(image, label, after)))
        rows.append((f"{focus_label(defocus.get(d), d)} ({d})", panels))
    overlay_grid_png(rows, out)
    print(f"overlays: {len(rows)} domains, the row of {row} -> {out}")


main = entry("overlays", __doc__, lambda p, a: write_overlays(p, a.domains_dir, a.models, a.out),
             {"--domains-dir": "folder of the domain datasets", "--models": "folder of the models (models/)",
              "--out": "output PNG (plots/overlays.png)"})


if __name__ == "__main__":
    sys.exit(main())
