"""Lattice fringes found in the power spectrum: closed-form fringe images of known period and direction, noise
without fringes, and the `hrtem-ood pixel-size` command on files."""

import numpy as np
import pytest
from PIL import Image

from hrtem_ood.cli import main
from hrtem_ood.physics.fringes import fringe_period, lattice_spots, pixel_size_A


def fringe_image(period_px: float, angle_deg: float, n: int = 512, seed: int = 0, contrast: float = 1.0):
    """Noise with one 'particle': a disc of radius 40 px carrying cos fringes of the given period and direction."""
    rng = np.random.default_rng(seed)
    y, x = np.indices((n, n))
    a = np.radians(angle_deg)
    disc = (x - 0.4 * n) ** 2 + (y - 0.6 * n) ** 2 < 40**2
    return rng.normal(0, 1, (n, n)) + contrast * disc * np.cos(2 * np.pi / period_px * (x * np.cos(a) + y * np.sin(a)))


@pytest.mark.parametrize("period, angle", [(4.3, 33.0), (3.1, 100.0), (6.0, 160.0), (4.02, 126.0), (2.8, 5.0)])
def test_recovers_period_and_direction(period, angle):
    """One 80 px particle's fringes: the period within 2.5% (24 random cases: mean error 1.0%, largest 2.1%)."""
    spots = lattice_spots(fringe_image(period, angle))
    assert spots, "no spot found"
    assert spots[0].period_px == pytest.approx(period, rel=0.025)
    assert spots[0].angle_deg == pytest.approx(angle, abs=1.5)


def test_noise_has_no_lattice_spots():
    for seed in range(3):
        assert lattice_spots(np.random.default_rng(seed).normal(0, 1, (512, 512))) == []


def test_median_over_images_ignores_those_without_fringes():
    noise = np.random.default_rng(9).normal(0, 1, (512, 512))
    images = [fringe_image(4.0, 20.0 * k, seed=k) for k in range(5)] + [noise]
    found = fringe_period(images)
    assert (found["n_images"], found["n_with_fringes"]) == (6, 5)
    assert found["period_px"] == pytest.approx(4.0, rel=0.015)
    assert {s["index"] for s in found["per_image"]} == set(range(5))


def test_pixel_size_is_spacing_over_period():
    assert pixel_size_A(4.0, 2.3) == pytest.approx(0.575)


def _png(path, image):
    lo, hi = image.min(), image.max()
    grey = ((image - lo) / (hi - lo) * 255).round().astype(np.uint8)
    Image.fromarray(np.stack([grey, grey, grey, np.full_like(grey, 255)], -1)).save(path)  # grey saved as RGBA


def test_pixel_size_command(tmp_path, capsys):
    for k in range(3):
        _png(tmp_path / f"m{k}.png", fringe_image(4.6, 40.0 + 50 * k, seed=k, contrast=2.0))
    assert main(["pixel-size", str(tmp_path), "--d-spacing-A", "2.3"]) == 0
    out = capsys.readouterr().out
    assert "3 of 3 micrographs" in out
    value = float(out.split("pixel size ")[1].split(" A")[0])
    assert value == pytest.approx(2.3 / 4.6, rel=0.02)


def test_pixel_size_command_without_fringes_is_one_line(tmp_path, capsys):
    _png(tmp_path / "noise.png", np.random.default_rng(1).normal(0, 1, (256, 256)))
    assert main(["pixel-size", str(tmp_path / "noise.png")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no lattice fringes found" in err
