"""The command line: options, provenance, idempotence and clear errors."""

from __future__ import annotations

import json
import os

import nbformat
import pytest

from tests.notebook_parameterizer.conftest import python_notebook, run_cli

LISTING_9 = """\
extra: 1
infile: ENV_WORKFLOW_INPUT_PATH
outfile_insufficent: ENV_outfile_insufficent
outfile_thresholded: ENV_outfile_thresholded
threshold: 10000
"""
RECIPE = (
    "infile = 'data.hdf5'\noutfile_insufficent = 'a.png'\noutfile_thresholded = 'b.png'",
    "extra = 0\nthreshold = 10",
)


def env_with(**values: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(values)
    return env


def test_thesis_listing_9_with_environment_expansion(write) -> None:
    nb, params = write("in.ipynb", python_notebook(*RECIPE)), write("p.yml", LISTING_9)
    env = env_with(
        WORKFLOW_INPUT_PATH="/data/in.hdf5",
        outfile_insufficent="/out/ins.png",
        outfile_thresholded="/out/thr.png",
    )
    out = write("placeholder", "")
    result = run_cli(nb, params, "-e", "-o", out, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    parameterized = nbformat.read(out, as_version=4)
    assert parameterized.cells[1].source == (
        'infile = "/data/in.hdf5"\noutfile_insufficent = "/out/ins.png"\n'
        'outfile_thresholded = "/out/thr.png"'
    )
    assert parameterized.cells[2].source == "extra = 1\nthreshold = 10000"
    provenance = parameterized.metadata["notebook_parameterizer"]
    assert provenance["parameters"]["infile"] == "ENV_WORKFLOW_INPUT_PATH"  # never the value
    assert {"parameter": "threshold", "cell": 2, "line": 2} in provenance["replaced"]


def test_missing_environment_variable_is_named(write) -> None:
    nb, params = write("in.ipynb", python_notebook(*RECIPE)), write("p.yml", LISTING_9)
    env = {k: v for k, v in os.environ.items() if k != "WORKFLOW_INPUT_PATH"}
    result = run_cli(nb, params, "-e", env=env)
    assert result.returncode != 0
    assert "environment variable WORKFLOW_INPUT_PATH is not set" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_without_e_env_values_stay_strings(write) -> None:
    nb, params = write("in.ipynb", python_notebook(*RECIPE)), write("p.yml", LISTING_9)
    result = run_cli(nb, params)
    assert 'infile = "ENV_WORKFLOW_INPUT_PATH"' in result.notebook().cells[1].source


def test_p_overrides_the_file_with_yaml_types(write) -> None:
    nb = write("in.ipynb", python_notebook("n = 1\nratio = 0.1\nflag = False\nlabel = 'a'"))
    params = write("p.yml", "n: 5\nratio: 0.2\n")
    result = run_cli(nb, params, "-p", "n", "12", "-p", "flag", "true", "-p", "label", "hello")
    assert result.returncode == 0, result.stderr
    assert result.notebook().cells[1].source == 'n = 12\nratio = 0.2\nflag = True\nlabel = "hello"'


def test_strict_fails_on_a_parameter_defined_nowhere(write) -> None:
    nb, params = write("in.ipynb", python_notebook("a = 1")), write("p.yml", "a: 2\nzeta: 3\n")
    assert run_cli(nb, params).returncode == 0
    result = run_cli(nb, params, "--strict")
    assert result.returncode != 0
    assert "not defined in the notebook: zeta" in result.stderr


def test_report_names_cell_and_line(write) -> None:
    nb = python_notebook("x = 1", "import math\ny = 2")
    result = run_cli(write("in.ipynb", nb), write("p.yml", "y: 3\nq: 1\n"), "--report")
    cell_id = nbformat.reads(result.stdout, as_version=4).cells[2].id
    assert f"y: cell 2 (id {cell_id}), line 2" in result.stderr
    assert "q: not defined in the notebook" in result.stderr


def test_ids_metadata_outputs_are_kept_and_reruns_are_identical(write) -> None:
    nb = python_notebook("x = 1", "print(x)")
    nb.metadata["custom"] = {"course": "HPPC"}
    nb.cells[2].outputs = [nbformat.v4.new_output("stream", name="stdout", text="1\n")]
    nb.cells[2].metadata["collapsed"] = True
    path = write("in.ipynb", nb)
    first_out, second_out = write("o1.ipynb", ""), write("o2.ipynb", "")
    params = write("p.yml", "x: 2\n")
    assert run_cli(path, params, "-o", first_out).returncode == 0
    assert run_cli(first_out, params, "-o", second_out).returncode == 0
    assert first_out.read_bytes() == second_out.read_bytes()
    out = nbformat.read(first_out, as_version=4)
    assert [c.id for c in out.cells] == [c.id for c in nb.cells]
    assert out.metadata["custom"] == {"course": "HPPC"}
    assert out.cells[2].outputs[0]["text"] == "1\n"
    assert out.cells[2].metadata["collapsed"] is True


@pytest.mark.parametrize(
    ("make_args", "message"),
    [
        (lambda w: [w.parent / "missing.ipynb", w("p.yml", "a: 1\n")], "cannot read notebook"),
        (lambda w: [w("bad.ipynb", "{not json"), w("p.yml", "a: 1\n")], "is not valid JSON"),
        (
            lambda w: [w("in.ipynb", python_notebook("a=1")), w("p.yml", "a: [1\n")],
            "not valid YAML",
        ),
        (
            lambda w: [w("in.ipynb", python_notebook("a=1")), w("p.yml", "- 1\n")],
            "must be a mapping",
        ),
        (
            lambda w: [w("in.ipynb", python_notebook("a=1")), w.parent / "none.yml"],
            "cannot read parameters",
        ),
        (
            lambda w: [
                w("in.ipynb", python_notebook("a=1")),
                w("p.yml", "a: 1\n"),
                "-o",
                "/proc/x/y.ipynb",
            ],
            "cannot write /proc/x/y.ipynb",
        ),
    ],
)
def test_bad_input_gives_one_clear_line(write, make_args, message) -> None:
    write.parent = write("anchor", "").parent
    result = run_cli(*make_args(write))
    assert result.returncode != 0
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr


def test_unknown_kernel_language_is_an_error(write) -> None:
    nb = python_notebook("a = 1")
    nb.metadata["kernelspec"] = {"name": "cobol", "language": "cobol", "display_name": "COBOL"}
    result = run_cli(write("in.ipynb", nb), write("p.yml", "a: 2\n"))
    assert result.returncode != 0
    assert "unknown kernel language 'cobol'" in result.stderr


def test_provenance_is_json(write) -> None:
    nb = write("in.ipynb", python_notebook("when = 0"))
    result = run_cli(nb, write("p.yml", "when: 2021-06-01\n"))
    provenance = result.notebook().metadata["notebook_parameterizer"]
    assert json.dumps(provenance)
    assert provenance["parameters"] == {"when": "2021-06-01"}


def _no_source_notebook(w):
    nb = python_notebook("a = 1")
    del nb.cells[1]["source"]
    return w("in.ipynb", json.dumps(nb))


@pytest.mark.parametrize(
    ("make_args", "message"),
    [
        (
            lambda w: [
                w("in.ipynb", python_notebook("a=1")),
                w("p.yml", "a: 1\n"),
                "-o",
                w.parent / "no" / "o.ipynb",
            ],
            "the directory",
        ),
        (lambda w: [w.parent, w("p.yml", "a: 1\n")], "Is a directory"),
        (lambda w: [_no_source_notebook(w), w("p.yml", "a: 1\n")], "cell 1 has no source"),
        (
            lambda w: [w("in.ipynb", python_notebook("a=1")), w("p.yml", "a: 1\n"), "--nope"],
            "--nope",
        ),
        (lambda w: [w("in.ipynb", python_notebook("a=1"))], "required: PARAMETERS_PATH"),
        (
            lambda w: [
                w("in.ipynb", python_notebook("a=1")),
                w("p.yml", "a: 1\n"),
                "-p",
                "9x",
                "1",
            ],
            "not a valid variable name",
        ),
    ],
)
def test_user_errors_are_one_line_with_exit_status_2(write, make_args, message) -> None:
    write.parent = write("anchor", "").parent
    result = run_cli(*make_args(write))
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_a_notebook_that_is_not_utf8_is_one_line(write, tmp_path) -> None:
    path = tmp_path / "latin1.ipynb"
    path.write_bytes(json.dumps(python_notebook("a = 'x'")).replace("x", "\xe9").encode("latin-1"))
    result = run_cli(path, write("p.yml", "a: 1\n"))
    assert result.returncode == 2
    assert (
        result.stderr.strip() == f"notebook_parameterizer: error: notebook {path} is not UTF-8 text"
    )


def test_help_documents_the_exit_status() -> None:
    result = run_cli("--help")
    assert result.returncode == 0
    for line in (
        "0  success",
        "1  --execute: a cell raised",
        "2  bad input",
        "3  --execute: the kernel died",
    ):
        assert line in result.stdout
    assert "0123, 12:30 and 2021-06-01 stay strings" in result.stdout


def _strict_json(text: str):
    def refuse(constant: str):
        raise ValueError(f"{constant} is not JSON")

    return json.loads(text, parse_constant=refuse)


def test_nan_and_infinity_never_make_invalid_json(write) -> None:
    nb = write("in.ipynb", python_notebook("a = 0\nb = 0\nc = [0]"))
    result = run_cli(nb, write("p.yml", "a: .nan\nb: -.inf\nc: [.inf, 1]\n"))
    assert result.returncode == 0, result.stderr
    document = _strict_json(result.stdout)  # NaN/Infinity would be refused here
    assert document["metadata"]["notebook_parameterizer"]["parameters"] == {
        "a": ".nan",
        "b": "-.inf",
        "c": [".inf", 1],
    }
    assert (
        "".join(document["cells"][1]["source"])
        == "a = float('nan')\nb = float('-inf')\nc = [float('inf'), 1]"
    )
