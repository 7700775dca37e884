"""The reports of a study: tables, plots and the log summary of its cells, through :mod:`recbole_finest.report`."""

import os
from collections import OrderedDict
from logging import getLogger

from recbole.utils import set_color

from recbole_finest import report
from recbole_finest.fileio import write_text


def user_groups(base, grids, cells, folder, reference):
    """``plot_user_groups`` input: per (model, selection, kind) at the main grid's first ratio."""
    ratio = float(grids[0]["ratios"][0])
    fraction = base["study_group_fraction"]
    groups = []
    for model, seeds in cells.items():
        for (sel, kind, r) in OrderedDict.fromkeys(p for perts in seeds.values() for p in perts):
            if r != ratio:
                continue
            per_seed = []
            for seed, perts in seeds.items():
                methods = perts.get((sel, kind, r), [])
                if "original" not in methods or reference not in methods:
                    continue
                orig = folder.read_instances((model, seed, sel, kind, r, "original"))
                fine = folder.read_instances((model, seed, sel, kind, r, reference))
                if orig is not None and fine is not None:
                    per_seed.append(report.user_group_stability(orig, fine, fraction))
            if per_seed:
                groups.append({"title": f"{model}, {sel} {kind} {report.ratio_label(r)}", "method": reference,
                               "model": model, "selection": sel, "kind": kind, "ratio": r, "seeds": per_seed})
    return groups


def write_report(base, grids, cells, folder, records):
    """Tables, plots and the log summary of the study's cells."""
    logger = getLogger()
    reference = base["study_reference_method"]
    methods = list(OrderedDict.fromkeys(m for g in grids for m in g["methods"]))
    stats_ = report.summarize([r for r in records if report.is_final(r)], methods=methods, reference=reference)
    groups = user_groups(base, grids, cells, folder, reference)
    text = report.write_tables(folder.root, stats_, extra={"user_groups": groups, "grids": grids, "cells": records})
    dpi = base["study_plot_dpi"]
    plots = {}
    if not all(report.is_final(r) for r in records):  # study_eval_epochs: the epoch curves
        curves = report.epoch_curves(records, methods=methods)
        write_text(os.path.join(folder.root, "epochs.md"), report.epoch_markdown(curves) + "\n")
        write_text(os.path.join(folder.root, "epochs.csv"), report.to_csv(curves))
        if report.plot_epoch_gain(records, os.path.join(folder.root, "epoch_gain.png"), methods=methods, dpi=dpi):
            plots["epoch_gain"] = "epoch_gain.png"
    if report.plot_scale(stats_["summary"], os.path.join(folder.root, "scale_rbo.png"),
                         methods=("original", reference), dpi=dpi):
        plots["scale"] = "scale_rbo.png"
    if report.plot_user_groups(groups, os.path.join(folder.root, "user_groups.png"), dpi=dpi,
                               fraction=base["study_group_fraction"]):
        plots["user_groups"] = "user_groups.png"
    if report.plot_methods(stats_["summary"], os.path.join(folder.root, "methods.png"), dpi=dpi,
                           ratio=float(grids[0]["ratios"][0])):
        plots["methods"] = "methods.png"
    logger.info(set_color("study results", "yellow") + f" ({folder.root})\n" + text)
    return {"folder": folder.root, **stats_, "user_groups": groups, "cells": records, "plots": plots}
