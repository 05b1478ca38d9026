"""Running a parameterized notebook with papermill."""

from __future__ import annotations

from pathlib import Path

from nbformat import NotebookNode

from .errors import ParameterizeError


class ExecutionFailed(Exception):
    """The notebook ran but a cell raised; the message names the cell and the error."""


def execute(
    nb: NotebookNode,
    output_path: str,
    *,
    kernel_name: str | None = None,
    cwd: Path | None = None,
    log_output: bool = False,
) -> NotebookNode:
    """Execute ``nb`` with papermill, writing the result (with outputs) to ``output_path``."""
    import papermill
    from jupyter_client.kernelspec import NoSuchKernel
    from papermill.exceptions import PapermillExecutionError

    try:
        return papermill.execute_notebook(
            nb,
            output_path,
            kernel_name=kernel_name,
            cwd=str(cwd) if cwd else None,
            log_output=log_output,
            progress_bar=False,
        )
    except NoSuchKernel as error:
        name = error.args[0] if error.args else kernel_name
        raise ParameterizeError(f"no such kernel: {name}") from None
    except PapermillExecutionError as error:
        raise ExecutionFailed(
            f"cell {error.cell_index} raised {error.ename}: {error.evalue}"
        ) from None
