"""``train_precision``: fp32 (default) or bf16 autocast for pre-training, fine-tuning and reference lists.

With ``train_precision: bf16`` the trainer runs every training batch (pre-training and
fine-tuning, any method) and the reference-list scoring under
``torch.autocast(device_type, dtype=torch.bfloat16)``: matrix products (the encoder, the
output layer against every item) take bf16 inputs, the parameters, the optimizer and the
gradients stay fp32 (no ``GradScaler``: bf16 has fp32's exponent range). What stays fp32:

* the losses: the next-item cross-entropy and FINEST's rank-preserving loss read the bf16
  logits upcast to fp32 (``SequenceScorer.next_item_loss``, ``rank_preserving_loss``);
* the reference top-2K order: bf16 scores keep 8 significant bits, so many of a row's
  top-200 scores would tie (an arbitrary order for FINEST's order term). The bf16 scores
  only choose ``2K + RERANK_MARGIN`` candidates; those are scored again in fp32 from the
  same hidden state and sorted (:func:`rerank_top`), so the stored order is an fp32 order;
* validation, test evaluation and the stability metrics: fp32 always (the measurement is
  not changed by the option).

Hardware (:func:`bf16_support`, the one detection; ``benchmarks/_matmul.py`` uses it too):
CUDA with ``torch.cuda.is_bf16_supported()``, a CPU with ``avx512_bf16`` or ``amx_bf16``.
A CPU without them is allowed with a logged warning: torch emulates bf16 there, the results
are valid but slower than fp32 (measured: docs/performance.md, "bf16 against fp32"). A GPU
without bf16 is refused before any training, as is ``train_precision: bf16`` together with
RecBole's ``enable_amp`` (two mixed-precision switches).
"""

import contextlib
from logging import getLogger

import torch

FP32, BF16 = "fp32", "bf16"
#: candidates re-scored in fp32 beyond the reference lists' 2K (:func:`rerank_top`)
RERANK_MARGIN = 64
#: rows re-scored per step (bounds the ``[rows, candidates, hidden]`` gather)
RERANK_ROWS = 1024
_WARNED = set()
#: largest |bf16 - fp32| of a stability run's row (Original, FINEST) at the same seed that
#: docs/performance.md ("bf16 against fp32") accepts for the 1 + 1 epoch runs measured there
#: (100K: 0.00002 / 0.0007 / 0.000004; another seed moved RBO by 0.034); tests/test_precision.py
#: holds a tiny run to it
TOLERANCE = {"rbo": 0.001, "jaccard@10": 0.005, "mrr": 0.001}


def bf16_support(device):
    """``(True, "")`` where ``device`` multiplies bf16 natively, else ``(False, why not)``."""
    if torch.device(device).type == "cuda":
        ok = torch.cuda.is_bf16_supported()
        return ok, "" if ok else "this GPU has no bf16"
    try:
        with open("/proc/cpuinfo") as fh:
            flags = next((line for line in fh if line.startswith("flags")), "").split()
    except OSError:
        flags = []
    if "avx512_bf16" in flags or "amx_bf16" in flags:
        return True, ""
    return False, "no avx512_bf16 / amx_bf16 on this CPU (bf16 would be emulated)"


def check_precision(precision, device, enable_amp=False):
    """Refuse what cannot run, warn where bf16 is emulated; returns ``precision``.

    ``ValueError`` naming ``train_precision`` for ``enable_amp`` together with bf16, and for
    a CUDA device without bf16. Called by ``FinestTrainer.__init__``, before any training
    (the value itself was checked when the ``Config`` was built).
    """
    if precision != BF16:
        return precision
    if enable_amp:
        raise ValueError("config keys 'train_precision' (bf16) and 'enable_amp' (True) both ask for mixed precision; "
                         "set one: train_precision: bf16 (bf16 autocast, fp32 losses and reference order) or "
                         "RecBole's enable_amp")
    ok, why = bf16_support(device)
    if not ok and torch.device(device).type == "cuda":
        raise ValueError(f"config key 'train_precision' is bf16, but {why} ({torch.cuda.get_device_name(device)}); "
                         f"use train_precision: fp32")
    if not ok and str(device) not in _WARNED:  # once per device and process (a study builds many trainers)
        _WARNED.add(str(device))
        getLogger().warning(f"train_precision: bf16 on {device}: {why}; torch emulates bf16 here, so training and "
                            f"reference lists run slower than in fp32 (the numbers stay valid)")
    return precision


def autocast(precision, device, enable_amp=False):
    """The context a training batch or a reference batch runs in.

    bf16: ``torch.autocast(device type, bfloat16)``. fp32: RecBole's ``enable_amp`` autocast
    (the device type's default dtype), a no-op when it is off.
    """
    device_type = torch.device(device).type
    if precision == BF16:
        return torch.autocast(device_type=device_type, dtype=torch.bfloat16)
    if enable_amp:
        return torch.autocast(device_type=device_type)
    return contextlib.nullcontext()


def rerank_top(coarse, hidden, score_fn, n, margin=RERANK_MARGIN, rows=RERANK_ROWS):
    """Item ids ``[M, n]`` of the ``n`` best items per row, in fp32 order.

    Args:
        coarse: ``[M, N]`` scores (bf16 or their fp32 upcast); column 0, the padding item,
            already ``-inf``. They choose ``n + margin`` candidates per row.
        hidden: ``[M, H]`` hidden states the scores came from.
        score_fn: ``score_fn(hidden fp32 [m, H], items long [m, C]) -> fp32 [m, C]``, the
            model's scores of those items (``SequenceScorer.candidate_logits``).
        n: items kept (the reference lists' 2K).

    The fp32 order of the kept items is exact; the set equals the fp32 top-``n`` whenever
    no item outside the bf16 top-``n + margin`` has an fp32 score above the ``n``-th.
    """
    width = min(coarse.shape[1], n + margin)
    candidates = torch.topk(coarse.float(), width, dim=1).indices
    hidden = hidden.float()
    out = []
    for start in range(0, candidates.shape[0], rows):
        cand = candidates[start:start + rows]
        exact = score_fn(hidden[start:start + rows], cand)
        exact = exact.masked_fill(cand == 0, -torch.inf)  # padding item, when the catalogue is small
        out.append(cand.gather(1, torch.topk(exact, n, dim=1).indices))
    if not out:
        return candidates[:, :n]
    return torch.cat(out)
