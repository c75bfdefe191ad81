"""How visible are the particles at each defocus, without a network? (docs/fidelity.md)

For each (Cs, defocus) the simulated exit waves of a run are imaged as the pipeline's image stage
does (same seeds, jitter, focal spread and dose), standardized per image, lightly low-passed
(Gaussian sigma 0.6 A) and reduced to the local standard deviation in 3 A windows. The particles'
visibility is the separation d' of that local contrast inside the masks (eroded by 1 A) from
outside them (dilated by 2 A): (mean_in - mean_out) / sqrt((var_in + var_out) / 2). Defocus is
relative to each scene's calibrated zero (abTEM's sign, positive = underfocus). Imaging parameters
come from params.yaml (`imaging`, then the domain's own keys, as in the image stage) with Cs
replaced, so at a declared domain's defocus the jitter and noise are that domain's.

    python docs/scripts/visibility.py data/exitwaves/exitwaves.h5 --cs 0,0.5 --defocus-nm -25,-10,0,10,25
"""
import argparse

import numpy as np
from scipy.ndimage import binary_dilation, binary_erosion, gaussian_filter, uniform_filter

from hrtem_ood.config.domains import domain_imaging
from hrtem_ood.config.params import load_params, validate
from hrtem_ood.config.schema import DomainImaging
from hrtem_ood.dataio.datasets import read_h5
from hrtem_ood.physics.imaging import domain_images


def visibility(images: np.ndarray, masks: np.ndarray, sampling_A: float = 0.2) -> float:
    sigma, w = 0.6 / sampling_A, int(round(3.0 / sampling_A))
    erode, dilate = int(round(1.0 / sampling_A)), int(round(2.0 / sampling_A))
    inside, outside = [], []
    for im, m in zip(images, masks.astype(bool), strict=True):
        # the fields are periodic (so is the multislice); filters that reflect at the edges would
        # inflate the local contrast there
        g = gaussian_filter((im - im.mean()) / im.std(), sigma, mode="wrap")
        local = np.sqrt(np.maximum(uniform_filter(g**2, w, mode="wrap") - uniform_filter(g, w, mode="wrap") ** 2, 0))
        inside.append(local[binary_erosion(m, iterations=erode)])
        outside.append(local[~binary_dilation(m, iterations=dilate)])
    a, b = np.concatenate(inside), np.concatenate(outside)
    return float((a.mean() - b.mean()) / np.sqrt(0.5 * (a.var() + b.var())))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("exitwaves")
    ap.add_argument("--cs", default="0,0.5", help="Cs values in mm, comma-separated")
    ap.add_argument("--defocus-nm", default="-25,-15,-10,-5,0,5,10,15,25")
    ap.add_argument("--params", default="params.yaml")
    args = ap.parse_args()
    params = validate(load_params(args.params))
    by_defocus = {v.defocus_nm: k for k, v in params.domains.items()}
    ew, attrs = read_h5(args.exitwaves)
    s, e = float(attrs["sampling_A"]), float(attrs["energy_eV"])
    for cs in (float(c) for c in args.cs.split(",")):
        row = []
        for df in (float(d) for d in args.defocus_nm.split(",")):
            if df in by_defocus:
                dom = domain_imaging(params, by_defocus[df])
            else:
                dom = DomainImaging.model_validate({**params.imaging.model_dump(), "defocus_nm": df,
                                                    "name": f"df{'m' if df < 0 else 'p'}{abs(df):g}"})
            dom = dom.model_copy(update={"Cs_mm": cs})
            ims = domain_images(ew["waves"], ew["zero_defocus_A"], ew["scene_id"], dom, s, e)["images"]
            row.append(f"{df:+g}: {visibility(ims, ew['masks'], s):.2f}")
        print(f"Cs {cs:g} mm  " + "  ".join(row), flush=True)


if __name__ == "__main__":
    main()
