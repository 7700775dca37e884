"""The machine's matmul rate for SASRec's own shapes, and a phase's FLOP against it (for benchmarks/scale.py).

:func:`measure_rates` times ``torch.matmul`` of ``[m, k] x [k, n]`` for the shapes of
:func:`model_shapes` (fp32, and bf16 where the device has it natively: :func:`bf16_support`, the plugin's
``train_precision`` detection), on the
calling process's torch threads. With ``H`` hidden, ``I`` inner, ``N`` items, ``Bt`` / ``Be``
the train / eval batch sizes:

=====================  ==================  ========================================================
name                   ``[m, k] x [k, n]``  what runs at that shape
=====================  ==================  ========================================================
``score train``        ``[Bt, H] x [H, N]``  output layer forward, one training batch's targets
``score grad input``   ``[Bt, N] x [N, H]``  its backward: gradient of the hidden states
``score grad weight``  ``[N, Bt] x [Bt, H]`` its backward: gradient of the item embeddings
``score eval``         ``[Be, H] x [H, N]``  validation / test / reference-list scoring
``encoder``            ``[8192, H] x [H, I]`` the encoder's feed-forward at 8,192 positions
``square``             ``2048^3``           reference: a large square product
=====================  ==================  ========================================================

:func:`bound_seconds` turns a phase's FLOP by kind (``benchmarks/_flops.py``) into the time
those products would take at the measured rates: output forward at ``score eval``, the
training output layer at ``score train`` + ``score grad input`` + ``score grad weight``
(a third of its FLOP each), the encoder at ``encoder``. ``phase time / bound`` is then the
achieved share of what the machine does at the phase's own shapes (attention's small
batched products and all non-matmul work are charged at those rates too, so 1.0 is not
reachable; it is a ceiling, not a prediction).
"""

import time

import torch

SQUARE = 2048
ENCODER_ROWS = 8192


def model_shapes(hidden, inner, n_items, train_batch, eval_batch):
    """``{name: (m, k, n)}`` of the table above."""
    return {
        "score train": (train_batch, hidden, n_items),
        "score grad input": (train_batch, n_items, hidden),
        "score grad weight": (n_items, train_batch, hidden),
        "score eval": (eval_batch, hidden, n_items),
        "encoder": (ENCODER_ROWS, hidden, inner),
        "square": (SQUARE, SQUARE, SQUARE),
    }


def bf16_support(device):
    """``(True, "")`` where ``device`` multiplies bf16 natively, else ``(False, why not)``: the plugin's
    own detection (``recbole_finest.finest.precision.bf16_support``, which ``train_precision: bf16``
    uses), imported when called so ``scale.py --repo`` measures with the checkout it imported."""
    try:
        from recbole_finest.finest.precision import bf16_support as support
    except ImportError:  # a checkout from before train_precision
        return False, "the imported recbole_finest has no bf16 detection (recbole_finest.finest.precision)"
    return support(device)


def _sync(device):
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def matmul_rate(m, k, n, dtype=torch.float32, device="cpu", seconds=0.3, rounds=3):
    """GFLOP/s of ``[m, k] @ [k, n]`` (``2*m*k*n`` FLOP per product): the best of ``rounds``
    rounds, each repeating the product for at least ``seconds`` after one warm-up call."""
    g = torch.Generator(device="cpu").manual_seed(0)
    a = torch.randn((m, k), generator=g).to(device=device, dtype=dtype)
    b = torch.randn((k, n), generator=g).to(device=device, dtype=dtype)
    torch.matmul(a, b)
    _sync(device)
    best = 0.0
    for _ in range(rounds):
        reps, t0 = 0, time.perf_counter()
        while True:
            torch.matmul(a, b)
            reps += 1
            if reps % 4 == 0 or reps < 4:
                _sync(device)
                elapsed = time.perf_counter() - t0
                if elapsed >= seconds:
                    break
        best = max(best, 2.0 * m * k * n * reps / elapsed / 1e9)
    return best


def measure_rates(shapes, device="cpu", seconds=0.3):
    """``{"device", "threads", "shapes", "rates": {"fp32": {name: GFLOP/s}, "bf16": {...} or None},
    "bf16_note"}`` for ``shapes`` (:func:`model_shapes`)."""
    bf16, why = bf16_support(device)
    rates = {"fp32": {name: matmul_rate(*s, torch.float32, device, seconds) for name, s in shapes.items()}}
    rates["bf16"] = {name: matmul_rate(*s, torch.bfloat16, device, seconds) for name, s in shapes.items()} if bf16 else None
    return {"device": str(device), "threads": torch.get_num_threads(), "shapes": {k: list(v) for k, v in shapes.items()},
            "rates": rates, "bf16_note": why}


def bound_seconds(flop, rates):
    """Seconds the products of ``flop`` (``{kind: FLOP}``, ``_flops.KINDS``) take at ``rates``
    (``{name: GFLOP/s}`` of :func:`model_shapes`), the charging of the module docstring."""
    g = 1e9
    train = flop.get("output_train", 0) / 3
    return (flop.get("output_fwd", 0) / (rates["score eval"] * g)
            + train / (rates["score train"] * g) + train / (rates["score grad input"] * g)
            + train / (rates["score grad weight"] * g)
            + (flop.get("encoder_fwd", 0) + flop.get("encoder_train", 0)) / (rates["encoder"] * g))
