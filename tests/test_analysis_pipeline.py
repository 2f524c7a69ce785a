"""End to end with the analysis on: `snakemake` makes stores, figures and tables for each
experiment by its declared kind (curves, finite_size; maps are drawn from pipeline stores in
test_analysis_figures), the report collects them, and a dry run after it finds
nothing left to do."""

import pandas as pd
from conftest import snakemake, tiny_config, write_config


def test_snakemake_draws_every_kind_then_a_dry_run_has_nothing_to_do(tmp_path):
    config = tiny_config()
    config["analysis"] = True
    experiments = config["experiments"]
    experiments["two"]["analysis"] = {"kind": "curves", "inset": "train_acc"}
    experiments["three"]["analysis"] = {"kind": "finite_size", "measure": "escape_time"}
    path = write_config(tmp_path / "tiny.yaml", config)
    run = snakemake(tmp_path, "--configfile", path, "--cores", "2")
    assert run.returncode == 0, run.stderr[-3000:]
    results = tmp_path / "results"
    for name in ("two", "three"):
        for out in (f"figures/{name}.png", f"figures/{name}.pdf", f"tables/{name}.csv",
                    f"tables/{name}_agreement.csv"):
            assert (results / out).stat().st_size > 0, out
    agreement = pd.read_csv(results / "tables" / "two_agreement.csv")
    assert len(agreement) == 2 * 2 * 2  # case x lam x sims d, each against its DMFT curve
    assert "Only one d has both" in (results / "tables" / "three.txt").read_text()  # 1 d
    assert set(pd.read_csv(results / "tables" / "two.csv").source) == {"dmft", "sims"}

    report = snakemake(tmp_path, "--configfile", path, "--report", tmp_path / "report.zip")
    assert report.returncode == 0, report.stderr[-3000:]
    assert "ERROR/" not in report.stdout + report.stderr  # captions: valid reStructuredText
    dry = snakemake(tmp_path, "--configfile", path, "--cores", "2", "-n")
    assert dry.returncode == 0, dry.stderr[-3000:]
    assert "Nothing to be done" in dry.stdout + dry.stderr
