"""Which Python definitions are replaced, and which are left exactly as they were."""

from __future__ import annotations

import pytest

from notebook_parameterizer import parameterize
from notebook_parameterizer.parameters import read_yaml
from tests.notebook_parameterizer.conftest import python_notebook, run_cli

UNTOUCHED = """\
def f(threshold=1):
    threshold = 2
    return threshold == 3

class C:
    threshold = 4

if True:
    threshold = 5
for i in range(2):
    threshold = 6
threshold += 7
threshold = threshold * 2
print(threshold == 8, dict(threshold=9))
s = "threshold = 10"
"""


def test_top_level_definitions_are_replaced_in_every_cell(write) -> None:
    nb = python_notebook(
        "threshold = 10000  # how many\nextra = 1",
        "import os\nthreshold: int = 5\nname = 'x'",
        'threshold = {\n    "a": [1,\n          2],\n}\nafter = True',
    )
    params = write("p.yml", "threshold: 42\nextra: 2.5\n")
    result = run_cli(write("in.ipynb", nb), params)
    assert result.returncode == 0, result.stderr
    cells = [c.source for c in result.notebook().cells]
    assert cells[1] == "threshold = 42  # how many\nextra = 2.5"
    assert cells[2] == "import os\nthreshold: int = 42\nname = 'x'"
    assert cells[3] == "threshold = 42\nafter = True"


def test_definitions_in_blocks_and_other_uses_are_left_alone(write) -> None:
    nb = python_notebook(UNTOUCHED)
    result = run_cli(write("in.ipynb", nb), write("p.yml", "threshold: 42\n"))
    assert result.returncode == 0, result.stderr
    assert result.notebook().cells[1].source == UNTOUCHED


def test_values_of_every_yaml_type_become_python_literals(write) -> None:
    nb = python_notebook("a = 0\nb = 0\nc = 0\nd = 0\ne = 0\nf = 0")
    params = write(
        "p.yml",
        'a: "multi\\nline \\"quoted\\""\nb: [1, 2.5, null]\nc: {k: true}\nd: -3\ne: .nan\nf: ~\n',
    )
    result = run_cli(write("in.ipynb", nb), params)
    namespace: dict = {}
    exec(result.notebook().cells[1].source, namespace)  # the rewritten cell is valid Python
    assert namespace["a"] == 'multi\nline "quoted"'
    assert namespace["b"] == [1, 2.5, None]
    assert namespace["c"] == {"k": True}
    assert namespace["d"] == -3
    assert namespace["e"] != namespace["e"]  # NaN
    assert namespace["f"] is None


def test_ipython_syntax_is_never_corrupted(write) -> None:
    magic_line = "%matplotlib inline\nx = 1\n!ls -l\nfiles = !ls\nx?"
    cell_magic = "%%bash\nx=1\necho $x"
    broken = "x = (1,\n"
    nb = python_notebook(magic_line, cell_magic, broken)
    result = run_cli(write("in.ipynb", nb), write("p.yml", "x: 7\n"), "--report")
    assert result.returncode == 0, result.stderr
    cells = [c.source for c in result.notebook().cells]
    assert cells[1] == "%matplotlib inline\nx = 7\n!ls -l\nfiles = !ls\nx?"
    assert cells[2] == cell_magic
    assert cells[3] == broken
    assert "cell 2 left unchanged" in result.stderr
    assert "cell 3 left unchanged" in result.stderr


def test_a_parameters_tagged_cell_is_honoured(write) -> None:
    nb = python_notebook("alpha = 0.1\nbeta = 2", "print(alpha)", tags={1: ["parameters"]})
    result = run_cli(write("in.ipynb", nb), write("p.yml", "alpha: 0.5\n"))
    out = result.notebook()
    assert out.cells[1].source == "alpha = 0.5\nbeta = 2"
    assert out.cells[1].metadata["tags"] == ["parameters"]


@pytest.mark.parametrize(
    "char", ["\x0c", "\x85", "\u2028", "\u2029", "\x0b", "\x1c", "\x1d", "\x1e"]
)
def test_line_separators_inside_strings_are_kept_byte_for_byte(char) -> None:
    # str.splitlines() splits on these; Python (and we) do not.
    source = f'label = \'a{char}b\'\nx = 1  # keep\r\ntext = """{char}\n"""\ny = 2'
    nb, report = parameterize(python_notebook(source), {"x": 5, "y": "z"})
    assert nb.cells[1].source == source.replace("x = 1", "x = 5").replace("y = 2", 'y = "z"')
    assert [(r.parameter, r.line) for r in report.replacements] == [("x", 2), ("y", 5)]


def test_a_form_feed_between_statements_is_kept() -> None:
    source = "a = 1\n\x0c\nb = 2"
    nb, _ = parameterize(python_notebook(source), {"b": 3})
    assert nb.cells[1].source == "a = 1\n\x0c\nb = 3"


def test_cells_that_name_no_parameter_are_not_touched() -> None:
    broken = "def f(:\n  pass"  # would be reported if it were parsed
    nb, report = parameterize(python_notebook(broken, "x = 1"), {"x": 2})
    assert nb.cells[1].source == broken
    assert report.skipped == []
    assert nb.cells[2].source == "x = 2"


def test_fullwidth_identifiers_are_the_same_name() -> None:
    source = "\uff54hreshold = 1"  # Python reads this as threshold
    nb, report = parameterize(python_notebook(source), {"threshold": 2})
    assert nb.cells[1].source == "threshold = 2"
    assert [r.parameter for r in report.replacements] == ["threshold"]


YAML_VALUES = [
    # (YAML, the cell before, the cell after)
    ("p: 0123", "p = 0", 'p = "0123"'),  # not octal 83
    ("p: 12:30", "p = 0", 'p = "12:30"'),  # not sexagesimal 750
    ("p: NO", "p = 'x'", 'p = "NO"'),  # not False ...
    ("p: NO", "p = True", "p = False"),  # ... unless it replaces a boolean
    ("p: on", "p: bool = False", "p: bool = True"),
    ("p: yes", "p = 1", 'p = "yes"'),
    ("p: true", "p = 'x'", "p = True"),
    ("p: 2021-06-01", "p = 0", 'p = "2021-06-01"'),
    ("p: 1_000", "p = 0", 'p = "1_000"'),
    ("p: 0x1F", "p = 0", "p = 31"),
    ("p: 1e3", "p = 0", "p = 1000.0"),
    ("p: -.inf", "p = 0", "p = float('-inf')"),
    ("p: [NO, 010]", "p = 0", 'p = ["NO", "010"]'),
]


@pytest.mark.parametrize(("text", "before", "after"), YAML_VALUES)
def test_yaml_values_mean_what_they_look_like(text, before, after) -> None:
    nb, _ = parameterize(python_notebook(before), read_yaml(text))
    assert nb.cells[1].source == after
