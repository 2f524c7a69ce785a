"""The README's Python examples run as written (a user pastes them into a notebook)."""

import re

import matplotlib
import pytest

from conftest import ROOT

matplotlib.use("Agg")
EXAMPLES = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)


def test_the_readme_has_its_examples():
    assert len(EXAMPLES) >= 3  # the mixture, two-layer networks, a store in a notebook


@pytest.mark.parametrize("index", [i for i, code in enumerate(EXAMPLES)
                                   if "results/" not in code])
def test_a_readme_example_runs(index, tmp_path, monkeypatch):
    """Each example that needs no pipeline results runs in a fresh namespace (the one that
    reads results/fig1_left needs the README's first command run before it)."""
    monkeypatch.chdir(tmp_path)
    exec(compile(EXAMPLES[index], f"README example {index}", "exec"), {})
