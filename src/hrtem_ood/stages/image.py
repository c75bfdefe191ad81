"""Stage ``image@<domain>``: the images of one imaging domain from the exit waves of its structure group
(calibrated zero + domain defocus + jitter, CTF with Cs and focal spread, Poisson dose), one HDF5 file per
split."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from hrtem_ood.config.domains import domain_imaging, structure_group
from hrtem_ood.config.params import fail, suggest
from hrtem_ood.dataio.datasets import SPLITS, read_h5, write_h5
from hrtem_ood.dataio.io import atomic_path, stable_hash
from hrtem_ood.physics.ctf import configure_abtem
from hrtem_ood.physics.imaging import domain_images
from hrtem_ood.stages import entry

if TYPE_CHECKING:
    from hrtem_ood.config.schema import Params


def write_domain(params: Params, domain: str, exitwaves_dir: str | Path, out_dir: str | Path) -> None:
    from tqdm import tqdm

    if domain not in params.domains:
        fail(params, "domains", f"unknown domain {domain!r}{suggest(domain, params.domains)}")
    dom = domain_imaging(params, domain)
    configure_abtem("numpy")
    ew, attrs = read_h5(Path(exitwaves_dir) / structure_group(params, domain) / "exitwaves.h5")
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
                      "image_units": "electron counts", "defocus_nm": dom.defocus_nm,
                      "defocus_sigma_nm": dom.defocus_sigma_nm, "dose_e_per_A2": dom.dose_e_per_A2,
                      "focal_spread_A": dom.focal_spread_A, "Cs_mm": dom.Cs_mm, "energy_eV": energy,
                      "aperture_mrad": dom.aperture_mrad or 0.0,
                      "defocus_convention": "abTEM: defocus = -C10, positive = underfocus",
                      "params_hash": stable_hash({"imaging": dom, "exitwaves": attrs["params_hash"]})})


main = entry("image", __doc__, lambda p, a: write_domain(p, a.domain, a.exitwaves, a.out),
             {"--domain": "a key of domains", "--exitwaves": "the simulate stage's folder",
              "--out": "output folder (data/domains/<domain>)"})


if __name__ == "__main__":
    sys.exit(main())
