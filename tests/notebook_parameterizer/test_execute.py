"""--execute runs the parameterized notebook on a real kernel (ipykernel) through papermill."""

from __future__ import annotations

from pathlib import Path

import nbformat

from tests.notebook_parameterizer.conftest import python_notebook, run_cli


def test_execute_runs_with_the_new_values(write, tmp_path: Path) -> None:
    workdir = tmp_path / "work"
    workdir.mkdir()
    nb = python_notebook(
        "threshold = 1\nname = 'a'",
        "result = threshold * 2\nopen('result.txt', 'w').write(f'{name}:{result}')\nprint(result)",
    )
    out = tmp_path / "out.ipynb"
    result = run_cli(
        write("in.ipynb", nb),
        write("p.yml", "threshold: 21\nname: run1\n"),
        "--execute",
        "-o",
        out,
        "--cwd",
        workdir,
        "-k",
        "python3",
        "--log-output",
    )
    assert result.returncode == 0, result.stderr
    assert (workdir / "result.txt").read_text() == "run1:42"
    executed = nbformat.read(out, as_version=4)
    assert executed.cells[2].outputs[0]["text"] == "42\n"
    assert "42" in result.stderr  # --log-output echoes the cells' output
    assert executed.metadata["notebook_parameterizer"]["parameters"] == {
        "threshold": 21,
        "name": "run1",
    }


def test_failing_cell_gives_papermills_failure_status(write, tmp_path: Path) -> None:
    nb = python_notebook("limit = 1", "assert limit < 5, f'limit {limit} too high'")
    out = tmp_path / "out.ipynb"
    result = run_cli(write("in.ipynb", nb), write("p.yml", "limit: 9\n"), "--execute", "-o", out)
    assert result.returncode == 1
    # Our own report is one line, last, with no traceback from our code. (The kernel is a child
    # process sharing stderr; what it prints, e.g. while shutting down, is its own.)
    lines = result.stderr.strip().splitlines()
    assert lines[-1] == (
        "notebook_parameterizer: execution failed: cell 2 raised AssertionError: limit 9 too high"
    )
    assert "notebook_parameterizer/" not in result.stderr
    assert out.exists()  # papermill keeps the partly executed notebook for inspection


def test_unknown_kernel_is_a_clear_error(write, tmp_path: Path) -> None:
    nb = python_notebook("a = 1")
    result = run_cli(
        write("in.ipynb", nb),
        write("p.yml", "a: 2\n"),
        "--execute",
        "-k",
        "no-such-kernel",
        "-o",
        tmp_path / "o.ipynb",
    )
    assert result.returncode == 2
    assert "no such kernel" in result.stderr.lower()
    assert "Traceback" not in result.stderr


def test_a_dead_kernel_is_one_line_and_exit_status_3(write, tmp_path: Path) -> None:
    nb = python_notebook("a = 1", "import os\nos._exit(1)", "print('never')")
    out = tmp_path / "out.ipynb"
    result = run_cli(write("in.ipynb", nb), write("p.yml", "a: 2\n"), "--execute", "-o", out)
    assert result.returncode == 3, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("notebook_parameterizer: kernel died: ")
    assert "notebook_parameterizer/" not in result.stderr  # no traceback of ours


def test_execute_into_a_missing_directory_fails_before_running(write, tmp_path: Path) -> None:
    workdir = tmp_path / "work"
    workdir.mkdir()
    nb = python_notebook("a = 1", "open('ran.txt', 'w').write('yes')")
    result = run_cli(
        write("in.ipynb", nb),
        write("p.yml", "a: 2\n"),
        "--execute",
        "--cwd",
        workdir,
        "-o",
        tmp_path / "missing" / "out.ipynb",
    )
    assert result.returncode == 2
    assert "the directory" in result.stderr and "does not exist" in result.stderr
    assert not (workdir / "ran.txt").exists()
