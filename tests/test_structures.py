"""Scenes: seeded, physical densities and separations, split bookkeeping."""

import numpy as np
from scipy.spatial import cKDTree

from hrtem_ood.structures import MATERIALS, amorphous_carbon, build_scene, nanoparticle, scene_plan


def test_scene_is_deterministic(params):
    a, pa, sa = build_scene(params["structures"], 0, "train", 1234)
    b, pb, sb = build_scene(params["structures"], 0, "train", 1234)
    c, _, _ = build_scene(params["structures"], 0, "train", 1235)
    assert np.array_equal(a.positions, b.positions) and np.array_equal(a.numbers, b.numbers)
    assert sa.to_dict() == sb.to_dict()
    assert len(a) != len(c) or not np.allclose(a.positions, c.positions)


def test_carbon_density_and_hard_core_distance():
    rng = np.random.default_rng(0)
    pos = amorphous_carbon(30.0, 20.0, 0.1103, 1.4, rng)
    assert abs(len(pos) / (30.0 * 30.0 * 20.0) - 0.1103) < 0.001
    tree = cKDTree(pos, boxsize=[30.0, 30.0, 1e6])  # periodic in x and y
    d, _ = tree.query(pos, k=2)
    assert d[:, 1].min() >= 1.4 - 1e-9


def test_particle_is_a_crystalline_sphere_of_requested_size():
    rng = np.random.default_rng(1)
    atoms, info = nanoparticle("CdSe-wurtzite", 30.0, rng, n_faults=0)
    r = np.linalg.norm(atoms.positions, axis=1)
    assert r.max() <= 15.0 + 1e-6 and r.max() > 13.0
    assert set(atoms.get_chemical_symbols()) == {"Cd", "Se"}
    # wurtzite CdSe: 4 atoms per cell of volume sqrt(3)/2 a^2 c
    m = MATERIALS["CdSe-wurtzite"]
    density = 4 / (np.sqrt(3) / 2 * m["a_A"] ** 2 * m["c_A"])
    expected = density * 4 / 3 * np.pi * 15.0**3
    assert abs(len(atoms) / expected - 1) < 0.1
    # nearest-neighbour Cd-Se bond about 2.63 A
    d, _ = cKDTree(atoms.positions).query(atoms.positions, k=2)
    assert abs(np.median(d[:, 1]) - 2.63) < 0.05


def test_stacking_fault_changes_the_crystal():
    a, _ = nanoparticle("CdSe-wurtzite", 30.0, np.random.default_rng(5), n_faults=0)
    b, info = nanoparticle("CdSe-wurtzite", 30.0, np.random.default_rng(5), n_faults=1)
    assert len(info["stacking_faults_z_A"]) == 1
    assert len(a) != len(b) or not np.allclose(a.positions, b.positions)
    # a fault never brings two atoms closer than a bond
    d, _ = cKDTree(b.positions).query(b.positions, k=2)
    assert d[:, 1].min() > 2.3


def test_scene_layout(params):
    full, part, spec = build_scene(params["structures"], 3, "val", 99)
    assert len(part) > 0 and len(full) > len(part)
    assert np.allclose(full.positions[: len(part)], part.positions)
    lo, hi = spec.carbon_z_A
    carbon = full.positions[len(part):]
    assert carbon[:, 2].min() >= lo - 1e-9 and carbon[:, 2].max() <= hi
    # side: top -> particles above (beam entrance side of) the film
    assert part.positions[:, 2].max() < lo
    d = spec.particles[0]["diameter_A"]
    assert params["structures"]["particles"]["diameter_A"][0] <= d <= params["structures"]["particles"]["diameter_A"][1]


def test_split_ids_never_cross(params):
    plan = scene_plan(params["structures"])
    ids = {s: {sid for sid, split, _ in plan if split == s} for s in ("train", "val", "test")}
    assert not (ids["train"] & ids["val"]) and not (ids["train"] & ids["test"]) and not (ids["val"] & ids["test"])
    assert len({seed for _, _, seed in plan}) == len(plan)
    more = dict(params["structures"], n_test=5)
    assert [x for x in scene_plan(more) if x[1] == "train"] == [x for x in plan if x[1] == "train"]


def test_crowded_field_places_what_fits_and_records_it_truthfully(params):
    """Five 30-40 A particles asked for in a 70 A field with a 10 A gap: some cannot be placed. Every
    particle that is placed must have the diameter recorded for it, keep the minimum gap to every other
    particle and lie wholly inside the field."""
    sp = params["structures"]
    sp["field_A"] = 70.0
    sp["particles"].update(count=[5, 5], diameter_A=[30.0, 40.0], min_gap_A=10.0)
    failures = 0
    for seed in range(6):
        _, part, spec = build_scene(sp, 0, "train", seed)
        assert sum(p["n_atoms"] for p in spec.particles) == len(part)
        failures += 5 - len(spec.particles)
        start, discs = 0, []
        for p in spec.particles:
            xyz = part.positions[start:start + p["n_atoms"]]
            start += p["n_atoms"]
            centre, r = np.array(p["centre_A"]), p["diameter_A"] / 2
            extent = np.linalg.norm(xyz - centre, axis=1).max()
            assert r - 3.0 < extent <= r + 1e-6  # the atoms fill the recorded sphere
            assert r - 1e-9 <= centre[0] <= 70.0 - r + 1e-9 and r - 1e-9 <= centre[1] <= 70.0 - r + 1e-9
            discs.append((centre[:2], r, xyz[:, :2]))
        for i in range(len(discs)):
            for j in range(i):
                (ci, ri, ai), (cj, rj, aj) = discs[i], discs[j]
                assert np.linalg.norm(ci - cj) >= ri + rj + 10.0 - 1e-9
                assert cKDTree(aj).query(ai)[0].min() >= 10.0  # atoms too: surface to surface
    assert failures > 0  # the field really was too small for the count
