"""Stage ``transfer@<pretrain>``: one row of the transfer grid. For every target of ``transfer.pairs`` that
starts from ``<pretrain>``, every condition of the grid (``pretrain.lr`` x ``transfer.lr`` x
``transfer.n_images`` x ``transfer.freeze``) and seed, the pretrained U-Net of that seed and pretraining LR
is trained further on the target and evaluated on the test split of every domain. One process per row pays
the start-up once for all its models (on a dask cluster, each warm worker pays it once)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from hrtem_ood.execution.grid import stage_jobs, train_and_write, transfer_targets
from hrtem_ood.stages import TRAINING_ARGUMENTS, entry

if TYPE_CHECKING:
    from hrtem_ood.config.schema import Params


def transfer(params: Params, args) -> None:
    targets = transfer_targets(params, args.pretrain)
    jobs = stage_jobs(params, "transfer", args.pretrain, args.domains_dir, targets=targets, init_dir=args.init)
    train_and_write(jobs, args.models_out, args.results_out, args.curves_out, args.timing_out)


main = entry("transfer", __doc__, transfer,
             {"--pretrain": "a domain of pretrain.domains: its row of transfer.pairs is trained",
              "--init": "folder of the pretrained models (models/pretrain/<domain>)", **TRAINING_ARGUMENTS})


if __name__ == "__main__":
    sys.exit(main())
