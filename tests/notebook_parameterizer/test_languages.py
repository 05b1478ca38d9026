"""Kernels other than Python: only the value of a definition is replaced, the rest of the line kept.

One table per language: (cell source, parameters as YAML, expected source). A source that is
expected unchanged and is reported as spanning several lines is marked with SKIPPED.
"""

from __future__ import annotations

import pytest
from nbformat.v4 import new_code_cell, new_notebook

from notebook_parameterizer import parameterize
from notebook_parameterizer.parameters import read_yaml
from tests.notebook_parameterizer.conftest import run_cli

SKIPPED = object()


def notebook(language: str, kernel: str, *sources: str):
    nb = new_notebook()
    nb.metadata["kernelspec"] = {"name": kernel, "language": language, "display_name": kernel}
    nb.cells = [new_code_cell(s) for s in sources]
    return nb


def check(language: str, kernel: str, source: str, params: str, expected) -> None:
    nb, report = parameterize(notebook(language, kernel, source), read_yaml(params))
    if expected is SKIPPED:
        assert nb.cells[0].source == source
        assert any("spans several lines" in reason for _, reason in report.skipped), report
    else:
        assert nb.cells[0].source == expected
        assert report.replacements, report


MATLAB = [
    ("a=1; b=2;", "a: 5", "a=5; b=2;"),
    ("a = 1;  % the first", "a: 5", "a = 5;  % the first"),
    ("a = 1 # octave comment", "a: 5", "a = 5 # octave comment"),
    ("s = 'x'; t = s;", "s: y", 's = "y"; t = s;'),
    ("flag = true;", "flag: NO", "flag = false;"),
    ("name = 'a';", "name: NO", 'name = "NO";'),
    ("v = [1, 2, ...\n  3];", "v: [4]", SKIPPED),
    ("x = 1;\n  x = 2;", "x: 3", "x = 3;\n  x = 2;"),
]


@pytest.mark.parametrize(("source", "params", "expected"), MATLAB)
@pytest.mark.parametrize(("language", "kernel"), [("matlab", "imatlab"), ("octave", "octave")])
def test_matlab_and_octave(language, kernel, source, params, expected) -> None:
    check(language, kernel, source, params, expected)


BASH = [
    ("x=1; y=2", "x: 5", "x=5; y=2"),
    ("x=1 # note", "x: 5", "x=5 # note"),
    ("x=1 y=2 ./run.sh", "x: 5", "x=5 y=2 ./run.sh"),
    ("export DIR=/tmp", "DIR: /my data", "export DIR='/my data'"),
    ('x="a b"; echo "$x"', "x: c", 'x=c; echo "$x"'),
    ("x=", "x: 3", "x=3"),
    ("x=$(ls\n)", "x: 1", SKIPPED),
    ("x =1", "x: 3", "x =1"),  # a command named x, not a definition
]


@pytest.mark.parametrize(("source", "params", "expected"), BASH)
def test_bash(source, params, expected) -> None:
    if expected == source:
        nb, report = parameterize(notebook("bash", "bash", source), read_yaml(params))
        assert nb.cells[0].source == source and not report.replacements
        return
    check("bash", "bash", source, params, expected)


R = [
    ("threshold <- 10  # how many", "threshold: 50", "threshold <- 50  # how many"),
    ("label = 'a'", "label: b", 'label = "b"'),
    ("x <<- 1", "x: 2", "x <<- 2"),
    ("v <- 1; w <- 2", "v: 3", "v <- 3; w <- 2"),
    ("s <- 'a # not a comment' # real", "s: b", 's <- "b" # real'),
    ("flag <- TRUE", "flag: off", "flag <- FALSE"),
    ("flag <- T", "flag: yes", "flag <- TRUE"),
    ("x <- 1", "x: .nan", "x <- NaN"),
    ("x <- c(1,\n  2)", "x: [3]", SKIPPED),
    ("x <- 1 %>%\n  f()", "x: 3", SKIPPED),
]


@pytest.mark.parametrize(("source", "params", "expected"), R)
def test_r(source, params, expected) -> None:
    check("R", "ir", source, params, expected)


SCALA = [
    ("val x: Int = 1", "x: 5", "val x: Int = 5"),
    ("var x = 1", "x: 5", "var x = 5"),
    ('var name = "a" // who', "name: b", 'var name = "b" // who'),
    ("val m = Map(\n  1 -> 2)", "m: 1", SKIPPED),
    ("val r = 0.5", "r: .inf", "val r = Double.PositiveInfinity"),
]


@pytest.mark.parametrize(("source", "params", "expected"), SCALA)
def test_scala(source, params, expected) -> None:
    check("scala", "scala", source, params, expected)


KOTLIN = [
    ("val x = 1", "x: 5", "val x = 5"),
    ("var x: Long = 1", "x: 5", "var x: Long = 5"),
    ("const val n = 1 // max", "n: 3000000000", "const val n = 3000000000L // max"),
    ('var s: String = "a"', "s: x$y", 'var s: String = "x\\$y"'),
    ("val l = listOf(1)", "l: [a, 1]", 'val l = listOf("a", 1)'),
    ("val ok = true", "ok: no", "val ok = false"),
]


@pytest.mark.parametrize(("source", "params", "expected"), KOTLIN)
def test_kotlin(source, params, expected) -> None:
    check("kotlin", "kotlin", source, params, expected)


JULIA = [
    ("const n = 1", "n: 9", "const n = 9"),
    ("n = 1 # count", "n: 9", "n = 9 # count"),
    ("global s = 1", "s: $HOME", 'global s = "\\$HOME"'),
    ("n::Int = 1", "n: 2", "n::Int = 2"),
    ("x = 1.0", "x: .nan", "x = NaN"),
    ("n == 1", "n: 9", "n == 1"),
]


@pytest.mark.parametrize(("source", "params", "expected"), JULIA)
def test_julia(source, params, expected) -> None:
    if expected == source:
        nb, report = parameterize(notebook("julia", "julia-1.10", source), read_yaml(params))
        assert nb.cells[0].source == source and not report.replacements
        return
    check("julia", "julia-1.10", source, params, expected)


JAVASCRIPT = [
    ("let x = 1;", "x: 5", "let x = 5;"),
    ("const s = 'a'; // note", "s: b", 'const s = "b"; // note'),
    ("var o = {a: 1};", "o: {k: [1, null]}", 'var o = {"k": [1, null]};'),
    ("x = 1", "x: 2", "x = 2"),
    ("const f = (a) => a", "f: 1", "const f = 1"),
    ("const x = 1.5", "x: -.inf", "const x = -Infinity"),
    ("const a = [1,\n  2];", "a: 3", SKIPPED),
]


@pytest.mark.parametrize(("source", "params", "expected"), JAVASCRIPT)
def test_javascript(source, params, expected) -> None:
    check("javascript", "javascript", source, params, expected)


def test_typescript_keeps_the_type() -> None:
    check("typescript", "deno", "const n: number = 1;", "n: 2", "const n: number = 2;")


def test_csharp_fsharp_powershell() -> None:
    check("C#", ".net-csharp", "var n = 1; // count", "n: 2", "var n = 2; // count")
    check("F#", ".net-fsharp", "let mutable n = 1", "n: 2", "let mutable n = 2")
    check("PowerShell", ".net-powershell", "$n = 1 # count", "n: 2", "$n = 2 # count")


def test_r_top_level_definitions_only_through_the_cli(write) -> None:
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
    assert cells[0] == 'threshold <- 50\nf <- function() {\n  threshold <- 3\n}\nlabel = "b"'
    assert cells[1] == "x <- c(1,\n  2)\ny <- x"  # a multi-line definition is left, and said so
    assert "x at line 1 spans several lines" in result.stderr


@pytest.mark.parametrize("separator", ["\x0c", "\x85", "\u2028", "\x0b", "\x1e", "\r"])
def test_other_kernels_split_lines_only_on_newlines(separator) -> None:
    source = f"label <- 'a{separator}b'\nn <- 1\r\nm <- 2"
    nb, _ = parameterize(notebook("R", "ir", source), {"n": 7})
    assert nb.cells[0].source == source.replace("n <- 1", "n <- 7")
