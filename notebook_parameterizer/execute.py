"""Running a parameterized notebook with papermill."""

from __future__ import annotations

from pathlib import Path

from nbformat import NotebookNode

from .errors import ParameterizeError


class ExecutionFailed(Exception):
    """The notebook ran but a cell raised; the message names the cell and the error."""


class KernelDied(Exception):
    """The kernel died while running the notebook, or never started."""


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
    from nbclient.exceptions import DeadKernelError
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
    except DeadKernelError as error:
        raise KernelDied(_first_line(error) or "the kernel stopped answering") from None
    except RuntimeError as error:  # jupyter_client: "Kernel died before replying to kernel_info"
        if "kernel" not in str(error).lower():
            raise
        raise KernelDied(_first_line(error)) from None
    except OSError as error:
        raise ParameterizeError(f"cannot run or write {output_path}: {error.strerror}") from None
    except PapermillExecutionError as error:
        raise ExecutionFailed(
            f"cell {error.cell_index} raised {error.ename}: {error.evalue}"
        ) from None


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else ""
