"""Stage ``transfer@<pretrain>``: one row of the transfer grid. The pretrained U-Net of each seed is
trained further on every target of ``transfer.pairs`` that starts from ``<pretrain>``, and each model is
evaluated on the test split of every domain. One process per row pays Python, torch and timm start-up
once for its 10 models instead of once per model."""

from __future__ import annotations

import sys

from ..model import check_encoder
from ..params import fail
from ..training import load_states, seed_jobs, train_and_write
from . import TRAINING_ARGUMENTS, entry


def transfer(params: dict, args) -> None:
    check_encoder(params)
    tc = params["transfer"]
    targets = [pair["target"] for pair in tc["pairs"].values() if pair["pretrain"] == args.pretrain]
    if args.pretrain not in params["pretrain"]["domains"] or not targets:
        fail(params, "pretrain.domains", f"{args.pretrain!r} is not a pretraining domain with transfer pairs")
    init = load_states(args.init, params["train"]["seeds"])
    jobs = [job for target in targets
            for job in seed_jobs(params, stage="transfer", pretrain_domain=args.pretrain, target_domain=target,
                                 domains_dir=args.domains_dir, lr=tc["lr"], epochs=tc["epochs"],
                                 n_images=tc["n_images"], freeze=tc["freeze"], init_states=init, subdir=target)]
    train_and_write(jobs, args.models_out, args.results_out, args.curves_out)


main = entry("transfer", __doc__, transfer,
             {"--pretrain": "a domain of pretrain.domains: its row of transfer.pairs is trained",
              "--init": "folder of the pretrained models (models/pretrain/<domain>)", **TRAINING_ARGUMENTS})


if __name__ == "__main__":
    sys.exit(main())
