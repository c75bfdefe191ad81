"""Stage ``pretrain@<domain>``: one U-Net per seed trained on a domain (best epoch by its own validation
loss), evaluated on the test split of every domain."""

from __future__ import annotations

import sys

from ..model import check_encoder
from ..params import fail
from ..training import seed_jobs, train_and_write
from . import TRAINING_ARGUMENTS, entry


def pretrain(params: dict, args) -> None:
    check_encoder(params)
    if args.domain not in params["pretrain"]["domains"]:
        fail(params, "pretrain.domains", f"{args.domain!r} is not listed")
    pc = params["pretrain"]
    jobs = seed_jobs(params, stage="pretrain", pretrain_domain=args.domain, target_domain=args.domain,
                     domains_dir=args.domains_dir, lr=pc["lr"], epochs=pc["epochs"], n_images=pc["n_images"],
                     freeze="none")
    train_and_write(jobs, args.models_out, args.results_out, args.curves_out)


main = entry("pretrain", __doc__, pretrain,
             {"--domain": "a key of domains listed in pretrain.domains", **TRAINING_ARGUMENTS})


if __name__ == "__main__":
    sys.exit(main())
