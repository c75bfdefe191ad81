"""Random scenes: crystalline nanoparticles resting on an amorphous carbon film.

Built with ase + numpy/scipy only (seedable, ~0.1 s per scene). Coordinates in Angstrom; the
beam travels along +z, entering at z = 0 (abTEM's convention), so ``side: top`` puts the particles
on the entrance surface of the film.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from hrtem_ood.config.params import fail, suggest

if TYPE_CHECKING:
    from hrtem_ood.config.schema import Params, Structures

#: Crystal lattices (lattice constants in A). Wurtzite CdSe as in the study.
MATERIALS: dict[str, dict] = {
    "CdSe-wurtzite": {"symbols": "CdSe", "crystal": "wurtzite", "a_A": 4.2985, "c_A": 7.0152},
    "ZnS-wurtzite": {"symbols": "ZnS", "crystal": "wurtzite", "a_A": 3.8227, "c_A": 6.2607},
    "Au-fcc": {"symbols": "Au", "crystal": "fcc", "a_A": 4.0782},
    "Cu-fcc": {"symbols": "Cu", "crystal": "fcc", "a_A": 3.6149},
    "Fe-bcc": {"symbols": "Fe", "crystal": "bcc", "a_A": 2.8665},
    "Ag-fcc": {"symbols": "Ag", "crystal": "fcc", "a_A": 4.0853},
    "C-diamond": {"symbols": "C", "crystal": "diamond", "a_A": 3.5668},
    "Si-diamond": {"symbols": "Si", "crystal": "diamond", "a_A": 5.4309},
    # spinels (Fd-3m, origin choice 2): metal on 8a and 16d, O on 32e at (u, u, u)
    "Fe3O4-spinel": {"symbols": "Fe", "crystal": "spinel", "a_A": 8.396, "u_O": 0.2549},
    "Co3O4-spinel": {"symbols": "Co", "crystal": "spinel", "a_A": 8.084, "u_O": 0.2631},
}


def check_material(params: Params) -> None:
    """``structures.material`` and every domain's ``structure.material`` name a lattice of :data:`MATERIALS`."""
    names = {"structures.material": params.structures.material}
    names.update({f"domains.{d}.structure.material": v.structure.material
                  for d, v in params.domains.items() if v.structure is not None and v.structure.material})
    for key, name in names.items():
        if name not in MATERIALS:
            fail(params, key, f"unknown material {name!r}{suggest(name, MATERIALS)}")


@dataclass
class SceneSpec:
    """Everything needed to rebuild one scene, recorded next to the data."""

    scene_id: int
    split: str
    seed: int
    field_A: float
    material: str
    carbon_thickness_A: float
    carbon_z_A: tuple[float, float]
    cell_z_A: float
    particles: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def _bulk(material: str):
    from ase.build import bulk

    m = MATERIALS[material]
    if m["crystal"] == "wurtzite":
        return bulk(m["symbols"], "wurtzite", a=m["a_A"], c=m["c_A"])
    if m["crystal"] == "spinel":
        from ase.spacegroup import crystal

        a, u, metal = m["a_A"], m["u_O"], m["symbols"]
        return crystal([metal, metal, "O"], basis=[(0.125, 0.125, 0.125), (0.5, 0.5, 0.5), (u, u, u)],
                       spacegroup=227, setting=2, cellpar=[a, a, a, 90, 90, 90])
    return bulk(m["symbols"], m["crystal"], a=m["a_A"], cubic=True)


def _stacking_fault_shift(material: str) -> np.ndarray | None:
    """In-plane shift that turns wurtzite ...ABAB... into ...AB|CACA... (a stacking fault)."""
    m = MATERIALS[material]
    if m["crystal"] != "wurtzite":
        return None
    a = m["a_A"]
    a1 = np.array([a, 0.0])
    a2 = np.array([-a / 2, a * np.sqrt(3) / 2])
    return (a1 + 2 * a2) / 3


def nanoparticle(material: str, diameter_A: float, rng: np.random.Generator, n_faults: int = 0):
    """A sphere of diameter ``diameter_A`` cut from the crystal after ``n_faults`` stacking faults
    and a uniformly random rotation. Returns ase.Atoms centred on the origin (no cell)."""
    from ase import Atoms
    from scipy.spatial.transform import Rotation

    unit = _bulk(material)
    cellpar = np.linalg.norm(unit.cell, axis=1)
    reps = [int(np.ceil((diameter_A + 6.0) / max(cp, 1e-6))) + 1 for cp in cellpar]
    crystal = unit.repeat(reps)
    pos = crystal.get_positions()
    pos -= pos.mean(axis=0)
    shift = _stacking_fault_shift(material)
    faults = []
    if shift is not None and n_faults > 0:
        c = MATERIALS[material]["c_A"]
        for _ in range(n_faults):
            # cut between two close-packed bilayers, inside the particle
            z0 = (np.floor(rng.uniform(-diameter_A / 3, diameter_A / 3) / (c / 2)) + 0.25) * (c / 2)
            above = pos[:, 2] > z0
            pos[above, :2] += shift
            faults.append(float(z0))
    keep = np.linalg.norm(pos, axis=1) <= diameter_A / 2
    rot = Rotation.random(random_state=np.random.default_rng(rng.integers(2**32)))
    pos = rot.apply(pos[keep])
    atoms = Atoms(numbers=crystal.numbers[keep], positions=pos)  # centred on the cut sphere
    info = {"diameter_A": float(diameter_A), "stacking_faults_z_A": faults,
            "rotation_quat": [float(x) for x in rot.as_quat()], "n_atoms": int(keep.sum())}
    return atoms, info


def amorphous_carbon(extent_xy_A: float, thickness_A: float, density_per_A3: float,
                     min_separation_A: float, rng: np.random.Generator) -> np.ndarray:
    """Random sequential addition of carbon atoms at ``density_per_A3`` with a hard-core distance,
    periodic in x and y. Returns positions (N, 3) with z in [0, thickness_A)."""
    from scipy.spatial import cKDTree

    target = int(round(density_per_A3 * extent_xy_A**2 * thickness_A))
    if target == 0:
        return np.zeros((0, 3))
    box = np.array([extent_xy_A, extent_xy_A, thickness_A + 4 * min_separation_A + 1.0])
    accepted = np.zeros((0, 3))
    for _ in range(200):
        need = target - len(accepted)
        if need <= 0:
            break
        cand = rng.uniform(0, 1, size=(max(2 * need, 64), 3)) * [extent_xy_A, extent_xy_A, thickness_A]
        if len(accepted):
            tree = cKDTree(accepted, boxsize=box)
            d, _ = tree.query(cand, k=1, distance_upper_bound=min_separation_A)
            cand = cand[~np.isfinite(d) | (d >= min_separation_A)]
        # resolve conflicts inside the batch greedily (keep the earlier candidate)
        ctree = cKDTree(cand, boxsize=box)
        drop = np.zeros(len(cand), bool)
        for i, j in sorted(ctree.query_pairs(min_separation_A)):
            if not drop[i]:
                drop[j] = True
        cand = cand[~drop][:need]
        accepted = np.concatenate([accepted, cand])
    if len(accepted) < target:
        raise RuntimeError(f"could not place {target} carbon atoms at {min_separation_A} A separation")
    return accepted


def _place_centres(radii: np.ndarray, extent: float, gap: float, rng) -> list[tuple[np.ndarray, int]]:
    """Place particle centres fully inside the field, at least ``gap`` apart surface to surface, in the
    order of ``radii``. Returns ``(centre, index into radii)`` for those that fit within a bounded number
    of tries; a particle that does not fit is left out (deterministic for a given rng)."""
    placed: list[tuple[np.ndarray, int]] = []
    for k, r in enumerate(radii):
        for _ in range(200):
            c = rng.uniform(r, extent - r, size=2)
            if all(np.linalg.norm(c - c2) >= r + radii[k2] + gap for c2, k2 in placed):
                placed.append((c, k))
                break
    return placed


def build_scene(sp: Structures, scene_id: int, split: str, seed: int):
    """Build one scene from the ``structures`` params section.

    Returns ``(atoms, particles_only, spec)``: the full scene (particles + carbon, periodic cell),
    the same cell with the particles alone, and a :class:`SceneSpec` recording every draw.
    """
    from ase import Atoms

    rng = np.random.default_rng(seed)
    extent = sp.field_A
    pp, cp = sp.particles, sp.carbon
    n = int(rng.integers(pp.count[0], pp.count[1] + 1))
    diameters = np.sort(rng.uniform(*pp.diameter_A, size=n))[::-1]
    thickness = float(rng.uniform(*cp.thickness_A))
    placed = _place_centres(diameters / 2, extent, pp.min_gap_A, rng)
    margin = 2.0
    dmax = max((float(diameters[k]) for _, k in placed), default=0.0)
    cell_z = margin + dmax + 1.0 + thickness + margin
    if pp.side == "top":
        carbon_z = (margin + dmax + 1.0, margin + dmax + 1.0 + thickness)
        surface, direction = carbon_z[0], -1.0
    else:
        carbon_z = (margin, margin + thickness)
        surface, direction = carbon_z[1], 1.0
        cell_z = carbon_z[1] + 1.0 + dmax + margin

    particle_atoms = Atoms(cell=[extent, extent, cell_z], pbc=True)
    particles = []
    for c, k in placed:
        d = diameters[k]
        n_faults = int(rng.integers(0, pp.max_stacking_faults + 1))
        atoms_p, info = nanoparticle(sp.material, float(d), rng, n_faults)
        z_centre = surface + direction * (d / 2 + 1.0)
        atoms_p.positions += [c[0], c[1], z_centre]
        particle_atoms += atoms_p
        info["centre_A"] = [float(c[0]), float(c[1]), float(z_centre)]
        particles.append(info)

    carbon = amorphous_carbon(extent, thickness, cp.density_per_A3, cp.min_separation_A, rng)
    carbon[:, 2] += carbon_z[0]
    full = particle_atoms.copy()
    full += Atoms("C" * len(carbon), positions=carbon)
    full.wrap()
    particle_atoms.wrap()
    spec = SceneSpec(scene_id=scene_id, split=split, seed=int(seed), field_A=extent,
                     material=sp.material, carbon_thickness_A=thickness,
                     carbon_z_A=(float(carbon_z[0]), float(carbon_z[1])), cell_z_A=float(cell_z),
                     particles=particles)
    return full, particle_atoms, spec


def scene_plan(sp: Structures) -> list[tuple[int, str, int]]:
    """(scene_id, split, seed) for every scene. Ids are contiguous and never cross splits; each seed
    is spawned from ``structures.seed`` and the scene id, so adding test scenes never changes the
    training scenes."""
    out = []
    sid = 0
    for split in ("train", "val", "test"):
        for _ in range(getattr(sp, f"n_{split}")):
            seed = int(np.random.SeedSequence(sp.seed, spawn_key=(sid,)).generate_state(1)[0])
            out.append((sid, split, seed))
            sid += 1
    return out
