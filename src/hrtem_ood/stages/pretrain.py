"""Stage ``pretrain``: every pretraining model, ``pretrain.domains`` x ``pretrain.lr`` (a value or a grid) x
``train.seeds``, trained ``train.parallel_models`` side by side (on 2 cores, two 1-thread models at once), each
on its domain (best epoch by its own validation loss) and evaluated on the test split of every domain. One
stage for the whole grid, so that the models of different domains share the cores; each domain keeps its own
files (``<models-out>/<domain>/``, ``<results-out>/<domain>.csv``, ``<curves-out>/<domain>.json``,
``<timing-out>/<domain>.csv``), which are what each transfer row depends on. Torch is imported only where a model
trains (a spawned process or a dask worker)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from hrtem_ood.execution.grid import pretrain_jobs, train_and_write
from hrtem_ood.stages import entry

if TYPE_CHECKING:
    from hrtem_ood.config.schema import Params


def pretrain(params: Params, args) -> None:
    jobs = pretrain_jobs(params, args.domains_dir)
    train_and_write(jobs, args.models_out, args.results_out, args.curves_out, args.timing_out, per_domain=True)


main = entry("pretrain", __doc__, pretrain,
             {"--domains-dir": "folder of the domain datasets",
              "--models-out": "folder of the best models: <domain>/<condition>/seed<k>.pt",
              "--results-out": "folder of the results tables: <domain>.csv",
              "--curves-out": "folder of the learning curves: <domain>.json",
              "--timing-out": "folder of the timing tables (each model's training seconds): <domain>.csv"})


if __name__ == "__main__":
    sys.exit(main())
