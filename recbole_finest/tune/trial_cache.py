"""Finished trial results kept on disk, so an interrupted search loses only its running trial.

A trial's result at one budget is a pure function of its ``Config`` (the sampled values, the
seed, the method, the pre-training keys) and the budget (``finest_epochs``). Ray Tune's
``BasicVariantGenerator`` draws the same points again from the same ``random_state``, so a
rerun of an interrupted search reaches the finished trials again and reads their rows from
``<tune_dir>/trials/<model>-<dataset>-<method>-<digest>-e<budget>.json`` instead of
fine-tuning. The digest holds the MD5 of the data; it leaves out where and how a run happens (``ENVIRONMENT_KEYS``, paths)
and the search's own ``tune_*`` keys, none of which changes the row.
"""

import hashlib
import json
import os

from recbole_finest.config import identity_items
from recbole_finest.data.files import data_digest
from recbole_finest.fileio import write_json
from recbole_finest.tune.identity import PATH_KEYS

#: keys that do not change a trial's row: the search's own, and the paths of one machine
IGNORED = frozenset(PATH_KEYS) | {"data_path"}


def trial_digest(config, budget):
    """SHA-1 (16 hex digits) of ``config``'s identity items outside ``tune_*`` and paths, ``budget`` and
    the MD5 of the data (:func:`recbole_finest.data.files.data_digest`: a row of other data is never read back)."""
    items = [f"{k}={v!r}" for k, v in identity_items(config, IGNORED) if not k.startswith("tune_")]
    items.append(f"budget={int(budget)!r}")
    items.append(f"data_md5={data_digest(config)!r}")
    return hashlib.sha1("\n".join(items).encode()).hexdigest()[:16]


def trial_path(folder, config, budget):
    """The cache file of ``config``'s row after ``budget`` fine-tuning epochs."""
    name = f"{config['model']}-{config['dataset']}-{config['finetune_method']}-{trial_digest(config, budget)}" \
           f"-e{int(budget)}.json"
    return os.path.join(folder, name)


def cached_row(folder, config, budget, compute):
    """The stability row of ``config`` at ``budget``: read from ``folder`` or ``compute()``d and kept.

    Args:
        compute: ``() -> dict`` (the trial's ``StabilityRun.finetune`` row).

    Returns:
        ``(row, cached)``: the row and whether it came from the file (``folder`` None: never).
    """
    if folder is None:
        return compute(), False
    path = trial_path(folder, config, budget)
    if os.path.isfile(path):
        try:
            with open(path, encoding="utf-8") as f:
                return json.load(f)["row"], True
        except (OSError, ValueError, KeyError):
            pass  # unreadable (e.g. a foreign file): computed again and rewritten
    row = compute()
    write_json(path, {"row": row, "budget": int(budget), "method": config["finetune_method"],
                      "seed": int(config["seed"])})
    return row, False
