"""scripts/experiments/paper_variants.py, paper_tables.py and tuning_table.py: the tables of issue 14.

Cells are written with ``StudyFolder.write_cell`` as a study writes them; the tables must
average only the seeds finished in every folder, order FINEST by simulation ratio, and give
the paired difference and the study's one-tailed Welch p, computed here by hand.
"""

import importlib.util
import json
import os

import numpy as np
import pytest
from scipy import stats

from recbole_finest.study.folder import StudyFolder

SCRIPT = os.path.join(os.path.dirname(__file__), os.pardir, "scripts", "experiments", "paper_variants.py")
GROUP = ("random", "deletion", 0.001)


def _script(name="paper_variants"):
    spec = importlib.util.spec_from_file_location(name, os.path.join(os.path.dirname(SCRIPT), f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _write(folder, seed, method, rbo, jaccard, method_config=None, epoch=None, group=GROUP):
    label = method if epoch is None else f"{method}@e{epoch}"
    record = {"model": "SASRec", "dataset": "d", "seed": seed, "selection": group[0], "kind": group[1],
              "ratio": group[2], "method": label, "base_method": method,
              "epoch": 0 if method == "original" else epoch or 50, "method_config": method_config or {},
              "metrics": {"rbo": rbo, "jaccard@10": jaccard, "mrr": 0.5 + seed % 7 / 100, "recall@10": 0.7,
                          "ndcg@10": 0.6}}
    StudyFolder(str(folder)).write_cell(("SASRec", seed, *group, label), record, None)


def _row(text, name):
    line = next(line for line in text.splitlines() if line.startswith(f"| {name} |"))
    return [c.strip() for c in line.strip("|").split("|")]


def test_simulation_table_pairs_seeds_and_tests_finest_against_no_sim(tmp_path):
    main, sim5 = tmp_path / "d", tmp_path / "d-sim5"
    no_sim = {2020: 0.90, 2021: 0.91, 2022: 0.92}
    finest = {2020: 0.93, 2021: 0.92, 2022: 0.95}
    finest5 = {2020: 0.94, 2021: 0.96}  # seed 2022 not finished in the variant folder
    for seed in no_sim:
        _write(main, seed, "original", 0.8 + seed % 3 / 100, 0.5 + seed % 3 / 100)
        _write(main, seed, "finest_no_sim", no_sim[seed], no_sim[seed] - 0.1)
        _write(main, seed, "finest", finest[seed], finest[seed] - 0.1)
    for seed, v in finest5.items():
        _write(sim5, seed, "original", 0.8 + seed % 3 / 100, 0.5 + seed % 3 / 100)
        _write(sim5, seed, "finest", v, v - 0.1, {"finest_sim_ratio": 0.05})
    for seed in no_sim:  # CASPER cells in the main folder: not read (the variants are on random deletion)
        _write(main, seed, "finest", 0.5, 0.4, group=("casper", "deletion", 0.001))
    text = _script().tables(str(main), ["sim5", "sim10", "independent"])

    assert "Simulation ratio (seeds 2020, 2021):" in text  # the seeds every row has
    seeds = [2020, 2021]
    lines = text.splitlines()
    one = lines.index(next(x for x in lines if x.startswith("| FINEST, simulation 1% ")))
    five = lines.index(next(x for x in lines if x.startswith("| FINEST, simulation 5% ")))
    assert one < five
    row = _row(text, "FINEST, simulation 5% per epoch")
    mean, std = np.mean([finest5[s] for s in seeds]), np.std([finest5[s] for s in seeds], ddof=1)
    assert row[1] == f"{mean:.4f} ± {std:.4f}"
    assert row[5] == f"{np.mean([finest5[s] - no_sim[s] for s in seeds]):+.4f}"
    p = stats.ttest_ind([finest5[s] for s in seeds], [no_sim[s] for s in seeds], equal_var=False,
                        alternative="greater").pvalue
    assert row[6] == f"{p:.3f}"
    assert "no seed finished in every folder" not in text.split("Reference protocol")[0]
    assert "WARNING" not in text
    row = _row(text, "FINEST, simulation 1% per epoch")
    assert row[1] == f"{np.mean([finest[s] for s in seeds]):.4f} ± {np.std([finest[s] for s in seeds], ddof=1):.4f}"
    casper = _script().final_cells(str(main), selection="casper")
    assert sorted(casper) == [("finest", s) for s in sorted(no_sim)]
    assert {r["metrics"]["rbo"] for r in casper.values()} == {0.5}


def test_a_variant_with_other_pretrained_models_is_flagged(tmp_path, capsys):
    main, indep = tmp_path / "d", tmp_path / "d-independent"
    for seed in (2020, 2021):
        _write(main, seed, "original", 0.8 - seed % 2 / 100, 0.5)
        _write(main, seed, "finest", 0.9 + seed % 2 / 100, 0.7)
        _write(indep, seed, "original", 0.8 + 1e-7 if seed == 2020 else 0.7, 0.5)  # 2020: round-off
        _write(indep, seed, "finest", 0.85 + seed % 2 / 50, 0.6)
    text = _script().tables(str(main), ["independent"])
    out = capsys.readouterr().out
    assert "Original of seed 2021 differs" in out and "seed 2020" not in out
    row = _row(text, "FINEST, independent")
    assert row[5] == f"{np.mean([0.85 - 0.8, 0.87 - 0.79]):+.4f}"  # over the main study's Original, by seed
    assert _row(text, "FINEST, shared")[1] == f"{np.mean([0.9, 0.91]):.4f} ± {np.std([0.9, 0.91], ddof=1):.4f}"
    with pytest.raises(StopIteration):
        _row(text, "finest_no_sim, independent")  # no cells: no row


def test_results_block_gains_by_seed_and_tests_against_the_best_baseline(tmp_path):
    """paper_tables --fill: the gain column is paired by seed, the best baseline is the best method
    that is not a FINEST variant, its p is the one-tailed Welch p; the block replaces its markers."""
    tables = _script("paper_tables")
    values = {"original": (0.80, 0.82), "finest": (0.95, 0.97), "finest_no_sim": (0.96, 0.965),
              "random": (0.78, 0.77), "acae": (0.85, 0.88)}
    for method, by_seed in values.items():
        for seed, v in zip((2020, 2021), by_seed):
            _write(tmp_path, seed, method, v, v - 0.3)
            if method != "original":
                _write(tmp_path, seed, method, v - 0.05, v - 0.35, epoch=5)
                _write(tmp_path, seed, method, v - 0.01, v - 0.31, epoch=20)
    records = tables.complete_seeds(StudyFolder(str(tmp_path)).records())
    block = tables.results_block(records, ["original", "finest", "finest_no_sim", "random", "acae"])
    row = _row(block, "FINEST")
    assert row[1:3] == [f"{np.mean([0.90, 0.92]):.4f}", f"{np.mean([0.94, 0.96]):.4f}"]  # epochs 5, 20
    assert row[3] == f"{np.mean([0.95, 0.97]):.4f} ± {np.std([0.95, 0.97], ddof=1):.4f}"
    assert row[4] == f"{np.mean([100 * (0.95 - 0.80) / 0.80, 100 * (0.97 - 0.82) / 0.82]):+.1f}%"
    best = next(line for line in block.splitlines() if "best baseline" in line)
    assert "best baseline, acae" in best  # finest_no_sim is higher but an ablation, not a baseline
    p = stats.ttest_ind([0.95, 0.97], [0.85, 0.88], equal_var=False, alternative="greater").pvalue
    assert f"RBO {100 * (0.96 - 0.865) / 0.865:+.1f}% (p {p:.3f})" in best

    doc = tmp_path / "results.md"
    doc.write_text("before\n<!-- D_TABLE -->\nold\n<!-- /D_TABLE -->\nafter\n")
    tables.fill(str(doc), {"D_TABLE": "new"})
    assert doc.read_text() == "before\n<!-- D_TABLE -->\nnew\n<!-- /D_TABLE -->\nafter\n"
    doc.write_text("<!-- D_TABLE -->\n<!-- /D_TABLE -->\n")  # an empty block
    tables.fill(str(doc), {"D_TABLE": "new\nlines"})
    assert doc.read_text() == "<!-- D_TABLE -->\nnew\nlines\n<!-- /D_TABLE -->\n"
    with pytest.raises(SystemExit, match="E_TABLE"):
        tables.fill(str(doc), {"E_TABLE": "x"})


def test_a_method_added_later_cuts_seeds_unless_the_methods_are_named(tmp_path):
    """A method run on one seed of a finished study: by default every method is averaged over that
    seed only; only_methods leaves it out, so the others keep all their seeds."""
    tables = _script("paper_tables")
    for seed in (2020, 2021, 2022):
        _write(tmp_path, seed, "original", 0.80 + seed % 3 / 100, 0.5)
        _write(tmp_path, seed, "finest", 0.95, 0.7)
        _write(tmp_path, seed, "finest", 0.93, 0.68, epoch=20)
    _write(tmp_path, 2020, "vat", 0.85, 0.6)
    records = StudyFolder(str(tmp_path)).records()
    assert {r["seed"] for r in tables.complete_seeds(records)} == {2020}
    kept = tables.complete_seeds(tables.only_methods(records, {"original", "finest"}))
    assert {r["seed"] for r in kept} == {2020, 2021, 2022}
    assert {r["method"] for r in kept} == {"original", "finest", "finest@e20"}  # every epoch of a method
    assert tables.only_methods(records, set()) == records


def test_fill_writes_one_block_per_selection_and_never_mixes_them(tmp_path):
    """Random and CASPER cells of one folder: two blocks, each averaged over its own cells only; a
    group whose seeds are not all finished has no block; two kinds under one name are an error."""
    tables = _script("paper_tables")
    casper = ("casper", "deletion", 0.001)
    for seed in (2020, 2021):
        _write(tmp_path, seed, "original", 0.80, 0.5)
        _write(tmp_path, seed, "finest", 0.95 + seed % 2 / 100, 0.7)
        _write(tmp_path, seed, "original", 0.70, 0.4, group=casper)
        _write(tmp_path, seed, "finest", 0.90 - seed % 2 / 100, 0.6, group=casper)
    _write(tmp_path, 2022, "original", 0.1, 0.1, group=casper)  # seed 2022 of CASPER not finished
    blocks = tables.table_blocks(tables.complete_seeds(StudyFolder(str(tmp_path)).records()))
    assert sorted(blocks) == ["D_SASREC_CASPER_TABLE", "D_SASREC_RANDOM_TABLE"]
    assert {r["selection"] for r in blocks["D_SASREC_CASPER_TABLE"]} == {"casper"}
    assert {r["seed"] for r in blocks["D_SASREC_CASPER_TABLE"]} == {2020, 2021}
    block = tables.results_block(blocks["D_SASREC_CASPER_TABLE"], ["original", "finest"])
    assert _row(block, "FINEST")[3] == f"{np.mean([0.90, 0.89]):.4f} ± {np.std([0.90, 0.89], ddof=1):.4f}"
    assert _row(block, "Original")[3] == "0.7000 ± 0.0000"
    _write(tmp_path, 2020, "original", 0.7, 0.4, group=("casper", "insertion", 0.001))
    with pytest.raises(SystemExit, match="D_SASREC_CASPER_TABLE"):
        tables.table_blocks(StudyFolder(str(tmp_path)).records())


def test_each_epoch_panel_shows_its_own_best_baseline(tmp_path):
    """paper_epoch_plot: acae is the best baseline on random deletion and vat on CASPER; each
    panel keeps FINEST, finest_no_sim, Original and its own best only."""
    plot = _script("paper_epoch_plot")
    casper = ("casper", "deletion", 0.001)
    rbo = {GROUP: {"acae": 0.86, "vat": 0.84}, casper: {"acae": 0.80, "vat": 0.83}}
    for group, baselines in rbo.items():
        for method, v in {"original": 0.8, "finest": 0.95, "finest_no_sim": 0.94, **baselines}.items():
            _write(tmp_path, 2020, method, v, v - 0.3, group=group)
            if method != "original":
                _write(tmp_path, 2020, method, v, v - 0.3, group=group, epoch=5)
    cells, methods = plot.panel_cells(StudyFolder(str(tmp_path)).records())
    assert methods[:2] == ["finest", "finest_no_sim"] and sorted(methods[2:]) == ["acae", "vat"]
    shown = {(c["selection"], c["base_method"]) for c in cells}
    assert shown == {(sel, m) for sel, best in (("random", "acae"), ("casper", "vat"))
                     for m in ("original", "finest", "finest_no_sim", best)}
    cells, methods = plot.panel_cells(StudyFolder(str(tmp_path)).records(), ["finest", "vat"])
    assert methods == ["finest", "vat"] and {c["base_method"] for c in cells} == {"original", "finest", "vat"}
    assert plot.report.plot_epoch_gain(cells, str(tmp_path / "g.png"), methods=methods) == 2


def _tuning_record(keep, model, method, params, rbo, baseline_rbo=0.8):
    os.makedirs(keep / "chosen", exist_ok=True)
    os.makedirs(keep / f"{model}-{method}", exist_ok=True)
    metrics = {"rbo": rbo, "jaccard@10": rbo - 0.2, "ndcg@10": 0.7, "mrr": 0.6}
    (keep / "chosen" / f"{model}-{method}.json").write_text(
        json.dumps({"method": method, "model": model, "params": params, "metrics": metrics}))
    baseline = {"rbo": baseline_rbo, "jaccard@10": 0.5, "ndcg@10": 0.71, "mrr": 0.6}
    (keep / f"{model}-{method}" / "summary.json").write_text(json.dumps({"baseline": baseline}))


def test_tuning_table_rows_follow_the_study_order_with_each_methods_own_knob(tmp_path):
    """tuning_table: one Original row from the shared baseline, then the methods in METHODS order
    (acae before vat whatever the file order), each with its own strength knob; another model's
    records are ignored; searches with different baselines (other pre-trained pairs) are refused."""
    table = _script("tuning_table")
    _tuning_record(tmp_path, "BERT4Rec", "vat", {"finest_learning_rate": 3.1e-4, "vat_rho": 1.16}, 0.77)
    _tuning_record(tmp_path, "BERT4Rec", "acae", {"finest_learning_rate": 2e-3, "adv_eps": 0.58}, 0.78)
    _tuning_record(tmp_path, "SASRec", "finest", {"finest_learning_rate": 5e-4, "finest_lambda": 3.3}, 0.95, 0.9)
    text = table.tuning_table(str(tmp_path), "BERT4Rec")
    rows = [line for line in text.splitlines() if line.startswith("| BERT4Rec |")]
    assert [r.split("|")[2].strip() for r in rows] == ["Original (not fine-tuned)", "acae", "vat"]
    assert _row(text, "BERT4Rec")[4:] == ["0.8000", "0.5000", "0.7100"]
    acae = rows[1].split("|")
    assert acae[3].strip() == "2.00e-03" and acae[4].strip() == "`adv_eps` 0.58" and acae[5].strip() == "0.7800"
    assert rows[2].split("|")[4].strip() == "`vat_rho` 1.16"
    _tuning_record(tmp_path, "BERT4Rec", "finest", {"finest_learning_rate": 1e-3, "finest_lambda": 8.0}, 0.87, 0.7)
    with pytest.raises(SystemExit, match="did not share the pre-trained pair"):
        table.tuning_table(str(tmp_path), "BERT4Rec")
