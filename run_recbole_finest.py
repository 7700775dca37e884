"""Command line of recbole-finest.

    python run_recbole_finest.py                                  # the demo: SASRec on ml-100k
    python run_recbole_finest.py --model=BERT4Rec --dataset=reddit --raw_data_file=../shared/data/reddit.tsv
    python run_recbole_finest.py --model=SASRec --dataset=reddit --config_files "a.yaml b.yaml" --finest_topk=50
    python run_recbole_finest.py --tune --model=SASRec --dataset=reddit --search_space properties/tune/finest.yaml

Any RecBole or plugin key can be given as ``--key=value`` (RecBole's own parsing).
"""

import argparse
import os

from recbole_finest.config import properties_dir
from recbole_finest.quick_start import run_recbole_finest


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description="FINEST rank-preserving fine-tuning for RecBole")
    parser.add_argument("--model", "-m", type=str, default=None, help="model name (default: the demo, SASRec)")
    parser.add_argument("--dataset", "-d", type=str, default=None, help="dataset name (default: ml-100k)")
    parser.add_argument("--config_files", type=str, default=None, help="space-separated .yaml files")
    parser.add_argument("--study", action="store_true", help="run (or resume) the stability study grid of the study_* keys")
    parser.add_argument("--tune", action="store_true", help="Ray Tune search (docs/tuning.md)")
    parser.add_argument("--search_space", type=str, default=None, help="--tune: search-space .yaml (default: properties/tune/finest.yaml)")
    parser.add_argument("--ray_address", type=str, default=None, help="--tune: join this Ray cluster (auto = the local `ray start` one)")
    args, _ = parser.parse_known_args(argv)
    return args


def main(argv=None):
    args = parse_args(argv)
    files = args.config_files.strip().split(" ") if args.config_files else []
    for f in files:
        if not os.path.isfile(f):
            raise SystemExit(f"config file not found: {f}")
    if args.model is None and args.dataset is None:
        files = [os.path.join(properties_dir(), "overall", "demo.yaml")] + files
    if args.study:
        from recbole_finest.study import run_study

        return run_study(model=args.model, dataset=args.dataset, config_file_list=files or None)
    if args.tune:
        from recbole_finest.tune import run_tune

        return run_tune(model=args.model, dataset=args.dataset, config_file_list=files or None,
                        search_space=args.search_space, ray_address=args.ray_address)
    return run_recbole_finest(model=args.model, dataset=args.dataset, config_file_list=files or None)


if __name__ == "__main__":
    main()
