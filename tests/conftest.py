"""Shared pytest set-up of the suite."""

import platform
import sysconfig
from importlib import metadata

#: distributions whose versions head every test run (the stack the suite ran on)
STACK = ("numpy", "torch", "recbole", "ray", "pandas")


def stack_versions():
    """``{"python": ..., "numpy": ..., ...}``; ``"absent"`` for a distribution not installed."""
    out = {"python": platform.python_version()}
    site = sorted({sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]})
    for name in STACK:  # this environment's (a started Ray puts its vendored packages on sys.path)
        dist = next(iter(metadata.distributions(name=name, path=site)), None)
        out[name] = dist.version if dist is not None else "absent"
    return out


def pytest_report_header(config):
    """First line of the run: the versions the suite ran on."""
    return "stack: " + ", ".join(f"{k} {v}" for k, v in stack_versions().items())


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """``-q`` (the README's command) drops the header: the stack line then closes the run instead."""
    if config.get_verbosity() < 0:
        terminalreporter.write_line(pytest_report_header(config))


# ------------------------------------------------------------------------- shared tiny configs
#: the tiny SASRec-on-ml-100k run most tests train (users with >= 300 interactions, one layer,
#: one epoch each phase; the plugin's protocol on, as in its command line, also where a test
#: builds a library ``Config``); a test adds its own keys with ``{**TINY, ...}`` or :func:`tiny`
TINY = dict(
    user_inter_num_interval="[300,inf)", hidden_size=16, inner_size=32, n_layers=1, n_heads=1,
    MAX_ITEM_LIST_LENGTH=20, epochs=1, finest_epochs=1, finest_topk=10, train_batch_size=512,
    eval_batch_size=512, show_progress=False, seed=2020, finest_protocol=True,
)
#: the same run at half the width (the study and reliability tests train many of them)
TINY_NARROW = {**TINY, "hidden_size": 8, "inner_size": 16}


def tiny(base=None, drop=(), **overrides):
    """A copy of ``base`` (default :data:`TINY`) without the keys in ``drop``, with ``overrides``."""
    out = {k: v for k, v in (TINY if base is None else base).items() if k not in drop}
    out.update(overrides)
    return out


#: what RecBole's sequential models read from a config when built directly on a fake dataset
#: (:class:`FakeDataset`), one layer of width 8, no dropout; a test adds its own keys with
#: :func:`model_only_config`
MODEL_ONLY = {
    "USER_ID_FIELD": "user_id", "ITEM_ID_FIELD": "item_id", "TIME_FIELD": "timestamp", "LIST_SUFFIX": "_list",
    "ITEM_LIST_LENGTH_FIELD": "item_length", "NEG_PREFIX": "neg_",
    "n_layers": 1, "n_heads": 1, "hidden_size": 8, "inner_size": 8,
    "embedding_size": 8, "num_layers": 1, "dropout_prob": 0.0, "hidden_dropout_prob": 0.0,
    "attn_dropout_prob": 0.0, "hidden_act": "gelu", "layer_norm_eps": 1e-12, "initializer_range": 0.3,
    "loss_type": "CE", "ft_ratio": 0.0, "MASK_ITEM_SEQ": "Mask_item_id_list",
    "POS_ITEMS": "Pos_item_id", "NEG_ITEMS": "Neg_item_id", "MASK_INDEX": "MASK_INDEX",
}


def model_only_config(max_len, mask_ratio, **overrides):
    """:data:`MODEL_ONLY` on the CPU with ``MAX_ITEM_LIST_LENGTH`` / ``mask_ratio`` and ``overrides``."""
    import torch

    return {**MODEL_ONLY, "device": torch.device("cpu"), "MAX_ITEM_LIST_LENGTH": max_len,
            "mask_ratio": mask_ratio, **overrides}


class FakeDataset:
    """What RecBole's sequential models need from a dataset: ``num(field)`` = ``n_items``."""

    def __init__(self, n_items):
        self.n_items = n_items

    def num(self, field):
        return self.n_items


def pytest_sessionstart(session):
    """RecBole 1.2.1's Config needs NumPy 1's aliases: tests that build one directly (not
    through the plugin's Config) get them whatever ran before."""
    from recbole_finest.compat.registry import register

    register()


def load_splits(tmp, config_dict, model="SASRec", dataset="ml-100k"):
    """``(config, train, valid, test)`` of a tiny run built inside ``tmp`` (checkpoints under it)."""
    import contextlib

    from recbole.data import create_dataset, data_preparation

    from recbole_finest.config import Config

    with contextlib.chdir(tmp):
        config = Config(model, dataset, config_dict={**config_dict, "checkpoint_dir": str(tmp / "saved")})
        train, valid, test = data_preparation(config, create_dataset(config))
    return config, train, valid, test


# ------------------------------------------------------------------------- rank lists
def perturbed_permutations(gen, n, m, swaps):
    """n pairs of permutations of 1..m ``[n, m]``, the second a locally perturbed copy of the first."""
    import torch

    a = torch.stack([torch.randperm(m, generator=gen) + 1 for _ in range(n)])
    b = a.clone()
    for i in range(n):
        for _ in range(swaps):
            x, y = torch.randint(0, m, (2,), generator=gen).tolist()
            b[i, x], b[i, y] = b[i, y].clone(), b[i, x].clone()
    return a, b
