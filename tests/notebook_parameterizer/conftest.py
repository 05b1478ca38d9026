"""Run the notebook_parameterizer CLI the way a user does, on notebooks written by the test."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

CLI = str(Path(sys.executable).with_name("notebook_parameterizer"))


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str

    def notebook(self) -> nbformat.NotebookNode:
        return nbformat.reads(self.stdout, as_version=4)


def run_cli(
    *args: str | Path, env: dict[str, str] | None = None, cwd: Path | None = None
) -> Result:
    done = subprocess.run(
        [CLI, *map(str, args)], capture_output=True, text=True, env=env, cwd=cwd, timeout=120
    )
    return Result(done.returncode, done.stdout, done.stderr)


def python_notebook(*sources: str, tags: dict[int, list[str]] | None = None):
    nb = new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "language": "python", "display_name": "Py 3"}
    nb.cells = [new_markdown_cell("# A recipe")] + [new_code_cell(s) for s in sources]
    for index, cell_tags in (tags or {}).items():
        nb.cells[index].metadata["tags"] = cell_tags
    return nb


@pytest.fixture
def write(tmp_path: Path):
    """Write a notebook or a text file into the test's directory and return its path."""

    def _write(name: str, content) -> Path:
        path = tmp_path / name
        if isinstance(content, nbformat.NotebookNode):
            nbformat.write(content, path)
        else:
            path.write_text(content)
        return path

    return _write
