"""Stage ``pretrain@<domain>``: one U-Net per pretraining LR (``pretrain.lr``, a value or a grid) and seed,
trained on a domain (best epoch by its own validation loss) and evaluated on the test split of every
domain. Torch is imported only where a model trains (here, a spawned process or a dask worker)."""

from __future__ import annotations

import sys

from ..grid import stage_jobs, train_and_write
from ..params import fail
from . import TRAINING_ARGUMENTS, entry


def pretrain(params: dict, args) -> None:
    if args.domain not in params["pretrain"]["domains"]:
        fail(params, "pretrain.domains", f"{args.domain!r} is not listed")
    jobs = stage_jobs(params, "pretrain", args.domain, args.domains_dir)
    train_and_write(jobs, args.models_out, args.results_out, args.curves_out)


main = entry("pretrain", __doc__, pretrain,
             {"--domain": "a key of domains listed in pretrain.domains", **TRAINING_ARGUMENTS})


if __name__ == "__main__":
    sys.exit(main())
