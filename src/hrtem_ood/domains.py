"""The domains a params file declares, derived from its plain dict: every evaluated domain's name, its
defocus, imaging and structure parameters, and the (pretrain, target) transfer pairs derived from them. Standard library
only."""

from __future__ import annotations

import copy


def domain_names(params: dict) -> list[str]:
    """Every domain models are evaluated on: the simulated ``domains``, then the ingested datasets
    that have masks (``ingest.datasets``)."""
    ingested = ((params.get("ingest") or {}).get("datasets") or {})
    return list(params["domains"]) + [k for k, v in ingested.items() if v.get("masks")]


def ingested_names(params: dict) -> list[str]:
    """The evaluated domains that are ingested micrographs (``ingest.datasets`` with masks), in params order."""
    return [d for d in domain_names(params) if d not in params["domains"]]


def domain_defocus_nm(params: dict) -> dict[str, float | None]:
    """Defocus (nm) of every domain where known (ingested data may not say)."""
    ingested = ((params.get("ingest") or {}).get("datasets") or {})
    out = {k: v.get("defocus_nm") for k, v in ingested.items()}
    out.update({k: v.get("defocus_nm") for k, v in params["domains"].items()})
    return {k: (float(v) if v is not None else None) for k, v in out.items()}


def domain_imaging(params: dict, name: str) -> dict:
    """The imaging parameters of one domain: ``imaging`` defaults overridden by the domain's keys."""
    out = {k: v for k, v in params["imaging"].items()}
    out.update(params["domains"][name])
    out["name"] = name
    out.pop("structure", None)
    return out


def domain_structures(params: dict, name: str) -> dict:
    """The ``structures`` section a simulated domain's scenes are built from: the defaults with the domain's
    ``structure`` overrides (``material``, ``diameter_A``, ``count``) applied."""
    sp = copy.deepcopy(params["structures"])
    over = {k: v for k, v in (params["domains"][name].get("structure") or {}).items() if v is not None}
    if "material" in over:
        sp["material"] = over["material"]
    for key in ("diameter_A", "count"):
        if key in over:
            sp["particles"][key] = list(over[key])
    return sp


def structure_group(params: dict, name: str) -> str:
    """The folder (under data/structures and data/exitwaves) of a domain's structures: "" for the defaults,
    else ``<material>_d<min>-<max>_n<min>-<max>``, shared by every domain with the same structures."""
    sp = domain_structures(params, name)
    if sp == params["structures"]:
        return ""
    (d0, d1), (n0, n1) = sp["particles"]["diameter_A"], sp["particles"]["count"]
    return f"{sp['material']}_d{d0:g}-{d1:g}_n{n0}-{n1}"


def structure_groups(params: dict) -> dict[str, dict]:
    """Every distinct structure group of the simulated domains, in domain order: folder -> ``structures``."""
    return {structure_group(params, d): domain_structures(params, d) for d in params["domains"]}


def transfer_pairs(params: dict) -> dict[str, dict[str, str]]:
    """The transfer grid, derived (never a param): every ordered (pretrain, target) pair of a pretraining domain
    and an evaluated domain (simulated, or ingested with masks) with target != pretrain, named
    ``<pretrain>-to-<target>``."""
    return {
        f"{p}-to-{t}": {"pretrain": p, "target": t}
        for p in params["pretrain"]["domains"]
        for t in domain_names(params)
        if t != p
    }
