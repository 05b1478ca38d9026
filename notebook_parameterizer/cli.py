"""``notebook_parameterizer``: parameterize a notebook from a YAML file, optionally run it."""

from __future__ import annotations

import argparse
import logging
import sys
import warnings
from pathlib import Path
from typing import NoReturn

import nbformat

from .errors import ParameterizeError
from .notebook import parameterize, read_notebook
from .parameters import load_parameters_file, parse_overrides

EXIT_OK = 0
EXIT_EXECUTION_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_KERNEL_DIED = 3

EPILOG = """\
exit status:
  0  success
  1  --execute: a cell raised an error ("cell N raised E: message")
  2  bad input or usage: a file that cannot be read or written, a missing output directory,
     invalid YAML, JSON or notebook (e.g. a cell without source), a bad parameter name or
     value, an unknown kernel or option
  3  --execute: the kernel died or could not be started

Every error is one line on stderr, without a traceback.

parameter values are YAML 1.2: true/false are booleans, yes/no/on/off are strings unless they
replace a boolean; 0123, 12:30 and 2021-06-01 stay strings; .nan and .inf are floats.
"""


class _Parser(argparse.ArgumentParser):
    """argparse, with usage errors as one line and exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="notebook_parameterizer",
        usage="notebook_parameterizer [OPTIONS] NOTEBOOK_PATH PARAMETERS_PATH",
        description="Replace the top-level definitions of the parameters in a notebook's cells "
        "(no 'parameters' tag needed), then optionally execute it with papermill.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("notebook_path", metavar="NOTEBOOK_PATH", type=Path)
    parser.add_argument("parameters_path", metavar="PARAMETERS_PATH", type=Path)
    parser.add_argument(
        "-o", "--output_notebook_path", type=Path, help="write here instead of to stdout"
    )
    parser.add_argument(
        "-e",
        "--expand_env_values",
        action="store_true",
        help="a value ENV_NAME becomes the value of environment variable NAME",
    )
    parser.add_argument(
        "-p",
        nargs=2,
        action="append",
        default=[],
        metavar=("NAME", "VALUE"),
        help="set a parameter (value read as YAML); overrides the file; repeatable",
    )
    parser.add_argument(
        "--strict", action="store_true", help="fail when a parameter is defined nowhere"
    )
    parser.add_argument("--report", action="store_true", help="print what was replaced, where")
    run = parser.add_argument_group("execution (papermill)")
    run.add_argument("--execute", action="store_true", help="run the parameterized notebook")
    run.add_argument("-k", "--kernel", help="kernel to run it with (default: the notebook's)")
    run.add_argument("--cwd", type=Path, help="working directory of the kernel")
    run.add_argument("--log-output", action="store_true", help="echo cell output to stderr")
    return parser


def run(args: argparse.Namespace) -> int:
    output = str(args.output_notebook_path) if args.output_notebook_path else "-"
    if output != "-" and not Path(output).parent.is_dir():
        raise ParameterizeError(
            f"cannot write {output}: the directory {Path(output).parent} does not exist"
        )
    try:
        text = args.notebook_path.read_text(encoding="utf-8")
    except OSError as error:
        raise ParameterizeError(
            f"cannot read notebook {args.notebook_path}: {error.strerror}"
        ) from None
    except UnicodeDecodeError:
        raise ParameterizeError(f"notebook {args.notebook_path} is not UTF-8 text") from None
    nb = read_notebook(text, str(args.notebook_path))
    parameters = load_parameters_file(args.parameters_path)
    parameters.update(parse_overrides(args.p))
    nb, report = parameterize(
        nb,
        parameters,
        expand_env_values=args.expand_env_values,
        strict=args.strict,
        kernel_name=args.kernel,
    )
    if args.report:
        for line in report.lines():
            print(line, file=sys.stderr)
    if args.cwd is not None and not args.cwd.is_dir():
        raise ParameterizeError(f"--cwd {args.cwd} is not a directory")
    if args.execute:
        from .execute import execute

        if args.log_output:  # papermill echoes cell output through its logger
            handler = logging.StreamHandler(sys.stderr)
            handler.setFormatter(logging.Formatter("%(message)s"))
            logger = logging.getLogger("papermill")
            logger.addHandler(handler)
            logger.setLevel(logging.INFO)

        execute(nb, output, kernel_name=args.kernel, cwd=args.cwd, log_output=args.log_output)
        return EXIT_OK
    content = nbformat.writes(nb)
    if output == "-":
        sys.stdout.write(content)
        return EXIT_OK
    try:
        Path(output).write_text(content, encoding="utf-8")
    except OSError as error:
        raise ParameterizeError(f"cannot write {output}: {error.strerror}") from None
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    """Run the command line; the exit status is documented in ``--help`` (EPILOG)."""
    args = build_parser().parse_args(argv)
    from .execute import ExecutionFailed, KernelDied

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # nbformat's validation warnings are not ours to print
            return run(args)
    except ParameterizeError as error:
        print(f"notebook_parameterizer: error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except ExecutionFailed as error:
        print(f"notebook_parameterizer: execution failed: {error}", file=sys.stderr)
        return EXIT_EXECUTION_FAILED
    except KernelDied as error:
        print(f"notebook_parameterizer: kernel died: {error}", file=sys.stderr)
        return EXIT_KERNEL_DIED


if __name__ == "__main__":
    sys.exit(main())
