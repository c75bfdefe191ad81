"""The network-free visibility probe of docs/fidelity.md (docs/scripts/visibility.py)."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from hrtem_ood.config.domains import domain_imaging
from hrtem_ood.config.params import load_params, validate
from hrtem_ood.physics.ctf import configure_abtem
from hrtem_ood.physics.imaging import domain_images

REPO = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("visibility", REPO / "docs" / "scripts" / "visibility.py")
visibility_script = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(visibility_script)
visibility = visibility_script.visibility

N, PX = 16, 256


def _disk_masks() -> np.ndarray:
    yy, xx = np.mgrid[:PX, :PX]
    return np.stack([(yy - PX // 2 + 3 * k) ** 2 + (xx - PX // 2) ** 2 < 50**2 for k in range(N)])


def test_same_statistics_inside_and_outside_give_zero():
    """Small fields, so that much of the outside region lies near the image edges: filters that
    reflect there raise the local contrast near them, which biased d' by about -0.13 for white
    noise before the filters wrapped round the periodic field."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:128, :128]
    masks = np.broadcast_to((yy - 64) ** 2 + (xx - 64) ** 2 < 30**2, (48, 128, 128))
    values = [visibility(rng.normal(size=masks.shape), masks) for _ in range(3)]
    assert max(abs(v) for v in values) < 0.1
    assert abs(np.mean(values)) < 0.06


def test_more_local_contrast_inside_is_positive_and_less_is_negative():
    rng = np.random.default_rng(1)
    masks = _disk_masks()
    noise = rng.normal(size=(N, PX, PX))
    assert visibility(noise * np.where(masks, 2.0, 1.0), masks) > 2.0
    assert visibility(noise * np.where(masks, 0.5, 1.0), masks) < -2.0


def test_weak_phase_particles_vanish_at_gaussian_focus_with_cs0_and_show_when_defocused():
    """Pure phase object, Cs = 0: the image at Gaussian focus is flat apart from shot noise, so the
    probe must find nothing; 20 nm away the particles' stronger phase texture becomes contrast."""
    configure_abtem("numpy")
    rng = np.random.default_rng(2)
    masks = _disk_masks()
    texture = gaussian_filter(rng.normal(size=(N, PX, PX)), (0, 2, 2))
    phase = texture / texture.std() * np.where(masks, 0.3, 0.05)
    waves = np.exp(1j * phase).astype(np.complex64)
    dom = domain_imaging(validate(load_params(REPO / "params.yaml")), "df0")
    dom = dom.model_copy(update={"Cs_mm": 0.0, "defocus_sigma_nm": 0.0, "dose_e_per_A2": 1e4})

    def d_prime(defocus_nm: float, Cs_mm: float = 0.0) -> float:
        imaging = dom.model_copy(update={"defocus_nm": defocus_nm, "Cs_mm": Cs_mm})
        ims = domain_images(waves, np.zeros(N), np.arange(N), imaging, 0.2, 300e3)
        return visibility(ims["images"], masks, 0.2)

    assert abs(d_prime(0.0)) < 0.2
    underfocus = d_prime(20.0)
    assert underfocus == pytest.approx(d_prime(-20.0), abs=0.2)  # Cs = 0: the contrast only flips sign
    assert underfocus > 1.0
    assert d_prime(0.0, Cs_mm=0.5) > 0.5  # Cs fills the minimum: fine detail shows at Gaussian focus
