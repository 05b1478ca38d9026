"""``parameterize``: rewrite a notebook's top-level definitions from a set of parameters."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import nbformat
from nbformat import NotebookNode

from . import other_languages, python_source
from .errors import ParameterizeError
from .parameters import ENV_PREFIX, expand_env

METADATA_KEY = "notebook_parameterizer"


@dataclass(frozen=True)
class Replacement:
    """One definition that was replaced: which parameter, in which cell and at which line."""

    parameter: str
    cell: int
    cell_id: str | None
    line: int


@dataclass
class Report:
    """What ``parameterize`` did: replacements, parameters defined nowhere, cells left alone."""

    replacements: list[Replacement] = field(default_factory=list)
    unused: list[str] = field(default_factory=list)
    skipped: list[tuple[int, str]] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [
            f"{r.parameter}: cell {r.cell}"
            + (f" (id {r.cell_id})" if r.cell_id else "")
            + f", line {r.line}"
            for r in self.replacements
        ]
        out += [f"{name}: not defined in the notebook" for name in self.unused]
        out += [f"cell {index} left unchanged: {reason}" for index, reason in self.skipped]
        return out


def notebook_language(nb: NotebookNode, kernel_name: str | None = None) -> tuple[str, str]:
    """The (kernel name, language) of a notebook, from its kernelspec and language_info."""
    spec = nb.metadata.get("kernelspec", {})
    language = spec.get("language") or nb.metadata.get("language_info", {}).get("name")
    kernel = kernel_name or spec.get("name") or ""
    if not language:
        language = "python" if kernel.startswith("python") or not kernel else ""
    if not language:
        raise ParameterizeError(
            f"cannot tell the language of kernel {kernel!r}: set it in metadata"
        )
    return kernel, language


def _translator(kernel: str, language: str) -> Any:
    from papermill.exceptions import PapermillException
    from papermill.translators import papermill_translators

    try:
        return papermill_translators.find_translator(kernel, language)
    except PapermillException:
        raise ParameterizeError(
            f"unknown kernel language {language!r} (kernel {kernel!r}): no translator for it"
        ) from None


def _code(translator: Any, name: str, value: Any, annotation: str | None = None) -> str:
    try:
        rendered = translator.translate(value)
    except NotImplementedError:
        raise ParameterizeError(
            f"parameter {name}: a {type(value).__name__} cannot be written in this kernel's language"
        ) from None
    if annotation is not None:
        return f"{name}: {annotation} = {rendered}"
    return translator.assign(name, rendered)


def parameterize(
    nb: NotebookNode,
    parameters: dict[str, Any],
    *,
    expand_env_values: bool = False,
    strict: bool = False,
    kernel_name: str | None = None,
) -> tuple[NotebookNode, Report]:
    """Replace every top-level definition of each parameter in ``nb`` (changed in place).

    Python cells are parsed: ``name = value`` and ``name: T = value`` at the top level are replaced,
    with any value; definitions in blocks, augmented assignments and assignments that read the name
    are left alone. Other languages are scanned line-wise for unindented one-line definitions.
    With ``strict``, a parameter defined nowhere is an error. Provenance is kept in
    ``nb.metadata["notebook_parameterizer"]``.
    """
    values = expand_env(parameters) if expand_env_values else dict(parameters)
    kernel, language = notebook_language(nb, kernel_name)
    translator = _translator(kernel, language)
    report = Report()
    names = set(values)
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code" or not names:
            continue
        if language.lower() == "python":
            _rewrite_python(cell, index, values, translator, report)
        else:
            _rewrite_lines(cell, index, values, translator, language, report)
    defined = {r.parameter for r in report.replacements}
    report.unused = sorted(names - defined)
    if strict and report.unused:
        raise ParameterizeError(
            "not defined in the notebook: " + ", ".join(report.unused) + " (--strict)"
        )
    nb.metadata[METADATA_KEY] = _provenance(parameters, values, expand_env_values, report)
    return nb, report


def _rewrite_python(
    cell: NotebookNode, index: int, values: dict, translator: Any, report: Report
) -> None:
    source = cell.source
    tree = python_source.parse_cell(source)
    if tree is None:
        report.skipped.append((index, "not Python (cell magic or syntax error)"))
        return
    definitions = python_source.find_definitions(source, tree, set(values))
    if not definitions:
        return
    edits = [(d, _code(translator, d.name, values[d.name], d.annotation)) for d in definitions]
    cell.source = python_source.replace_definitions(source, edits)
    for definition in definitions:
        report.replacements.append(
            Replacement(definition.name, index, cell.get("id"), definition.start[0] + 1)
        )


def _rewrite_lines(
    cell: NotebookNode, index: int, values: dict, translator: Any, language: str, report: Report
) -> None:
    lines = cell.source.splitlines(keepends=True)
    patterns = {name: other_languages.definition_pattern(language, name) for name in values}
    changed = False
    for number, line in enumerate(lines):
        for name, pattern in patterns.items():
            if not pattern.match(line):
                continue
            if not other_languages.is_single_line(line):
                report.skipped.append((index, f"{name} at line {number + 1} spans several lines"))
                continue
            ending = line[len(line.rstrip("\r\n")) :]
            lines[number] = _code(translator, name, values[name]) + ending
            report.replacements.append(Replacement(name, index, cell.get("id"), number + 1))
            changed = True
    if changed:
        cell.source = "".join(lines)


def _provenance(raw: dict, values: dict, expanded: bool, report: Report) -> dict:
    # Values taken from the environment are recorded by their ENV_ name, never by their value.
    recorded = {
        name: raw[name]
        if expanded and isinstance(raw[name], str) and raw[name].startswith(ENV_PREFIX)
        else values[name]
        for name in raw
    }
    return {
        "parameters": json.loads(json.dumps(recorded, default=str)),
        "replaced": [
            {"parameter": r.parameter, "cell": r.cell, "line": r.line} for r in report.replacements
        ],
    }


def read_notebook(text: str, origin: str) -> NotebookNode:
    """Parse notebook JSON; a clear error when it is not a notebook."""
    try:
        nb = nbformat.reads(text, as_version=4)
    except Exception as error:  # nbformat raises several types for bad input
        reason = "not valid JSON" if isinstance(error, ValueError) else "not a Jupyter notebook"
        raise ParameterizeError(f"{origin} is {reason}") from None
    if "cells" not in nb:
        raise ParameterizeError(f"{origin} is not a Jupyter notebook (no cells)")
    return nb
