"""Stage ``examples``: a montage of one test scene in every simulated domain (titled in words: ``dfm25: over 25
nm``), and its label."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from hrtem_ood.dataio.datasets import domain_file, read_h5
from hrtem_ood.results.images import montage_png
from hrtem_ood.stages import entry
from hrtem_ood.units import focus_label

if TYPE_CHECKING:
    from hrtem_ood.config.schema import Params


def write_examples(params: Params, domains_dir: str | Path, out_png: str | Path, split: str = "test",
                   index: int = 0) -> None:
    panels, titles = [], []
    mask = None
    for name in params.domains:
        arrays, attrs = read_h5(domain_file(domains_dir, name, split), ("images", "masks"))
        panels.append(arrays["images"][index])
        dnm = attrs.get("defocus_nm")
        titles.append(f"{name}: {focus_label(float(dnm))}" if isinstance(dnm, float) else name)
        mask = arrays["masks"][index]
    panels.append(mask.astype(np.float32))
    titles.append("mask")
    montage_png(panels, titles, out_png)


main = entry("examples", __doc__, lambda p, a: write_examples(p, a.domains_dir, a.out),
             {"--domains-dir": "folder of the domain datasets", "--out": "output PNG (plots/examples.png)"})


if __name__ == "__main__":
    sys.exit(main())
