"""FLOP count of a run's phases from the shapes its SASRec actually ran (for benchmarks/scale.py).

Counted: the matrix products, which are nearly all of SASRec's arithmetic (LayerNorm,
GELU, softmax, dropout and embedding lookups are left out). With ``H`` = ``hidden_size``,
``A`` = the attention width (``n_heads`` x head size = ``H`` in RecBole), ``I`` =
``inner_size``, ``N`` = ``n_items`` (RecBole's ``item_num``, padding id included: the output
layer scores it) and ``n_layers``:

* **encoder**, one call of RecBole's ``TransformerEncoder`` on hidden ``[B, W, H]``, per layer:
  Q, K, V projections ``3 * 2*B*W*H*A``, output projection ``2*B*W*A*H``, attention scores
  ``Q K^T`` and their product with ``V`` ``2 * 2*B*W*W*A``, feed-forward ``2 * 2*B*W*H*I``::

      F_enc = n_layers * (8*B*W*H*A + 4*B*W*W*A + 4*B*W*H*I)

  every position of the ``[B, W]`` batch, padding included (it is computed; batches are
  cut to their longest window, RecBole's evaluation batches are ``W = MAX_ITEM_LIST_LENGTH``);
* **output layer**, ``M`` scored positions (the rows of ``hidden [..., H]`` in
  ``SequenceScorer.item_logits``: training, reference lists; or the ``B`` rows of
  ``SASRec.full_sort_predict``: validation, test evaluation)::

      F_out = 2*M*H*N

* **training** (autograd on at the call): forward + backward ``= 3 x`` the forward; the
  backward of each product ``X @ Y`` is two products of its size (``dX``, ``dY``).

Counts go to the phase running at the call (``phase_of()``) under four kinds:
``encoder_fwd`` / ``encoder_train`` / ``output_fwd`` / ``output_train`` (train kinds hold
the 3x). ``tests/test_flops.py`` checks the formula against ``torch.utils.flop_counter``.
"""

import torch

KINDS = ("encoder_fwd", "encoder_train", "output_fwd", "output_train")


def encoder_flop(batch, width, hidden, attention, inner, n_layers):
    """Forward FLOP of a Transformer encoder on ``[batch, width, hidden]`` (formula above)."""
    pos = batch * width
    return n_layers * (8 * pos * hidden * attention + 4 * pos * width * attention + 4 * pos * hidden * inner)


def output_flop(rows, hidden, n_items):
    """Forward FLOP of scoring ``rows`` hidden states ``[rows, hidden]`` against ``n_items`` embeddings."""
    return 2 * rows * hidden * n_items


class FlopCounter:
    """Adds up each phase's matmul FLOP while installed (:meth:`install`); ``flop[phase][kind]``."""

    def __init__(self, phase_of):
        self.phase_of = phase_of
        self.flop = {}

    def add(self, kind, forward_flop):
        """Count ``forward_flop`` of ``kind`` ("encoder" / "output"), 3x when autograd is on."""
        train = torch.is_grad_enabled()
        phase = self.flop.setdefault(self.phase_of() or "other", {})
        key = f"{kind}_{'train' if train else 'fwd'}"
        phase[key] = phase.get(key, 0) + forward_flop * (3 if train else 1)

    def install(self):
        """Wrap RecBole's ``TransformerEncoder.forward``, ``SASRec.full_sort_predict`` and the
        plugin's ``SequenceScorer.item_logits`` so every call is counted; returns the undo."""
        from recbole.model.layers import TransformerEncoder
        from recbole.model.sequential_recommender.sasrec import SASRec

        from recbole_finest.finest.scoring import SequenceScorer

        counter = self
        originals = [(TransformerEncoder, "forward"), (SASRec, "full_sort_predict"), (SequenceScorer, "item_logits")]
        encode, predict, logits = (getattr(cls, name) for cls, name in originals)

        def encoder_forward(self, hidden_states, *args, **kwargs):
            layer = self.layer[0]
            attn = layer.multi_head_attention
            b, w, h = hidden_states.shape
            counter.add("encoder", encoder_flop(b, w, h, attn.query.out_features,
                                                layer.feed_forward.dense_1.out_features, len(self.layer)))
            return encode(self, hidden_states, *args, **kwargs)

        def full_sort_predict(self, interaction):
            rows = len(interaction[self.ITEM_SEQ])
            counter.add("output", output_flop(rows, self.item_embedding.weight.shape[1], self.item_embedding.weight.shape[0]))
            return predict(self, interaction)

        def item_logits(self, hidden):
            h = hidden.shape[-1]
            counter.add("output", output_flop(hidden.numel() // max(h, 1), h, self.model.n_items))
            return logits(self, hidden)

        TransformerEncoder.forward = encoder_forward
        SASRec.full_sort_predict = full_sort_predict
        SequenceScorer.item_logits = item_logits

        def undo():
            for (cls, name), fn in zip(originals, (encode, predict, logits)):
                setattr(cls, name, fn)

        return undo

    def snapshot(self):
        return {p: dict(k) for p, k in self.flop.items()}

    def since(self, snap):
        """``{phase: {kind: FLOP}}`` counted since ``snap`` (:meth:`snapshot`)."""
        out = {}
        for p, kinds in self.flop.items():
            d = {k: v - snap.get(p, {}).get(k, 0) for k, v in kinds.items()}
            d = {k: v for k, v in d.items() if v}
            if d:
                out[p] = d
        return out

    def merge(self, counts):
        """Count a step finished by an earlier process (its :meth:`since` record)."""
        for p, kinds in (counts or {}).items():
            phase = self.flop.setdefault(p, {})
            for k, v in kinds.items():
                phase[k] = phase.get(k, 0) + v
