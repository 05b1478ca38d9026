"""Parameterizing a 10,000-cell notebook: notebook_parameterizer vs nbformat and papermill.

Baselines, measured in this process on the same content:
- a bare nbformat read + write of the same file (the floor any tool pays);
- papermill ``prepare_only`` on the tagged equivalent (one ``parameters`` cell), which is what a user
  would do if every variable could be moved into one cell.
Prints the median of several interleaved runs and the ratios. The parameterizer skips, before
parsing, every cell whose text names no parameter.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

# This script shares its name with the package it measures: keep bench/ off the import path.
sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import nbformat  # noqa: E402
import papermill  # noqa: E402
from nbformat.v4 import new_code_cell, new_notebook  # noqa: E402

from notebook_parameterizer import parameterize  # noqa: E402

PARAMETERS = {"threshold": 42, "infile": "/data/in.hdf5", "extra": 2.5}


def make_notebook(cells: int, tagged: bool) -> nbformat.NotebookNode:
    nb = new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "language": "python", "display_name": "Python"}
    sources = []
    for i in range(cells):
        if i % 100 == 0 and not tagged:
            sources.append(f"threshold = {i}\ninfile = 'x{i}.h5'\nextra = 0.{i}")
        else:
            sources.append(f"import math\nvalue_{i} = math.sqrt({i})\nprint(value_{i})")
    if tagged:
        sources[0] = "threshold = 0\ninfile = 'x.h5'\nextra = 0.0"
    nb.cells = [new_code_cell(source) for source in sources]
    if tagged:
        nb.cells[0].metadata["tags"] = ["parameters"]
    return nb


def timed(functions, repeat: int) -> list[float]:
    """Median time of each function. The functions take turns, round after round, so a change in
    the machine's load during the run weighs on all of them alike."""
    for function in functions:
        function()  # warm-up
    samples: list[list[float]] = [[] for _ in functions]
    for _ in range(repeat):
        for index, function in enumerate(functions):
            start = time.perf_counter()
            function()
            samples[index].append(time.perf_counter() - start)
    return [statistics.median(times) for times in samples]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        plain, tagged = root / "plain.ipynb", root / "tagged.ipynb"
        nbformat.write(make_notebook(args.cells, tagged=False), plain)
        nbformat.write(make_notebook(args.cells, tagged=True), tagged)

        def bare() -> None:
            nbformat.write(nbformat.read(plain, as_version=4), root / "bare.ipynb")

        def ours() -> None:
            nb, report = parameterize(nbformat.read(plain, as_version=4), PARAMETERS)
            assert len(report.replacements) == 3 * (args.cells // 100)
            nbformat.write(nb, root / "ours.ipynb")

        def pm() -> None:
            papermill.execute_notebook(
                str(tagged),
                str(root / "pm.ipynb"),
                parameters=PARAMETERS,
                prepare_only=True,
                progress_bar=False,
            )

        loaded = nbformat.read(plain, as_version=4)

        def in_memory() -> None:
            parameterize(loaded, PARAMETERS)

        t_bare, t_ours, t_pm, t_mem = timed((bare, ours, pm, in_memory), args.repeat)
    print(f"notebook_parameterizer: {args.cells} cells")
    print(f"notebook_parameterizer: nbformat read+write        {t_bare * 1000:8.1f} ms")
    print(f"notebook_parameterizer: parameterize (read+write)  {t_ours * 1000:8.1f} ms")
    print(f"notebook_parameterizer: papermill --prepare-only   {t_pm * 1000:8.1f} ms")
    print(f"notebook_parameterizer: parameterize in memory     {t_mem * 1000:8.1f} ms")
    print(f"notebook_parameterizer: ratio ours/nbformat = {t_ours / t_bare:.2f}")
    print(f"notebook_parameterizer: ratio ours/papermill = {t_ours / t_pm:.2f}")


if __name__ == "__main__":
    main()
