"""The domains a params file declares: every evaluated domain's name, its defocus, imaging and structure
parameters, and the (pretrain, target) transfer pairs derived from them. Pure functions of the typed params."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hrtem_ood.config.schema import DomainImaging, Params, Structures


def domain_names(params: Params) -> list[str]:
    """Every domain models are evaluated on: the simulated ``domains``, then the ingested datasets
    that have masks (``ingest.datasets``)."""
    return list(params.domains) + [k for k, v in params.ingest.datasets.items() if v.masks]


def ingested_names(params: Params) -> list[str]:
    """The evaluated domains that are ingested micrographs (``ingest.datasets`` with masks), in params order."""
    return [d for d in domain_names(params) if d not in params.domains]


def domain_defocus_nm(params: Params) -> dict[str, float | None]:
    """Defocus (nm) of every domain where known (ingested data may not say)."""
    out = {k: v.defocus_nm for k, v in params.ingest.datasets.items()}
    out.update({k: v.defocus_nm for k, v in params.domains.items()})
    return out


def domain_imaging(params: Params, name: str) -> DomainImaging:
    """The imaging parameters of one domain: ``imaging`` defaults overridden by the domain's keys."""
    from hrtem_ood.config.schema import DomainImaging

    overrides = params.domains[name].model_dump(exclude={"structure"}, exclude_none=True)
    return DomainImaging.model_validate({**params.imaging.model_dump(), **overrides, "name": name})


def domain_structures(params: Params, name: str) -> Structures:
    """The ``structures`` section a simulated domain's scenes are built from: the defaults with the domain's
    ``structure`` overrides (``material``, ``diameter_A``, ``count``) applied."""
    sp, over = params.structures, params.domains[name].structure
    if over is None:
        return sp
    particles = {k: getattr(over, k) for k in ("diameter_A", "count") if getattr(over, k) is not None}
    return sp.model_copy(update={"material": over.material or sp.material,
                                 "particles": sp.particles.model_copy(update=particles)})


def structure_group(params: Params, name: str) -> str:
    """The folder (under data/structures and data/exitwaves) of a domain's structures: "" for the defaults,
    else ``<material>_d<min>-<max>_n<min>-<max>``, shared by every domain with the same structures."""
    sp = domain_structures(params, name)
    if sp == params.structures:
        return ""
    (d0, d1), (n0, n1) = sp.particles.diameter_A, sp.particles.count
    return f"{sp.material}_d{d0:g}-{d1:g}_n{n0}-{n1}"


def structure_groups(params: Params) -> dict[str, Structures]:
    """Every distinct structure group of the simulated domains, in domain order: folder -> ``structures``."""
    return {structure_group(params, d): domain_structures(params, d) for d in params.domains}


def transfer_pairs(params: Params) -> dict[str, dict[str, str]]:
    """The transfer grid, derived (never a param): every ordered (pretrain, target) pair of a pretraining domain
    and an evaluated domain (simulated, or ingested with masks) with target != pretrain, named
    ``<pretrain>-to-<target>``."""
    return {
        f"{p}-to-{t}": {"pretrain": p, "target": t}
        for p in params.pretrain.domains
        for t in domain_names(params)
        if t != p
    }
