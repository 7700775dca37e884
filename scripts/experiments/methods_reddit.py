"""Baselines, ablations and embedding-level stability on reddit with BERT4Rec.

Regenerates the "Baselines", "Ablations" and "Embedding-level stability" tables of
docs/results.md. Three steps (each resumable; trained models and finished cells are
cached in the study folder by ``recbole_finest.study.driver``):

    python scripts/experiments/methods_reddit.py grid --seeds 2020          # stability cells of one seed
    python scripts/experiments/methods_reddit.py embedding --seeds 2020     # embedding attacks on its models A
    python scripts/experiments/methods_reddit.py tables --seeds 2020 2021 2022   # markdown tables

Settings: the stability study's reduced reddit configuration (properties/study/reddit.yaml:
hidden 32, inner 64, 2 layers, 10 pre-training epochs at lr 0.002) with BERT4Rec's
fine-tuning learning rate 1e-4 (spec), 5 fine-tuning epochs and ``adv_steps: 2`` (BIM / PGD
iterations, to fit the CPU budget). Evaluation perturbation: deletion of 0.1% of the
training interactions, random and CASPER selection. Every method runs on random deletion;
CASPER deletion runs ``CASPER_METHODS`` (the ablations and apr_fgsm / apr_bim only on random,
to fit the CPU budget).
"""

import argparse
import glob
import json
import os
import sys
import time

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

STUDY_DIR = os.path.join("runs", "methods-reddit")
BASELINES = ["original", "random", "earliest_random", "latest_random", "apt", "acae", "apr_fgsm", "apr_bim",
             "apr_pgd", "pamacf", "vat", "finest"]
ABLATIONS = ["original", "finest", "finest_no_sim", "finest_no_reg", "finest_order_only", "finest_score_only"]
CASPER_METHODS = ["original", "random", "earliest_random", "latest_random", "apt", "acae", "apr_pgd", "pamacf",
                  "vat", "finest"]
RANDOM_ONLY = [m for m in BASELINES + ABLATIONS if m not in CASPER_METHODS]
EMB_METHODS = ["original", "finest", "apr_pgd"]
EMB_ATTACKS = ["fgsm", "bim", "pgd"]
EMB_EPS = [0.01, 0.1, 0.5]
KEYS = ("rbo", "jaccard@10", "mrr", "recall@10")


def config_dict(seeds, selections=("random", "casper"), methods=None):
    if methods is not None:  # one explicit sub-grid (the CPU-budget schedule)
        grids = {"study_selections": list(selections), "study_methods": list(methods), "study_grids": None}
    else:
        grids = {"study_selections": ["random", "casper"], "study_methods": CASPER_METHODS,
                 "study_grids": [{"study_selections": ["random"], "study_methods": RANDOM_ONLY}]}
    return {
        **grids,
        "study_dir": STUDY_DIR,
        "checkpoint_dir": os.path.join(STUDY_DIR, "checkpoints"),
        "study_models": ["BERT4Rec"],
        "study_seeds": list(seeds),
        "study_kinds": ["deletion"],
        "study_ratios": [0.001],
        "study_model_config": {"BERT4Rec": {"finest_learning_rate": 0.0001}},
        "sequence_ft_ratio": 0.5,  # as measured (the sequence unit's default until 2026-12-04)
        "study_reference_method": "finest",
        "finest_epochs": 5,
        "adv_steps": 2,
    }


CONFIG_FILES = [os.path.join(ROOT, "properties", "study", "reddit.yaml")]


def grid(seeds, selections=("random", "casper"), methods=None):
    """Stability cells of ``seeds`` (all of them, or one ``selections`` x ``methods`` sub-grid).

    Sub-grids of the same study folder can run in parallel processes: model A's trained
    states are cached in the folder, so a process finds the ones another has finished.
    """
    from recbole_finest.study.driver import run_study

    torch.set_num_threads(1)
    return run_study(config_file_list=CONFIG_FILES, config_dict=config_dict(seeds, selections, methods))


def embedding(seeds):
    """Embedding attacks on model A (fine-tuned by each of ``EMB_METHODS``) of every seed."""
    from recbole.utils import init_logger, init_seed

    from recbole_finest.config import Config
    from recbole_finest.stability.embedding import clean_outputs, embedding_stability
    from recbole_finest.fileio import load_checkpoint, write_json
    from recbole_finest.quick_start import load_data
    from recbole_finest.study.driver import StudyFolder
    from recbole_finest.utils import get_model

    torch.set_num_threads(1)
    cfg_dict = config_dict(seeds)
    cfg_dict.update(cfg_dict.pop("study_model_config")["BERT4Rec"])
    config = Config(model="BERT4Rec", config_file_list=CONFIG_FILES, config_dict=cfg_dict)
    init_seed(config["seed"], config["reproducibility"])
    init_logger(config)
    _, (train_data, _, test_data) = load_data(config)
    folder = StudyFolder(STUDY_DIR)
    for seed in seeds:
        config["seed"] = seed
        for method in EMB_METHODS:
            out_path = os.path.join(STUDY_DIR, "embedding", f"seed{seed}", f"{method}.json")
            if os.path.isfile(out_path):
                continue
            stage = "pretrained" if method == "original" else method
            state = load_checkpoint(folder.state("BERT4Rec", seed, "A", stage), map_location="cpu")
            model = get_model("BERT4Rec")(config, train_data.dataset)
            model.load_state_dict(state.get("state_dict", state) if isinstance(state, dict) else state)
            rows, clean = [], clean_outputs(model, test_data, config)
            for attack in EMB_ATTACKS:
                for eps in EMB_EPS:
                    start = time.time()
                    row = embedding_stability(model, test_data, attack, eps, config, clean=clean)
                    row.update(method=method, seed=seed, seconds=round(time.time() - start, 1))
                    rows.append(row)
            write_json(out_path, rows)


# ------------------------------------------------------------------------------ tables
def _cells(selection):
    out = {}
    pattern = os.path.join(STUDY_DIR, "cells", "BERT4Rec", f"{selection}-deletion-r0.001", "seed*", "*.json")
    for path in glob.glob(pattern):
        with open(path, encoding="utf-8") as f:
            rec = json.load(f)
        out.setdefault(rec["method"], {})[rec["seed"]] = rec
    return out


def _metric(rec, key):
    for holder in (rec, rec.get("row", {}), rec.get("metrics", {})):
        if isinstance(holder, dict) and key in holder:
            return holder[key]
    return None


def _fmt(values, best=False):
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    text = f"{np.mean(values):.4f}" + (f" ± {np.std(values, ddof=1):.4f}" if len(values) > 1 else "")
    return f"**{text}**" if best else text


def method_table(methods, selections=("random", "casper")):
    lines = []
    for selection in selections:
        cells = _cells(selection)
        present = [m for m in methods if m in cells]
        if not present:
            continue
        means = {m: {k: np.mean([v for v in (_metric(r, k) for r in cells[m].values()) if v is not None] or [np.nan])
                     for k in KEYS} for m in present}
        best = {k: np.nanmax([means[m][k] for m in present]) for k in KEYS}
        lines += [f"**{selection.upper() if selection == 'casper' else 'Random'} deletion (0.1%)**", "",
                  "| method | seeds | RBO | Jaccard@10 | MRR | Recall@10 |", "|---|---|---|---|---|---|"]
        for m in present:
            recs = cells[m]
            cols = [_fmt([_metric(r, k) for r in recs.values()], best=np.isclose(means[m][k], best[k])) for k in KEYS]
            lines.append(f"| {m} | {len(recs)} | " + " | ".join(cols) + " |")
        if "finest" in present and len(present) > 2:
            lines += ["", _versus_best(cells, present, means)]
        lines.append("")
    return "\n".join(lines)


def _versus_best(cells, present, means, reference="finest"):
    """One line: ``reference`` against the best other method (by mean) on every metric."""
    from scipy.stats import ttest_ind

    parts = []
    for k in KEYS:
        others = [m for m in present if m not in (reference, "original")]
        best = max(others, key=lambda m: means[m][k])
        a = [_metric(r, k) for r in cells[reference].values()]
        b = [_metric(r, k) for r in cells[best].values()]
        gain = 100 * (means[reference][k] / means[best][k] - 1)
        p = ttest_ind(a, b, equal_var=False, alternative="greater").pvalue if min(len(a), len(b)) > 1 else float("nan")
        parts.append(f"{k}: {gain:+.2f}% vs {best} (p = {p:.3f})")
    return f"{reference} vs the best other fine-tuning method (one-tailed Welch over seeds): " + "; ".join(parts) + "."


def embedding_table():
    """Rows attack x eps; RBO, Jaccard@10 (mean ± std over seeds) and perturbed MRR per method."""
    rows = []
    for path in glob.glob(os.path.join(STUDY_DIR, "embedding", "seed*", "*.json")):
        with open(path, encoding="utf-8") as f:
            rows += json.load(f)
    if not rows:
        return ""
    head = ["attack", "eps", "seeds"] + [f"{label} {m}" for label in ("RBO", "Jaccard@10", "MRR") for m in EMB_METHODS]
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    clean = {m: _fmt([r["clean_mrr"] for r in rows if r["method"] == m and r["attack"] == EMB_ATTACKS[0]
                      and r["eps"] == EMB_EPS[0]]) for m in EMB_METHODS}
    lines.append("| none | 0 | | " + " | ".join(["1", "1", "1", "1", "1", "1"]) + " | "
                 + " | ".join(clean[m] for m in EMB_METHODS) + " |")
    for attack in EMB_ATTACKS:
        for eps in EMB_EPS:
            sel = {m: [r for r in rows if r["attack"] == attack and r["eps"] == eps and r["method"] == m]
                   for m in EMB_METHODS}
            cols = []
            for key in ("rbo", "jaccard@10", "perturbed_mrr"):
                means = {m: np.mean([r[key] for r in sel[m]]) if sel[m] else np.nan for m in EMB_METHODS}
                top = np.nanmax(list(means.values()))
                cols += [_fmt([r[key] for r in sel[m]], best=key != "perturbed_mrr" and means[m] == top)
                         for m in EMB_METHODS]
            n = min(len(v) for v in sel.values())
            lines.append(f"| {attack} | {eps} | {n} | " + " | ".join(cols) + " |")
    return "\n".join(lines) + "\n"


def tables():
    from recbole_finest.fileio import write_text

    text = ("## Baselines\n\n" + method_table(BASELINES) + "\n## Ablations\n\n" + method_table(ABLATIONS, ("random",))
            + "\n## Embedding-level stability\n\n" + embedding_table())
    write_text(os.path.join(STUDY_DIR, "tables.md"), text)
    print(text)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("step", choices=("grid", "embedding", "tables", "all"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[2020, 2021, 2022])
    parser.add_argument("--selections", nargs="+", default=["random", "casper"], help="grid: sub-grid selections")
    parser.add_argument("--methods", nargs="+", default=None, help="grid: sub-grid methods (default: the whole grid)")
    args = parser.parse_args(argv)
    sys.argv = sys.argv[:1]  # RecBole parses the command line too
    if args.step in ("grid", "all"):
        grid(args.seeds, args.selections, args.methods)
    if args.step in ("embedding", "all"):
        embedding(args.seeds)
    if args.step in ("tables", "all"):
        tables()


if __name__ == "__main__":
    main()
