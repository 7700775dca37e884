"""bf16 against fp32 per batch at the 1M / 10M shapes (issue 44 item 2), through the plugin's own code.

The 1M and 10M synthetic datasets of ``scale.py`` share their per-batch shapes (10,000 items,
SASRec hidden 64, 2 layers, 2 heads, inner 256, max_len 50, a training batch of ~1,024
targets = 21 full windows of 50, a reference batch of 2,048 windows' last positions); only
the number of batches differs (an epoch at 10M is ~9.5x the batches of 1M). This times,
per precision, in one process on the calling threads (process CPU time and wall time, the
median of ``--repeat`` rounds after one warm-up):

* ``train step``: ``SequenceScorer.batch_outputs`` (sequence unit) + the rank-preserving
  loss + backward + Adam step, under ``precision.autocast`` -- a FINEST fine-tuning step
  (pre-training is the same step without the rank term);
* ``reference batch``: ``ReferenceLists.fill`` of one batch (fp32: top-2K of fp32 scores;
  bf16: bf16 scores, fp32 re-ranking of 2K + 64 candidates).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/precision_batch.py --items 10000 --threads 1
"""

import argparse
import json
import os
import statistics
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))


def build(n_items, seed=0):
    from recbole.data.interaction import Interaction
    from recbole.model.sequential_recommender import SASRec

    from conftest import FakeDataset, model_only_config
    from recbole_finest.data.sequences import TARGET_ID, TARGET_SEQ
    from recbole_finest.finest.scoring import SequenceScorer

    torch.manual_seed(seed)
    config = model_only_config(50, 0.2, n_layers=2, n_heads=2, hidden_size=64, inner_size=256, embedding_size=64,
                               hidden_dropout_prob=0.2, attn_dropout_prob=0.2, initializer_range=0.02)
    model = SASRec(config, FakeDataset(n_items + 1))
    scorer = SequenceScorer(model)
    gen = torch.Generator().manual_seed(seed)

    def windows(rows):
        seq = torch.randint(1, n_items + 1, (rows, 50), generator=gen)
        return Interaction({model.ITEM_SEQ: seq, model.ITEM_SEQ_LEN: torch.full((rows,), 50),
                            TARGET_SEQ: torch.randint(1, n_items + 1, (rows, 50), generator=gen),
                            TARGET_ID: torch.arange(rows * 50).reshape(rows, 50)})

    return model, scorer, windows


def timed(fn, repeat):
    fn()  # warm-up
    wall, cpu = [], []
    for _ in range(repeat):
        w, c = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - w)
        cpu.append(time.process_time() - c)
    return statistics.median(wall), statistics.median(cpu)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=10000)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--topk", type=int, default=100, help="finest_topk (the lists hold 2K)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from recbole_finest.finest.loss import rank_preserving_loss
    from recbole_finest.finest.precision import autocast, bf16_support
    from recbole_finest.finest.reference import ReferenceLists

    model, scorer, windows = build(args.items)
    train_batch, ref_batch = windows(21), windows(41)  # 1,050 targets; 2,050 scored positions
    reference = torch.randint(1, args.items + 1, (train_batch[train_batch.columns[0]].shape[0] * 50, 2 * args.topk))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    out = {"items": args.items, "threads": torch.get_num_threads(), "bf16_native": bf16_support("cpu")[0], "rows": {}}
    for prec in ("fp32", "bf16"):
        def train_step():
            model.train()
            optimizer.zero_grad()
            with autocast(prec, "cpu"):
                loss, scores, ids = scorer.batch_outputs(train_batch, "sequence")
                loss = loss + rank_preserving_loss(scores, reference[ids])
            loss.backward()
            optimizer.step()

        def reference_batch():
            ref = ReferenceLists.empty(41 * 50, args.topk, args.items + 1, "cpu")
            ref.fill(scorer, [ref_batch], precision=prec)

        state = {k: v.clone() for k, v in model.state_dict().items()}
        out["rows"][prec] = {"train step": timed(train_step, args.repeat),
                             "reference batch": timed(reference_batch, args.repeat)}
        model.load_state_dict(state)
    print(json.dumps(out))
    print(f"| step | fp32 wall / CPU | bf16 wall / CPU | bf16 / fp32 CPU |  ({args.items:,} items, "
          f"{out['threads']} thread(s), native bf16: {out['bf16_native']})")
    print("|---|---|---|---|")
    for step in ("train step", "reference batch"):
        (fw, fc), (bw, bc) = out["rows"]["fp32"][step], out["rows"]["bf16"][step]
        print(f"| {step} | {fw:.2f} s / {fc:.2f} s | {bw:.2f} s / {bc:.2f} s | {bc / fc:.2f} |")


if __name__ == "__main__":
    main()
