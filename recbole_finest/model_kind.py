"""The one model-kind adapter: how a RecBole sequential model is scored, loaded and trained.

Three kinds, chosen once per model class (``kind_of``):

* ``CAUSAL``: position-wise causal models; the hidden state at position ``t`` depends only
  on items ``<= t``, so one forward pass scores the next item at every position. A model is
  causal when it has ``all_position_output(interaction) -> [B, L, H]`` (the plugin's
  TiSASRec) or is listed in ``KIND_OVERRIDES`` (RecBole's SASRec and GRU4Rec, whose
  ``forward`` picks the last position with ``gather_indexes``).
* ``MASKED``: masked-item models; decided by capability, the masked-LM attributes of
  RecBole's BERT4Rec recipe (``reconstruct_test_data``), or by ``KIND_OVERRIDES``.
* ``PREFIX``: every other model (NARM, Caser, ...): RecBole's ``calculate_loss`` and
  ``full_sort_predict`` on prefix instances.

A new RecBole sequential model gets its kind from its capabilities without editing the
plugin; ``KIND_OVERRIDES`` is the explicit registry for models whose kind the capabilities
cannot tell.

This module and registry.py are the only places that touch RecBole internals; here: the
``gather_indexes`` pick inside RecBole's SASRec / GRU4Rec ``forward`` (``all_position_output``).
"""

import contextlib

CAUSAL = "causal"
MASKED = "masked"
PREFIX = "prefix"

# Models whose kind their attributes cannot tell (the class name, as RecBole spells it).
KIND_OVERRIDES = {"SASRec": CAUSAL, "GRU4Rec": CAUSAL}

MASKED_CAPABILITIES = ("reconstruct_test_data",)


def kind_of(model):
    """``CAUSAL``, ``MASKED`` or ``PREFIX`` of a model instance or class."""
    cls = model if isinstance(model, type) else type(model)
    if cls.__name__ in KIND_OVERRIDES:
        return KIND_OVERRIDES[cls.__name__]
    if hasattr(cls, "all_position_output"):
        return CAUSAL
    if all(hasattr(cls, name) for name in MASKED_CAPABILITIES):
        return MASKED
    return PREFIX


def kind_of_config(config):
    """The kind of ``config["model"]`` (plugin models first, then RecBole's)."""
    from recbole_finest.utils import get_model

    return kind_of(get_model(config["model"]))


@contextlib.contextmanager
def _keep_all_positions(model):
    """Within the block ``model.gather_indexes(output, idx)`` returns ``output`` unchanged (instance only)."""
    model.gather_indexes = lambda output, gather_index: output
    try:
        yield
    finally:
        del model.gather_indexes


def all_position_output(model, interaction):
    """float ``[B, L, H]``: a causal model's hidden state at every input position.

    The model's own ``all_position_output`` when it has one; else its ``forward`` on
    ``ITEM_SEQ [B, L]`` / ``ITEM_SEQ_LEN [B]`` with the last-position pick (RecBole's
    ``gather_indexes``) disabled on the instance for the call.
    """
    if hasattr(model, "all_position_output"):
        return model.all_position_output(interaction)
    with _keep_all_positions(model):
        return model.forward(interaction[model.ITEM_SEQ], interaction[model.ITEM_SEQ_LEN])
