"""Stage ``ingest@<dataset>``: experimental micrographs (and masks) in as a domain, in the format of the
simulated domains. Every file is read and checked before anything is written; raw files are only read."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from hrtem_ood.config.params import fail, suggest
from hrtem_ood.dataio.datasets import SPLITS, write_h5
from hrtem_ood.dataio.ingest import ingest_dataset
from hrtem_ood.dataio.io import atomic_path, stable_hash
from hrtem_ood.stages import entry

if TYPE_CHECKING:
    from hrtem_ood.config.schema import Params


def write_ingested(params: Params, dataset: str, out_dir: str | Path) -> None:
    datasets = params.ingest.datasets
    if dataset not in datasets:
        fail(params, "ingest.datasets", f"unknown dataset {dataset!r}{suggest(dataset, datasets)}")
    cfg = datasets[dataset]
    sampling = params.simulate.output_sampling_A
    result = ingest_dataset(cfg, sampling)
    with atomic_path(out_dir, is_dir=True) as tmp:
        for split in SPLITS:
            d = result[split]
            write_h5(tmp / f"{split}.h5",
                     {"images": d["images"], "masks": d["masks"], "source_index": d["source_index"],
                      "tile_y": d["tile_y"], "tile_x": d["tile_x"], "pixel_size_A_raw": d["pixel_size_A_raw"],
                      "sources": np.array(result["_sources"])},
                     {"domain": dataset, "split": split, "source": "ingested", "sampling_A": sampling,
                      "image_units": "standardized per source micrograph", "normalisation": "micrograph",
                      "has_masks": bool(result["_has_masks"]),
                      "defocus_nm": cfg.defocus_nm, "dose_e_per_A2": cfg.dose_e_per_A2,
                      "params_hash": stable_hash(cfg)})
    counts = {s: len(result[s]["images"]) for s in SPLITS}
    print(f"ingested {dataset}: {len(result['_sources'])} files -> tiles per split {counts}")


main = entry("ingest", __doc__, lambda p, a: write_ingested(p, a.dataset, a.out),
             {"--dataset": "a key of ingest.datasets", "--out": "output folder (data/domains/<dataset>)"})


if __name__ == "__main__":
    sys.exit(main())
