"""The domains a params file declares, derived from its plain dict: every evaluated domain's name, its
defocus and imaging parameters, and the (pretrain, target) transfer pairs. Standard library only."""

from __future__ import annotations


def domain_names(params: dict) -> list[str]:
    """Every domain models are evaluated on: the simulated ``domains``, then the ingested datasets
    that have masks (``ingest.datasets``)."""
    ingested = ((params.get("ingest") or {}).get("datasets") or {})
    return list(params["domains"]) + [k for k, v in ingested.items() if v.get("masks")]


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
    return out


def expected_pairs(params: dict) -> dict[str, dict[str, str]]:
    """Every ordered (pretrain, target) pair with target != pretrain, named ``<pretrain>-to-<target>``."""
    return {
        f"{p}-to-{t}": {"pretrain": p, "target": t}
        for p in params["pretrain"]["domains"]
        for t in domain_names(params)
        if t != p
    }
