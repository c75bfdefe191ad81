"""Stage ``transfer@<pretrain>-to-<target>``: the pretrained U-Net of each seed trained further on the
target domain, evaluated on the test split of every domain."""

from __future__ import annotations

import sys

from ..model import check_encoder
from ..params import fail, suggest
from ..training import load_states, seed_jobs, train_and_write
from . import TRAINING_ARGUMENTS, entry


def transfer(params: dict, args) -> None:
    check_encoder(params)
    pairs = params["transfer"]["pairs"]
    if args.pair not in pairs:
        fail(params, "transfer.pairs", f"unknown pair {args.pair!r}{suggest(args.pair, pairs)}")
    tc = params["transfer"]
    jobs = seed_jobs(params, stage="transfer", pretrain_domain=pairs[args.pair]["pretrain"],
                     target_domain=pairs[args.pair]["target"], domains_dir=args.domains_dir, lr=tc["lr"],
                     epochs=tc["epochs"], n_images=tc["n_images"], freeze=tc["freeze"],
                     init_states=load_states(args.init, params["train"]["seeds"]))
    train_and_write(jobs, args.models_out, args.results_out, args.curves_out)


main = entry("transfer", __doc__, transfer,
             {"--pair": "a key of transfer.pairs, e.g. dfm10-to-dfp10",
              "--init": "folder of the pretrained models (models/pretrain/<domain>)", **TRAINING_ARGUMENTS})


if __name__ == "__main__":
    sys.exit(main())
