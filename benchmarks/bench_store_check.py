"""The cheap store check (issue 19): how long Snakemake's check of a finished store takes
before every run, against the floor of one os.stat per file, measured in the same run.

A store-like folder with N chunk files (10 variables, 4 kB each, plus .zarray/.zattrs and
one task marker per 10 chunks) is written to a temporary folder; then:
  manifest   write_manifest from scratch (reads and checksums every file, once per job),
  check      changed_files (stat only: what the Snakefile runs before every run),
  floor      os.stat of every file (the least any stat-based check must do),
  damage     manifest_damage after one chunk was rewritten with the same size (checksums
             only the changed file).
Target: check under 1 s at N = 10^4.

Usage: python benchmarks/bench_store_check.py [N ...]
"""

import os
import sys
import tempfile
import time
from pathlib import Path

from workflow.verify import _files, changed_files, manifest_damage, write_manifest

REPEATS = 5


def fake_store(root: Path, n_chunks: int) -> list[Path]:
    files = []
    for v in range(10):
        folder = root / f"var{v}"
        folder.mkdir()
        for name in (".zarray", ".zattrs"):
            (folder / name).write_text("{}")
        for c in range(n_chunks // 10):
            path = folder / f"0.{c}.0"
            path.write_bytes(os.urandom(4096))
            files.append(path)
    for c in range(n_chunks // 10):
        marker = root / ".tasks" / f"unit-{c}"
        marker.mkdir(parents=True)
        (marker / "t.json").write_text('{"key": "unit"}')
    return files


def best(fn) -> float:
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main(sizes):
    print(f"{'chunks':>7} {'files':>7} {'manifest s':>11} {'check s':>8} {'floor s':>8} "
          f"{'check/floor':>12} {'damage s':>9}")
    for n in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            chunks = fake_store(root, n)
            n_files = len(_files(root))
            start = time.perf_counter()
            write_manifest(root)
            manifest = time.perf_counter() - start
            check = best(lambda: changed_files(root))
            paths = [root / rel for rel in _files(root)]
            floor = best(lambda: [os.stat(p) for p in paths])
            chunks[0].write_bytes(os.urandom(4096))
            damage = best(lambda: manifest_damage(root))
            assert list(manifest_damage(root)) == [str(chunks[0].relative_to(root))]
            print(f"{n:>7} {n_files:>7} {manifest:>11.3f} {check:>8.3f} {floor:>8.3f} "
                  f"{check / floor:>12.2f} {damage:>9.3f}")


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [1000, 10000, 100000])
