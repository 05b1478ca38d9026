"""Kernels other than Python: papermill's translators write the new definitions."""

from __future__ import annotations

from nbformat.v4 import new_code_cell, new_notebook

from notebook_parameterizer import parameterize
from tests.notebook_parameterizer.conftest import run_cli


def notebook(language: str, kernel: str, *sources: str):
    nb = new_notebook()
    nb.metadata["kernelspec"] = {"name": kernel, "language": language, "display_name": kernel}
    nb.cells = [new_code_cell(s) for s in sources]
    return nb


def test_r_top_level_definitions_only(write) -> None:
    nb = notebook(
        "R",
        "ir",
        "threshold <- 10\nf <- function() {\n  threshold <- 3\n}\nlabel = 'a'",
        "x <- c(1,\n  2)\ny <- x",
    )
    params = write("p.yml", "threshold: 50\nlabel: b\nx: [3, 4]\n")
    result = run_cli(write("in.ipynb", nb), params, "--report")
    assert result.returncode == 0, result.stderr
    cells = [c.source for c in result.notebook().cells]
    assert cells[0] == 'threshold = 50\nf <- function() {\n  threshold <- 3\n}\nlabel = "b"'
    assert cells[1] == "x <- c(1,\n  2)\ny <- x"  # a multi-line definition is left, and said so
    assert "x at line 1 spans several lines" in result.stderr


def test_julia_and_bash(write) -> None:
    julia = notebook("julia", "julia-1.10", "n = 1\n  n = 2\nm == 3")
    nb, report = parameterize(julia, {"n": 9, "m": 1})
    assert nb.cells[0].source == "n = 9\n  n = 2\nm == 3"
    assert [r.parameter for r in report.replacements] == ["n"]
    bash = notebook("bash", "bash", "DIR=/tmp\necho $DIR")
    nb, _ = parameterize(bash, {"DIR": "/my data"})
    assert nb.cells[0].source == "DIR='/my data'\necho $DIR"  # shell-quoted
