"""Ray Tune search over FINEST (and model) hyper-parameters with a stability-aware objective.

    python run_recbole_finest.py --tune --model=SASRec --dataset=reddit \
        --search_space properties/tune/finest.yaml [--ray_address=auto]

Every trial runs the stability protocol on the *validation* split: models A (original
training data) and B (perturbed training data), pre-trained from the same initial
parameters, are fine-tuned with the trial's sampled configuration and compared with RBO and
Jaccard@k; their NDCG@10 / MRR / Recall@10 are reported too. The objective maximises
``tune_metric`` (default RBO) subject to ``tune_accuracy_metric`` (default NDCG@10) of
model A staying within ``tune_max_accuracy_drop`` (relative) of the un-fine-tuned model A;
infeasible trials rank below every feasible one.

Pre-training is shared: A and B are pre-trained once per seed (and per pre-training
configuration, when the search space holds model keys) in a Ray task, cached atomically
under ``<tune_dir>/pretrained/`` and handed to the trials through Ray's object store; a
trial only builds its ``StabilityRun`` and fine-tunes.

Outputs in ``<tune_dir>/<name>/`` next to Ray's own trial folders: ``results.csv`` and
``results.md`` (all trials, failed ones with their reason), ``best_config.yaml`` (ready for
``run_recbole_finest.py --config_files``), ``frontier.png`` (the tuned metric against the
accuracy metric across trials) and ``summary.json``.

Modules, one job each: ``space`` (search-space files), ``objective`` (the trial's score),
``identity`` (which keys name a cached pre-trained pair), ``cluster`` (Ray helpers shared
with the study backend), ``setup`` (``TuneSetup``: a trial's config anywhere in the
cluster), ``pretrain`` (the cached pair under a file lock), ``trial``, ``outputs`` (the
search's files; tables and plot through :mod:`recbole_finest.report`), ``driver``
(``run_tune``) and ``methods`` (``run_tune_methods``, ``--tune_methods``).
"""

from recbole_finest.tune.cluster import init_ray, isolated, ray_gpu_id, resources_of, worker_setup
from recbole_finest.tune.identity import CLI_KEYS, is_finetune_key, pretrain_digest, pretrained_paths
from recbole_finest.tune.objective import INFEASIBLE, reported, score
from recbole_finest.tune.setup import TuneSetup, absolute_overrides, budgets_of
from recbole_finest.tune.space import VOCABULARY, load_search_space, to_param_space
from recbole_finest.tune.pretrain import ensure_pretrained, load_pretrained, load_splits, stability_run  # noqa: I001
from recbole_finest.tune.trial import trial
from recbole_finest.tune.outputs import collect_rows, write_outputs
from recbole_finest.tune.driver import run_tune
from recbole_finest.tune.methods import run_tune_methods

__all__ = [
    "init_ray", "isolated", "ray_gpu_id", "resources_of", "worker_setup",
    "CLI_KEYS", "is_finetune_key", "pretrain_digest", "pretrained_paths",
    "INFEASIBLE", "reported", "score",
    "TuneSetup", "absolute_overrides", "budgets_of",
    "VOCABULARY", "load_search_space", "to_param_space",
    "ensure_pretrained", "load_pretrained", "load_splits", "stability_run",
    "trial", "collect_rows", "write_outputs", "run_tune", "run_tune_methods",
]
