"""The columns of the long-form tables a training stage writes. Standard library only.

A results table holds one row per model, evaluated domain and metric, and nothing that varies between runs of
the same params on one CPU kind. A timing table holds one row per model with its wall-clock training seconds,
the one figure that does vary.
"""

#: Metrics each model is evaluated with on every domain's test split (hrtem_ood.learning.evaluation.evaluate).
METRICS = ("ce", "paper_loss", "dice", "iou")
#: Columns of a results table. ``numerics``: the arithmetic the model ran in (``bf16/contiguous``, say;
#: hrtem_ood.learning.training.choose_numerics), which depends on the device.
RESULT_COLUMNS = ("run", "stage", "pretrain_domain", "target_domain", "eval_domain", "metric", "value", "seed",
                  "freeze", "n_transfer", "lr_pretrain", "lr_transfer", "epoch", "numerics")
#: Columns of a timing table: the model's ``run`` and its condition, then its training time (wall seconds, its
#: epochs and their validation).
TIMING_COLUMNS = ("run", "stage", "pretrain_domain", "target_domain", "seed", "freeze", "n_transfer", "lr_pretrain",
                  "lr_transfer", "seconds")
#: Columns ``aggregate.filters`` may select on (``experiment`` is added by ``hrtem-ood compare``).
FILTER_COLUMNS = RESULT_COLUMNS + ("experiment",)
