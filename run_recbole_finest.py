"""Command line of recbole-finest.

    python run_recbole_finest.py                                  # the demo: SASRec on ml-100k
    python run_recbole_finest.py --model=BERT4Rec --dataset=reddit --raw_data_file=../shared/data/reddit.tsv
    python run_recbole_finest.py --model=SASRec --dataset=reddit --config_files "a.yaml b.yaml" --finest_topk=50
    python run_recbole_finest.py --update --model=SASRec --dataset=reddit --update_methods="[retrain,finest]"
    python run_recbole_finest.py --tune --model=SASRec --dataset=reddit --search_space properties/tune/finest.yaml
    python run_recbole_finest.py --tune_methods --config_files "properties/study/reddit_paper.yaml properties/study/tune_paper.yaml"

Any RecBole or plugin key can be given as ``--key=value`` (RecBole's own parsing); any other
argument is an error, and so are two modes (``--study --tune``).
"""

import argparse
import os
import sys

from recbole_finest.config import properties_dir
from recbole_finest.data.datasets import DatasetNotFoundError
from recbole_finest.quick_start import run_recbole_finest


#: run modes (flags); at most one may be given
MODES = ("study", "update", "tune", "tune_methods")
#: options that belong to some modes only
MODE_OPTIONS = {"search_space": ("tune", "tune_methods"), "ray_address": ("tune", "tune_methods", "study")}


def parse_args(argv=None):
    """The plugin's own options; every other argument must be ``--key=value`` (a config key).

    Raises:
        SystemExit: an argument that is not ``--key=value``, two modes, or a mode option without its mode.
    """
    parser = argparse.ArgumentParser(description="FINEST rank-preserving fine-tuning for RecBole", allow_abbrev=False)
    parser.add_argument("--model", "-m", type=str, default=None, help="model name (default: the demo, SASRec)")
    parser.add_argument("--dataset", "-d", type=str, default=None, help="dataset name (default: ml-100k)")
    parser.add_argument("--config_files", type=str, default=None, help="space-separated .yaml files")
    parser.add_argument("--study", action="store_true", help="run (or resume) the stability study grid of the study_* keys")
    parser.add_argument("--update", action="store_true", help="v1 -> v2 update strategies and churn report (docs/update.md)")
    parser.add_argument("--tune", action="store_true", help="Ray Tune search (docs/tuning.md)")
    parser.add_argument("--tune_methods", action="store_true",
                        help="tune every method with the same budget and write their settings (docs/tuning.md)")
    parser.add_argument("--search_space", type=str, default=None,
                        help="--tune: search-space .yaml (default: properties/tune/finest.yaml; --tune_methods: "
                             "properties/tune/methods.yaml)")
    parser.add_argument("--ray_address", type=str, default=None,
                        help="--tune / --tune_methods, or --study with study_backend: ray: join this Ray cluster "
                             "(auto = the local `ray start` one)")
    args, rest = parser.parse_known_args(argv)
    for i, arg in enumerate(rest):
        key, sep, _ = arg[2:].partition("=")
        if not arg.startswith("--") or not sep or not key.isidentifier():
            hint = f": write {arg}={rest[i + 1]}" if arg.startswith("--") and i + 1 < len(rest) else ""
            parser.error(f"argument {arg!r} is not of the form --key=value{hint}")
    seen = {}
    for arg in argv if argv is not None else sys.argv[1:]:
        key, sep, value = arg[2:].partition("=")
        if arg.startswith("--") and sep:
            if seen.setdefault(key, value) != value:
                parser.error(f"--{key} is given twice with different values ({seen[key]!r} and {value!r})")
    modes = [m for m in MODES if getattr(args, m)]
    if len(modes) > 1:
        parser.error(f"--{' and --'.join(modes)} are different modes; give at most one")
    for option, owners in MODE_OPTIONS.items():
        if getattr(args, option) is not None and not set(owners) & set(modes):
            names = " or --".join(owners)
            parser.error(f"--{option} belongs to --{names}; add --{owners[0]} or drop --{option}")
    return args


def main(argv=None):
    """The command line; a bad setting or file ends in one line naming it (``SystemExit``)."""
    try:
        return _main(argv)
    except (ValueError, OSError, DatasetNotFoundError) as exc:
        if os.environ.get("RECBOLE_FINEST_TRACEBACK"):
            raise
        raise SystemExit(f"recbole-finest: error: {exc}") from exc


def _main(argv=None):
    args = parse_args(argv)
    files = args.config_files.split() if args.config_files else []
    for f in files:
        if not os.path.isfile(f):
            raise SystemExit(f"config file not found: {f}")
    if args.model is None and args.dataset is None:
        files = [os.path.join(properties_dir(), "overall", "demo.yaml")] + files
    if args.study:
        from recbole_finest.study.driver import run_study

        return run_study(model=args.model, dataset=args.dataset, config_file_list=files or None,
                         ray_address=args.ray_address)
    if args.update:
        from recbole_finest.update import run_update

        return run_update(model=args.model, dataset=args.dataset, config_file_list=files or None)
    if args.tune_methods:
        from recbole_finest.tune import run_tune_methods

        return run_tune_methods(model=args.model, dataset=args.dataset, config_file_list=files or None,
                                search_space=args.search_space, ray_address=args.ray_address)
    if args.tune:
        from recbole_finest.tune import run_tune

        return run_tune(model=args.model, dataset=args.dataset, config_file_list=files or None,
                        search_space=args.search_space, ray_address=args.ray_address)
    return run_recbole_finest(model=args.model, dataset=args.dataset, config_file_list=files or None)


if __name__ == "__main__":
    main()
