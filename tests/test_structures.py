"""Scenes: seeded, physical densities and separations, split bookkeeping."""

import numpy as np
import pytest
import yaml
from scipy.spatial import cKDTree

from hrtem_ood.config.params import validate
from hrtem_ood.config.schema import Structures
from hrtem_ood.physics.structures import MATERIALS, amorphous_carbon, build_scene, nanoparticle, scene_plan


def test_scene_is_deterministic(params):
    sp = Structures.model_validate(params["structures"])
    a, pa, sa = build_scene(sp, 0, "train", 1234)
    b, pb, sb = build_scene(sp, 0, "train", 1234)
    c, _, _ = build_scene(sp, 0, "train", 1235)
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
    full, part, spec = build_scene(Structures.model_validate(params["structures"]), 3, "val", 99)
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
    plan = scene_plan(Structures.model_validate(params["structures"]))
    ids = {s: {sid for sid, split, _ in plan if split == s} for s in ("train", "val", "test")}
    assert not (ids["train"] & ids["val"]) and not (ids["train"] & ids["test"]) and not (ids["val"] & ids["test"])
    assert len({seed for _, _, seed in plan}) == len(plan)
    more = Structures.model_validate(dict(params["structures"], n_test=5))
    assert [x for x in scene_plan(more) if x[1] == "train"] == [x for x in plan if x[1] == "train"]


def test_crowded_field_places_what_fits_and_records_it_truthfully(params):
    """Five 30-40 A particles asked for in a 70 A field with a 10 A gap: some cannot be placed. Every
    particle that is placed must have the diameter recorded for it, keep the minimum gap to every other
    particle and lie wholly inside the field."""
    raw = params["structures"]
    raw["field_A"] = 70.0
    raw["particles"].update(count=[5, 5], diameter_A=[30.0, 40.0], min_gap_A=10.0)
    sp = Structures.model_validate(raw)
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


# The study's nine lattices: atoms per conventional cell, composition and nearest-neighbour distance
# (A), from the crystallography (not from the builder): fcc a/sqrt2, bcc a sqrt3/2, diamond a sqrt3/4,
# wurtzite/zincblende bond ~ a sqrt(3/8), spinel tetrahedral M-O ~ a sqrt3 (u - 1/8).
LATTICES = {
    "CdSe-wurtzite": ({"Cd": 1, "Se": 1}, 2.63), "ZnS-wurtzite": ({"Zn": 1, "S": 1}, 2.34),
    "Cu-fcc": ({"Cu": 1}, 3.6149 / np.sqrt(2)), "Ag-fcc": ({"Ag": 1}, 4.0853 / np.sqrt(2)),
    "Fe-bcc": ({"Fe": 1}, 2.8665 * np.sqrt(3) / 2), "C-diamond": ({"C": 1}, 3.5668 * np.sqrt(3) / 4),
    "Si-diamond": ({"Si": 1}, 5.4309 * np.sqrt(3) / 4),
    "Fe3O4-spinel": ({"Fe": 3, "O": 4}, 8.396 * np.sqrt(3) * (0.2549 - 0.125)),
    "Co3O4-spinel": ({"Co": 3, "O": 4}, 8.084 * np.sqrt(3) * (0.2631 - 0.125)),
}


@pytest.mark.parametrize("material", sorted(LATTICES))
def test_every_study_lattice_builds_with_its_composition_and_bond_length(material):
    ratio, bond = LATTICES[material]
    atoms, _ = nanoparticle(material, 30.0, np.random.default_rng(0))
    symbols = atoms.get_chemical_symbols()
    counts = {s: symbols.count(s) for s in ratio}
    assert set(symbols) == set(ratio)
    for s, k in ratio.items():  # composition within 15% (a sphere cuts cells unevenly)
        assert counts[s] / sum(counts.values()) == pytest.approx(k / sum(ratio.values()), rel=0.15)
    d, _ = cKDTree(atoms.positions).query(atoms.positions, k=2)
    assert np.median(d[:, 1]) == pytest.approx(bond, rel=0.03)


def test_domains_with_their_own_structures_are_simulated_once_per_group(params, tmp_path):
    """The structure series: two domains share one override (one group, simulated once), one keeps the
    defaults; each domain's images come from its own group's exit waves, and the default group's files
    are what they are without any override."""
    from hrtem_ood.config.domains import structure_group, structure_groups
    from hrtem_ood.dataio.datasets import read_h5
    from hrtem_ood.stages.image import write_domain
    from hrtem_ood.stages.simulate import write_exitwaves
    from hrtem_ood.stages.structures import write_structures

    params["structures"].update(n_train=2, n_val=1, n_test=1)
    cu = {"material": "Cu-fcc", "diameter_A": [16.0, 20.0]}
    params["domains"] = {"df0": {"defocus_nm": 0}, "cu0": {"defocus_nm": 0, "structure": cu},
                         "cu10": {"defocus_nm": 10, "structure": dict(cu)}}
    params["pretrain"]["domains"] = ["df0"]
    params["aggregate"].update(exclude_from_std=[], pairs=[["df0", "cu0"]])
    typed = validate(params)
    group = structure_group(typed, "cu0")
    assert group == "Cu-fcc_d16-20_n1-1" == structure_group(typed, "cu10") and structure_group(typed, "df0") == ""
    assert list(structure_groups(typed)) == ["", group]
    write_structures(typed, tmp_path / "s")
    write_exitwaves(typed, tmp_path / "s", tmp_path / "e")
    for d in typed.domains:
        write_domain(typed, d, tmp_path / "e", tmp_path / "d" / d)
    ew = {g: read_h5(tmp_path / "e" / g / "exitwaves.h5")[0] for g in ("", group)}
    assert not np.array_equal(ew[""]["masks"], ew[group]["masks"])
    for d, g in (("df0", ""), ("cu0", group), ("cu10", group)):
        test_masks = ew[g]["masks"][ew[g]["split"] == "test"]
        assert np.array_equal(read_h5(tmp_path / "d" / d / "test.h5")[0]["masks"], test_masks)
    alone = yaml.safe_load(yaml.safe_dump(params))
    alone["domains"] = {"df0": {"defocus_nm": 0}}
    alone["aggregate"]["pairs"] = []
    write_structures(validate(alone), tmp_path / "s_alone")
    for f in ("atoms.h5", "scenes.json"):  # the default group does not depend on the others
        assert (tmp_path / "s_alone" / f).read_bytes() == (tmp_path / "s" / f).read_bytes()
    bad = yaml.safe_load(yaml.safe_dump(params))
    bad["domains"]["cu0"]["structure"]["material"] = "Cu"
    from hrtem_ood.physics.structures import check_material

    with pytest.raises(Exception, match=r"domains\.cu0\.structure\.material: unknown material 'Cu'"):
        check_material(validate(bad))
