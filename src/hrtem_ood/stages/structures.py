"""Stage ``structures``: random nanoparticle-on-carbon scenes (``atoms.h5``, ``scenes.json``), once per
structure group of the domains: the defaults in the output folder itself, each domain's own structures
(``domains.<name>.structure``) in a subfolder named by :func:`hrtem_ood.config.domains.structure_group`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from hrtem_ood.config.domains import structure_groups
from hrtem_ood.dataio.datasets import write_h5
from hrtem_ood.dataio.io import atomic_path, stable_hash, write_json
from hrtem_ood.physics.structures import build_scene, check_material, scene_plan
from hrtem_ood.stages import entry

if TYPE_CHECKING:
    from hrtem_ood.config.schema import Params, Structures


def write_structures(params: Params, out_dir: str | Path) -> None:
    check_material(params)
    with atomic_path(out_dir, is_dir=True) as tmp:
        for group, sp in structure_groups(params).items():
            _write_group(sp, tmp / group, group or "structures")


def _write_group(sp: Structures, out: Path, desc: str) -> None:
    from tqdm import tqdm

    arrays: dict[str, list] = {"numbers": [], "positions": [], "is_particle": []}
    offsets, cells, specs = [0], [], []
    for sid, split, seed in tqdm(scene_plan(sp), desc=desc, unit="scene", mininterval=1.0):
        full, part, spec = build_scene(sp, sid, split, seed)
        arrays["numbers"].append(full.numbers)
        arrays["positions"].append(full.positions)
        is_particle = np.zeros(len(full), bool)
        is_particle[:len(part)] = True
        arrays["is_particle"].append(is_particle)
        offsets.append(offsets[-1] + len(full))
        cells.append(np.diag(full.cell.array))
        specs.append(spec.to_dict())
    out.mkdir(parents=True, exist_ok=True)
    write_h5(out / "atoms.h5",
             {"numbers": np.concatenate(arrays["numbers"]).astype(np.int16),
              "positions_A": np.concatenate(arrays["positions"]).astype(np.float64),
              "is_particle": np.concatenate(arrays["is_particle"]),
              "offsets": np.asarray(offsets, np.int64), "cell_A": np.asarray(cells)},
             {"params_hash": stable_hash(sp), "units": "Angstrom"})
    write_json(out / "scenes.json", specs)


main = entry("structures", __doc__, lambda p, a: write_structures(p, a.out),
             {"--out": "output folder (data/structures)"})


if __name__ == "__main__":
    sys.exit(main())
