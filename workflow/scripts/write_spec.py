"""Rule `spec` (workflow/rules/stores.smk): write a store's spec file and remove the spec
files of the store's earlier contents.

A `script:` and not a `run:` block: Snakemake runs a `run:` job in a new Snakemake process
that parses the whole workflow again (config checks, the cost plan, the store checks),
about 10 s per spec file; a script only unpickles its job.
"""

from pathlib import Path

path, log = Path(snakemake.output[0]), Path(snakemake.log[0])  # noqa: F821 (Snakemake's)
removed = sorted(path.parent.glob(path.name.rsplit("-", 1)[0] + "-*.json"))
for old in removed:
    old.unlink()
path.write_text(snakemake.params.text)  # noqa: F821
log.write_text(f"wrote {path}; removed earlier specs {[str(p) for p in removed]}\n")
