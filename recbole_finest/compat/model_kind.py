"""The model-kind adapter: how the plugin reads a RecBole sequential model, chosen once per model.

Three kinds, decided by what a model can do (its capabilities), with an explicit registry
for the models whose capabilities do not show in their attributes:

* ``causal``: the hidden state at position ``t`` depends only on items ``<= t``, so one
  forward pass over a window scores the next item at every position (``train_unit:
  sequence``). A model is causal when it has an ``all_position_output(interaction) -> [B, L,
  H]`` method (the plugin's TiSASRec), or when it is registered as causal
  (``register_model_kind``): RecBole's SASRec and GRU4Rec, whose ``forward(item_seq,
  item_seq_len)`` computes every position causally and then picks the last one with
  ``gather_indexes``. For those the adapter runs the model's own ``forward`` with
  ``gather_indexes`` replaced by the identity *on the instance*, for the duration of that
  call (no model code is copied, the class is not patched; the instance attribute is
  removed again afterwards).
* ``masked``: a masked-item model (a BERT4Rec-like model): it has the masked-LM attributes
  ``MASKED_LM_ATTRIBUTES`` (mask token, mask ratio, the masked-item fields, the output bias)
  and ``forward(item_seq) -> [B, L, H]`` encodes the whole sequence bidirectionally.
* ``prefix-only``: every other model (NARM, Caser, ...): RecBole's ``calculate_loss`` and
  ``full_sort_predict`` on prefix instances; ``train_unit: sequence`` is refused.

A new RecBole sequential model therefore gets a kind without editing the plugin: a masked
model by its attributes, a model with ``all_position_output`` as causal, any other as
prefix-only (always correct, only slower). ``register_model_kind`` overrides the decision
for one class (exact class, not subclasses, since a subclass may change ``forward``).

This module and ``registry.py`` are the only places that touch RecBole internals
(docs/architecture.md, "RecBole internals").
"""

CAUSAL, MASKED, PREFIX_ONLY = "causal", "masked", "prefix-only"
PREFIX = PREFIX_ONLY
KINDS = (CAUSAL, MASKED, PREFIX_ONLY)

# what a masked-item model must have for the plugin's vectorized masking and scoring
MASKED_LM_ATTRIBUTES = ("mask_token", "mask_ratio", "MASK_ITEM_SEQ", "POS_ITEMS", "NEG_ITEMS", "MASK_INDEX",
                        "output_bias")

MASKED_CLASS_ATTRIBUTES = ("reconstruct_test_data",)  # the same test, on a class before building it

_REGISTERED = {}  # model class -> kind (explicit overrides)
_DEFAULTS = []  # non-empty once RecBole's causal models are registered


def register_model_kind(model_cls, kind):
    """Decide ``kind`` for instances of exactly ``model_cls`` (overrides the capability rule).

    Registering a class as ``causal`` without ``all_position_output`` promises that its
    ``forward(item_seq, item_seq_len)`` is position-wise causal and picks the output with
    ``self.gather_indexes``.
    """
    if kind not in KINDS:
        raise ValueError(f"model kind '{kind}' is not one of {', '.join(KINDS)}")
    _REGISTERED[model_cls] = kind


def _registered():
    """The registry, with RecBole's gather-indexes causal models added on first use."""
    if not _DEFAULTS:
        from recbole.model.sequential_recommender import GRU4Rec, SASRec

        for cls in (SASRec, GRU4Rec):
            _REGISTERED.setdefault(cls, CAUSAL)
        _DEFAULTS.append(True)
    return _REGISTERED


def kind_of(model):
    """The kind (``CAUSAL`` / ``MASKED`` / ``PREFIX_ONLY``) of a model instance or class.

    A class (before building it) is masked when it has RecBole's masked-LM test-input
    method ``reconstruct_test_data``; an instance when it has ``MASKED_LM_ATTRIBUTES``.
    """
    cls = model if isinstance(model, type) else type(model)
    registered = _registered().get(cls)
    if registered is not None:
        return registered
    if callable(getattr(cls, "all_position_output", None)):
        return CAUSAL
    masked_names = MASKED_CLASS_ATTRIBUTES if model is cls else MASKED_LM_ATTRIBUTES
    if all(hasattr(model, name) for name in masked_names):
        return MASKED
    return PREFIX_ONLY


# RecBole 1.2.1 sequential models FinestTrainer refuses, and why (docs/models.md).
REFUSED_MODELS = {
    "DIN": "is a CTR model (point-wise training on a label field, item-feature sequences, no full_sort_predict)",
    "DIEN": "is a CTR model (point-wise training on a label field, item-feature sequences, no full_sort_predict)",
    "FDSA": "needs item side features (selected_features)",
    "SASRecF": "needs item side features (selected_features)",
    "GRU4RecF": "needs item side features (selected_features)",
    "S3Rec": "needs item attribute features and its own two-stage pre-training (train_stage)",
    "KSR": "needs knowledge-graph entities (kg/link files and pretrained entity embeddings)",
    "GRU4RecKG": "needs knowledge-graph entities (kg/link files and pretrained entity embeddings)",
    "SHAN": "reads the inverted sequence of RecBole's inverse_itemseq batch transform, which FinestTrainer's batches do not apply",
    "FEARec": ("looks up same-target training sequences in an index built at construction; the FINEST simulation's "
               "inserted / replaced items become targets outside that index"),
}


def check_model(model):
    """Refuse models FinestTrainer cannot fine-tune (an instance, or a class before building it), with the reason."""
    from recbole.utils import ModelType

    name = model.__name__ if isinstance(model, type) else type(model).__name__
    if name in REFUSED_MODELS:
        raise ValueError(f"FINEST cannot fine-tune {name}: it {REFUSED_MODELS[name]} (docs/models.md)")
    if getattr(model, "type", None) != ModelType.SEQUENTIAL:
        raise ValueError(f"FINEST needs a RecBole sequential model; '{name}' is of type {getattr(model, 'type', None)}")
    if isinstance(model, type):
        return
    if not hasattr(model, "ITEM_SEQ") or not hasattr(model, "full_sort_predict"):
        raise ValueError(f"FINEST needs a model with item-sequence input and full_sort_predict; '{name}' has neither")


def _identity_gather(output, gather_index):
    return output


class ModelAdapter:
    """The one view of a model the scorer, the loader and the trainer ask.

    Attributes:
        model: the RecBole model.
        kind: ``CAUSAL``, ``MASKED`` or ``PREFIX_ONLY``.
    """

    def __init__(self, model):
        self.model = model
        self.kind = kind_of(model)

    @property
    def causal(self):
        return self.kind == CAUSAL

    @property
    def masked(self):
        return self.kind == MASKED

    @property
    def sequence_unit(self):
        """True when the model can train on whole-sequence windows (``train_unit: sequence``)."""
        return self.kind != PREFIX_ONLY

    def position_hidden(self, interaction):
        """float ``[B, L, H]``: hidden state at every input position.

        Causal models: position ``t`` sees items ``<= t``. Masked models: the bidirectional
        encoding of the (unmasked) ``ITEM_SEQ``. Prefix-only models have none (``ValueError``).
        """
        model = self.model
        if self.masked:
            return model.forward(interaction[model.ITEM_SEQ])
        if not self.causal:
            raise ValueError(f"{type(model).__name__} is a prefix-only model: its hidden states are not position-wise")
        if callable(getattr(model, "all_position_output", None)):
            return model.all_position_output(interaction)
        model.gather_indexes = _identity_gather  # the instance only, for this call
        try:
            return model.forward(interaction[model.ITEM_SEQ], interaction[model.ITEM_SEQ_LEN])
        finally:
            del model.gather_indexes
