"""RecBole 1.2.1 on today's stack: the one place that adapts it to NumPy 2, pandas 3, torch >= 2.6, Ray >= 2.41.

RecBole 1.2.1 (2023) predates all four. Each fix below is a patch of one RecBole module,
applied right after that module is imported (:mod:`~recbole_finest.compat.startup` hooks the
import; :func:`patch_imported` patches modules imported before the hook), so plain RecBole
scripts and the plugin see the same fixed RecBole:

* NumPy 2 (``recbole``, ``recbole.config.configurator``): RecBole's
  ``Config.compatibility_settings`` assigns ``np.float = np.float_`` ... from names NumPy 2
  removed; :func:`set_numpy_aliases` sets the aliases RecBole reads from names both NumPy
  versions have, before RecBole's first module runs.
* pandas 3 and 4 (``recbole.data.dataset.*``): ``Series.agg(len)`` returns the Series'
  length under pandas 3 (RecBole wants per-row lengths), ``df[field].fillna(..., inplace=True)``
  is a no-op under copy-on-write (missing tokens became ``-2**63``), and pandas 4 drops
  ``inplace=True`` from ``drop`` / ``drop_duplicates`` / ``sort_values`` / ``reset_index``.
  :data:`PANDAS_EDITS` lists every changed line of RecBole's dataset methods (22 sites);
  each method is recompiled from RecBole's own source with those lines changed (line
  numbers kept, so tracebacks point into RecBole's file), and a method whose source is not
  exactly RecBole 1.2.1's is left alone with a warning.
* torch >= 2.6 (``recbole.trainer.trainer``, ``recbole.quick_start.quick_start``): RecBole's
  checkpoint loads (``Trainer.resume_checkpoint``, ``Trainer.evaluate(load_best_model=True)``,
  ``load_data_and_model``) go through :func:`recbole_finest.compat.checkpoints.safe_load`
  (``weights_only=True`` with an allow-list); ``torch.cuda.amp.GradScaler`` / ``autocast``
  (deprecated) become ``torch.amp``'s with ``"cuda"``.
* Ray >= 2.41 (``recbole.quick_start.quick_start``): ``tune.report(**metrics)`` became
  ``tune.report(metrics)``.
"""
from __future__ import annotations

import ast
import functools
import inspect
import sys
import textwrap
import types
import warnings

#: NumPy aliases that RecBole 1.2.1 assigns in ``Config.compatibility_settings`` and reads
#: (``np.float`` in ``recbole.evaluator.metrics``, ``np.bool`` in GAUC, ``np.long`` ...), each
#: mapped to a name that exists in NumPy 1 and NumPy 2 alike. RecBole assigns them from
#: ``np.float_`` / ``np.complex_`` / ``np.unicode_``, which NumPy 2 removed, so every
#: RecBole ``Config`` fails there under NumPy 2.
NUMPY_ALIASES = {
    "bool": "bool_", "int": "int_", "float": "float64", "complex": "complex128",
    "object": "object_", "str": "str_", "long": "int_", "unicode": "str_",
}

#: Marker set on every patched module / class attribute, so patching is idempotent.
PATCHED = "__recbole_finest_stack__"


class PatchError(RuntimeError):
    """RecBole's source is not the one an edit was written for (the method is left unpatched)."""


# ---------------------------------------------------------------------------------- NumPy 2
def set_numpy_aliases() -> list:
    """Set ``np.<alias>`` (``NUMPY_ALIASES``) where NumPy lacks it; returns the names set.

    A name NumPy still has is left alone (NumPy 2 has ``np.bool`` and ``np.long`` again).
    """
    import numpy as np

    added = []
    for alias, target in NUMPY_ALIASES.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # NumPy < 1.24 warns on the deprecated aliases
            present = hasattr(np, alias)
        if not present:
            setattr(np, alias, getattr(np, target))
            added.append(alias)
    return added


def _compatibility_settings(self) -> None:
    """``recbole.config.Config.compatibility_settings`` that works under NumPy 1 and 2."""
    set_numpy_aliases()


def patch_configurator(module) -> None:
    """Replace RecBole's ``Config.compatibility_settings`` by one valid under NumPy 2."""
    module.Config.compatibility_settings = _compatibility_settings


# ---------------------------------------------------------------------------------- pandas 3 / 4
_DROP_INTER = ("self.inter_feat.drop(", "self.inter_feat = self.inter_feat.drop(")
_LEN = ("feat[field].agg(len)", "feat[field].map(len)")

#: ``{(module, class, method): [(old, new, count), ...]}``: RecBole 1.2.1's lines and their
#: replacements (``count``: how often ``old`` occurs in the method). ``agg(len)`` ->
#: ``map(len)``; ``x.fillna(v, inplace=True)`` -> ``x = x.fillna(v)``; ``frame.op(..., inplace=True)``
#: -> ``<attribute> = frame.op(...)``, or ``_compat_replace_feat`` for a frame held in a
#: local name (it rebinds the dataset attribute that holds it); ``drop(columns=)`` -> ``del``.
PANDAS_EDITS = {
    ("recbole.data.dataset.dataset", "Dataset", "_load_user_or_item_feat"): [
        ('feat.drop_duplicates(subset=[field], keep="first", inplace=True)',
         'feat = feat.drop_duplicates(subset=[field], keep="first")', 1)],
    ("recbole.data.dataset.dataset", "Dataset", "_load_feat"): [
        ('df[field].fillna(value="", inplace=True)', 'df[field] = df[field].fillna(value="")', 1)],
    ("recbole.data.dataset.dataset", "Dataset", "_fill_nan"): [
        ("feat[field].fillna(value=0, inplace=True)", "feat[field] = feat[field].fillna(value=0)", 1),
        ("feat[field].fillna(value=feat[field].mean(), inplace=True)",
         "feat[field] = feat[field].fillna(value=feat[field].mean())", 1)],
    ("recbole.data.dataset.dataset", "Dataset", "_normalize"): [(*_LEN, 1)],
    ("recbole.data.dataset.dataset", "Dataset", "_discretization"): [(*_LEN, 2)],
    ("recbole.data.dataset.dataset", "Dataset", "_remap"): [(*_LEN, 1)],
    ("recbole.data.dataset.dataset", "Dataset", "_filter_nan_user_or_item"): [
        ("feat.drop(feat.index[dropped_feat], inplace=True)",
         'setattr(self, name + "_feat", feat.drop(feat.index[dropped_feat]))', 1),
        (*_DROP_INTER, 1),
        ("self.inter_feat.index[dropped_inter], inplace=True", "self.inter_feat.index[dropped_inter]", 1)],
    ("recbole.data.dataset.dataset", "Dataset", "_remove_duplication"): [
        ("self.inter_feat.sort_values(", "self.inter_feat = self.inter_feat.sort_values(", 1),
        ("by=[self.time_field], ascending=True, inplace=True", "by=[self.time_field], ascending=True", 1),
        ("self.inter_feat.drop_duplicates(", "self.inter_feat = self.inter_feat.drop_duplicates(", 1),
        ("keep=keep, inplace=True", "keep=keep", 1)],
    ("recbole.data.dataset.dataset", "Dataset", "_filter_by_inter_num"): [
        ("self.user_feat.drop(self.user_feat.index[dropped_user], inplace=True)",
         "self.user_feat = self.user_feat.drop(self.user_feat.index[dropped_user])", 1),
        ("self.item_feat.drop(self.item_feat.index[dropped_item], inplace=True)",
         "self.item_feat = self.item_feat.drop(self.item_feat.index[dropped_item])", 1),
        ("self.inter_feat.drop(dropped_index, inplace=True)",
         "self.inter_feat = self.inter_feat.drop(dropped_index)", 1)],
    ("recbole.data.dataset.dataset", "Dataset", "_filter_by_field_value"): [
        ("                    feat.drop(\n", "                    _compat_replace_feat(self, feat, feat.drop(\n", 1),
        ("                        inplace=True,\n                    )", "\n                    ))", 1),
        ("feat.drop(feat.index[~feat[field].isin(interval)], inplace=True)",
         "_compat_replace_feat(self, feat, feat.drop(feat.index[~feat[field].isin(interval)]))", 1)],
    ("recbole.data.dataset.dataset", "Dataset", "_reset_index"): [
        ("feat.reset_index(drop=True, inplace=True)", "setattr(self, feat_name, feat.reset_index(drop=True))", 1)],
    ("recbole.data.dataset.dataset", "Dataset", "_del_col"): [
        ("feat.drop(columns=field, inplace=True)", "del feat[field]", 1)],
    ("recbole.data.dataset.dataset", "Dataset", "_filter_inter_by_user_or_item"): [
        ("self.inter_feat.drop(self.inter_feat.index[~remained_inter], inplace=True)",
         "self.inter_feat = self.inter_feat.drop(self.inter_feat.index[~remained_inter])", 1)],
    ("recbole.data.dataset.kg_dataset", "KnowledgeBasedDataset", "_filter_kg_by_triple_num"): [
        ("self.kg_feat.drop(dropped_index, inplace=True)", "self.kg_feat = self.kg_feat.drop(dropped_index)", 1)],
    ("recbole.data.dataset.kg_dataset", "KnowledgeBasedDataset", "_filter_link"): [
        ("self.inter_feat.drop(self.inter_feat.index[~remained_inter], inplace=True)",
         "self.inter_feat = self.inter_feat.drop(self.inter_feat.index[~remained_inter])", 1)],
    ("recbole.data.dataset.kg_dataset", "KnowledgeBasedDataset", "_reset_ent_remapID"): [(*_LEN, 1)],
    ("recbole.data.dataset.sequential_dataset", "SequentialDataset", "_benchmark_presets"): [
        ("].agg(len)", "].map(len)", 1)],
}


def _compat_replace_feat(dataset, old, new) -> None:
    """Rebind the attribute of ``dataset`` (``inter_feat``, ``user_feat`` ...) that holds ``old`` to ``new``.

    What ``old.op(..., inplace=True)`` did for a frame RecBole holds in a local name.
    """
    for name in dataset.feat_name_list:
        if getattr(dataset, name, None) is old:
            setattr(dataset, name, new)
            return
    raise PatchError(f"{type(dataset).__name__}: the frame to replace is none of {dataset.feat_name_list}")


def edited_method(func, edits):
    """``func`` recompiled from its source with ``edits`` (``(old, new, count)``) applied; line numbers kept."""
    source = inspect.getsource(func)
    for old, new, count in edits:
        found = source.count(old)
        if found != count:
            raise PatchError(f"{func.__qualname__}: expected {count} x {old!r} in RecBole's source, found {found}")
        if old.count("\n") != new.count("\n"):
            raise PatchError(f"{func.__qualname__}: an edit must keep the line count ({old!r})")
        source = source.replace(old, new)
    tree = ast.parse(textwrap.dedent(source))
    ast.increment_lineno(tree, func.__code__.co_firstlineno - 1)
    namespace = {}
    exec(compile(tree, func.__code__.co_filename, "exec"), func.__globals__, namespace)
    new_func = namespace[func.__name__]
    new_func.__qualname__ = func.__qualname__
    new_func.__wrapped__ = func
    setattr(new_func, PATCHED, True)
    return new_func


def patch_dataset_module(module) -> None:
    """Apply :data:`PANDAS_EDITS` to the classes of one of RecBole's dataset modules."""
    module._compat_replace_feat = _compat_replace_feat
    for (module_name, class_name, method), edits in PANDAS_EDITS.items():
        if module_name != module.__name__:
            continue
        cls = getattr(module, class_name)
        func = cls.__dict__[method]
        if getattr(func, PATCHED, False):
            continue
        try:
            setattr(cls, method, edited_method(func, edits))
        except (PatchError, OSError, SyntaxError) as exc:  # OSError: no source (a .pyc-only install)
            warnings.warn(f"recbole-finest: RecBole's {class_name}.{method} is not patched for pandas 3: {exc}",
                          RuntimeWarning)


# ---------------------------------------------------------------------------------- torch
class _CudaAmp:
    """``torch.cuda.amp`` as RecBole uses it (``GradScaler(enabled=)``, ``autocast(enabled=)``), on ``torch.amp``."""

    @staticmethod
    def GradScaler(*args, **kwargs):  # noqa: N802 (RecBole's name)
        import torch

        return torch.amp.GradScaler("cuda", *args, **kwargs)

    @staticmethod
    def autocast(*args, **kwargs):
        import torch

        return torch.amp.autocast("cuda", *args, **kwargs)


def _resume_checkpoint(self, resume_file):
    """RecBole's ``Trainer.resume_checkpoint``, loading through :func:`~recbole_finest.compat.checkpoints.safe_load`."""
    from recbole.utils import set_color

    from recbole_finest.compat.checkpoints import safe_load

    resume_file = str(resume_file)
    checkpoint = safe_load(resume_file, map_location=self.device)
    self.saved_model_file = resume_file
    self.start_epoch = checkpoint["epoch"] + 1
    self.cur_step = checkpoint["cur_step"]
    self.best_valid_score = checkpoint["best_valid_score"]
    if checkpoint["config"]["model"].lower() != self.config["model"].lower():
        self.logger.warning("Architecture configuration given in config file is different from that of checkpoint. "
                            "This may yield an exception while state_dict is being loaded.")
    self.model.load_state_dict(checkpoint["state_dict"])
    self.model.load_other_parameter(checkpoint.get("other_parameter"))
    self.optimizer.load_state_dict(checkpoint["optimizer"])
    self.logger.info(set_color("Checkpoint loaded. Resume training from", "blue")
                     + f" epoch {self.start_epoch}")


def _safe_best_model(evaluate):
    """RecBole's ``Trainer.evaluate`` whose ``load_best_model`` loads through ``safe_load``."""

    @functools.wraps(evaluate)
    def wrapper(self, eval_data, load_best_model=True, model_file=None, show_progress=False):
        from recbole_finest.compat.checkpoints import safe_load

        if load_best_model and eval_data:
            checkpoint_file = model_file or self.saved_model_file
            checkpoint = safe_load(checkpoint_file, map_location=self.device)
            self.model.load_state_dict(checkpoint["state_dict"])
            self.model.load_other_parameter(checkpoint.get("other_parameter"))
            self.logger.info(f"Loading model structure and parameters from {checkpoint_file}")
        return evaluate(self, eval_data, load_best_model=False, model_file=model_file, show_progress=show_progress)

    setattr(wrapper, PATCHED, True)
    return wrapper


def patch_trainer_module(module) -> None:
    """``torch.amp`` for ``torch.cuda.amp``; ``Trainer``'s checkpoint loads through ``safe_load``."""
    module.amp = _CudaAmp
    trainer = module.Trainer
    if not getattr(trainer.evaluate, PATCHED, False):
        trainer.evaluate = _safe_best_model(trainer.evaluate)
        trainer.resume_checkpoint = _resume_checkpoint


def load_data_and_model(model_file):
    """RecBole's ``quick_start.load_data_and_model``, loading ``model_file`` through ``safe_load``.

    Returns ``(config, model, dataset, train_data, valid_data, test_data)`` as RecBole's.
    """
    import logging

    import recbole.quick_start.quick_start as qs

    from recbole_finest.compat.checkpoints import safe_load

    checkpoint = safe_load(model_file)
    config = checkpoint["config"]
    qs.init_seed(config["seed"], config["reproducibility"])
    qs.init_logger(config)
    logger = logging.getLogger()
    logger.info(config)
    dataset = qs.create_dataset(config)
    logger.info(dataset)
    train_data, valid_data, test_data = qs.data_preparation(config, dataset)
    qs.init_seed(config["seed"], config["reproducibility"])
    model = qs.get_model(config["model"])(config, train_data._dataset).to(config["device"])
    model.load_state_dict(checkpoint["state_dict"])
    model.load_other_parameter(checkpoint.get("other_parameter"))
    return config, model, dataset, train_data, valid_data, test_data


setattr(load_data_and_model, PATCHED, True)


class _Tune(types.ModuleType):
    """``ray.tune`` with RecBole's ``tune.report(**metrics)`` call sent as Ray >= 2.41's ``report(metrics)``."""

    def __init__(self, tune):
        super().__init__(tune.__name__, tune.__doc__)
        self._tune = tune

    def __getattr__(self, name):
        return getattr(self._tune, name)

    def report(self, *args, **metrics):
        params = inspect.signature(self._tune.report).parameters
        if not args and "metrics" in params:
            return self._tune.report(metrics)
        return self._tune.report(*args, **metrics)


def patch_quick_start_module(module) -> None:
    """``load_data_and_model`` through ``safe_load`` (also as ``recbole.quick_start.load_data_and_model``); Ray's report."""
    module.load_data_and_model = load_data_and_model
    package = sys.modules.get("recbole.quick_start")
    if package is not None:  # patched after the package bound the name (hook installed late)
        package.load_data_and_model = load_data_and_model
    tune = getattr(module, "tune", None)
    if tune is not None and not isinstance(tune, _Tune):
        module.tune = _Tune(tune)


# ---------------------------------------------------------------------------------- dispatch
#: ``{module: patch}``: applied right after the module's code ran (keys: ``startup.TARGETS``).
PATCHES = {
    "recbole": lambda module: set_numpy_aliases(),
    "recbole.config.configurator": patch_configurator,
    "recbole.data.dataset.dataset": patch_dataset_module,
    "recbole.data.dataset.kg_dataset": patch_dataset_module,
    "recbole.data.dataset.sequential_dataset": patch_dataset_module,
    "recbole.trainer.trainer": patch_trainer_module,
    "recbole.quick_start.quick_start": patch_quick_start_module,
}


def before_import(name) -> None:
    """Run before RecBole's module ``name`` executes: NumPy's aliases before RecBole's first line."""
    if name == "recbole":
        _guarded(name, lambda: set_numpy_aliases())


def after_import(name, module) -> None:
    """Patch RecBole's module ``name`` (:data:`PATCHES`) right after it ran; warns, never raises. Idempotent."""
    if getattr(module, PATCHED, False):
        return
    _guarded(name, lambda: PATCHES[name](module))
    setattr(module, PATCHED, True)


def _guarded(name, patch):
    try:
        patch()
    except Exception as exc:
        warnings.warn(f"recbole-finest: RecBole's {name} is not patched for today's stack: {exc!r}", RuntimeWarning)


def patch_imported() -> None:
    """Patch the targets already imported (before the import hook was installed). Idempotent."""
    for name in ("recbole", *sorted(n for n in PATCHES if n != "recbole")):
        module = sys.modules.get(name)
        if module is not None:
            after_import(name, module)


def apply() -> None:
    """Import RecBole's patched modules now and patch them (but Ray's ``quick_start``: patched on import). Idempotent.

    The plugin calls it before it builds a ``Config``; ``import recbole_finest`` has installed
    the import hook (:func:`recbole_finest.compat.startup.install`) that patches the rest, and a
    plain RecBole script gets the same through the start-up hook.
    """
    import importlib

    for name in PATCHES:
        if name != "recbole.quick_start.quick_start":  # imports Ray: patched when imported
            importlib.import_module(name)
    patch_imported()
