"""teamtomo's torch-ctf-estimation (a cryo-EM CTF fitter, not a project dependency) on the simulated test images:
its 1-D defocus fit, the support-to-particle offset chosen on these images themselves (generous to it), and the
median error of the nearer candidate per domain, as docs/matching.md quotes it.

    pip install torch-ctf-estimation==0.6.0 && python docs/scripts/ctf_library_check.py
"""

from __future__ import annotations

import h5py
import numpy as np
import torch
import torch_ctf_estimation as tce

from hrtem_ood.config.params import load_params, validate
from hrtem_ood.physics import thon


def support_defocus_nm(image: np.ndarray, pixel_A: float) -> float:
    im = torch.tensor((image - image.mean()) / image.std(), dtype=torch.float32)
    window = torch.hann_window(im.shape[0])[:, None] * torch.hann_window(im.shape[1])[None]
    ps = torch.fft.fftshift(torch.fft.rfft2(im * window).abs() ** 2, dim=0)
    fit = tce.estimate_ctf_1d(ps, im.shape[0], (15.0, 2.5 * pixel_A), 300.0, 0.0, 0.07, pixel_A,
                              defocus_range_microns=(0.0, 0.1))
    return float(fit.ctf_model.defocus_um) * 1e3


def main() -> None:
    support, particle, names = [], [], list(validate(load_params("params.yaml")).domains)
    for d in names:
        with h5py.File(f"data/domains/{d}/test.h5") as f:
            support.append(np.array([support_defocus_nm(im, float(f.attrs["sampling_A"])) for im in f["images"]]))
            particle.append((f["defocus_A"][()] - f["zero_defocus_A"][()]) / 10.0)
    offset = thon.calibrate_offset_nm(np.abs(np.concatenate(support)), np.concatenate(particle), False)
    print(f"offset chosen on the test images: {offset:.2f} nm")
    for d, s, p in zip(names, support, particle, strict=True):
        print(f"{d}: median error {np.median(thon.candidate_error_nm(np.abs(s), p, False, offset)):.1f} nm")


if __name__ == "__main__":
    main()
