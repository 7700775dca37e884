"""Issue-14 tuning tables: the setting chosen per method, from the kept tuning records.

    python scripts/experiments/tuning_table.py docs/paper_tune --model BERT4Rec [--fill docs/results.md]

Reads what ``scripts/experiments/paper_tune_save.sh`` keeps under ``docs/paper_tune``: per
finished search ``chosen/<model>-<method>.json`` (the chosen ``params`` and their validation
``metrics``) and ``<model>-<method>/summary.json`` (``baseline``: the not fine-tuned pair on the
same validation split). One row for Original (the baseline; the searches of one model share the
pre-trained pair, so every summary must hold the same baseline, else the script stops), then one
per method in the study's order (``recbole_finest.methods.METHODS``): the chosen
``finest_learning_rate``, the method's strength knob (``FinetuneMethod.strength``) and its value,
validation RBO, Jaccard@10 and NDCG@10.

With ``--fill`` the table replaces the block between ``<!-- <MODEL>_TUNING -->`` and
``<!-- /<MODEL>_TUNING -->`` (the model in capitals) instead of being printed.
"""

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, os.pardir))

from recbole_finest.methods import METHODS, get_method  # noqa: E402
from paper_tables import fill  # noqa: E402

LEARNING_RATE = "finest_learning_rate"
BASELINE_METRICS = ("rbo", "jaccard@10", "ndcg@10")


def _read(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def chosen_records(keep, model):
    """``{method: chosen record}`` of every finished search of ``model`` under ``keep``, study order."""
    folder = os.path.join(keep, "chosen")
    found = {}
    for name in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
        prefix = f"{model}-"
        if name.startswith(prefix) and name.endswith(".json"):
            found[name[len(prefix):-len(".json")]] = _read(os.path.join(folder, name))
    unknown = sorted(set(found) - set(METHODS))
    if unknown:
        raise SystemExit(f"{folder}: records of unknown method(s) {', '.join(unknown)}")
    return {m: found[m] for m in METHODS if m in found}


def shared_baseline(keep, model, methods):
    """The not fine-tuned validation metrics, equal across the searches of ``model``."""
    baseline = None
    for method in methods:
        path = os.path.join(keep, f"{model}-{method}", "summary.json")
        values = {k: _read(path)["baseline"][k] for k in BASELINE_METRICS}
        if baseline is not None and any(abs(values[k] - baseline[k]) > 1e-4 for k in BASELINE_METRICS):
            raise SystemExit(f"{path}: baseline {values} differs from the other searches' {baseline}: "
                             "they did not share the pre-trained pair")
        baseline = baseline or values
    return baseline


def tuning_table(keep, model):
    """Markdown table of the chosen settings of ``model`` (see the module docstring)."""
    records = chosen_records(keep, model)
    if not records:
        raise SystemExit(f"{keep}: no finished search of {model}")
    base = shared_baseline(keep, model, records)
    rows = ["| model | method | chosen `finest_learning_rate` | chosen strength | valid RBO | valid Jaccard@10 "
            "| valid NDCG@10 |", "|---|---|---|---|---|---|---|",
            f"| {model} | Original (not fine-tuned) | - | - | {base['rbo']:.4f} | {base['jaccard@10']:.4f} "
            f"| {base['ndcg@10']:.4f} |"]
    for method, record in records.items():
        knob = get_method(method).strength
        params, metrics = record["params"], record["metrics"]
        rows.append(f"| {model} | {method} | {params[LEARNING_RATE]:.2e} | `{knob}` {params[knob]:.3g} "
                    f"| {metrics['rbo']:.4f} | {metrics['jaccard@10']:.4f} | {metrics['ndcg@10']:.4f} |")
    return "\n".join(rows)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("keep", help="folder written by paper_tune_save.sh (docs/paper_tune)")
    parser.add_argument("--model", required=True)
    parser.add_argument("--fill", metavar="MD", help="replace the <!-- <MODEL>_TUNING --> block of this file")
    args = parser.parse_args()
    table = tuning_table(args.keep, args.model)
    if args.fill:
        fill(args.fill, {f"{args.model.upper()}_TUNING": table})
    else:
        print(table)


if __name__ == "__main__":
    main()
