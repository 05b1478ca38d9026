"""``parameterize``: rewrite a notebook's top-level definitions from a set of parameters."""

from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any

import nbformat
from nbformat import NotebookNode

from . import other_languages, python_source
from .errors import ParameterizeError
from .parameters import ENV_PREFIX, MaybeBool, expand_env
from .translators import find_translator, literal

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


def _value_for(value: Any, holds_bool: bool) -> Any:
    """A ``yes``/``no``/``on``/``off`` parameter is a boolean only where it replaces one."""
    if isinstance(value, MaybeBool):
        return value.as_bool if holds_bool else str(value)
    return value


def _names_pattern(names: set[str]) -> re.Pattern[str]:
    alternatives = "|".join(re.escape(name) for name in sorted(names, key=len, reverse=True))
    return re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)")


def _may_define(names: list[str], pattern: re.Pattern[str], source: str) -> bool:
    """Cheap test before parsing: does the cell's text name a parameter at all?"""
    for name in names:
        if name in source:
            return pattern.search(source) is not None or not source.isascii()
    # Python identifiers are NFKC-normalised: a fullwidth "\uff54hreshold" is threshold.
    return not source.isascii() and bool(pattern.search(unicodedata.normalize("NFKC", source)))


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
    translator = find_translator(kernel, language)
    python = language.lower() == "python"
    syntax = None if python else other_languages.syntax_for(language)
    report = Report()
    names = set(values)
    pattern = _names_pattern(names) if names else None
    name_list = sorted(names)
    for index, cell in enumerate(nb.cells):
        if pattern is None or cell.get("cell_type") != "code":
            continue
        source = cell.get("source")
        if not isinstance(source, str):
            raise ParameterizeError(f"cell {index} has no source text")
        if not _may_define(name_list, pattern, source):
            continue
        if syntax is None:
            _rewrite_python(cell, index, values, translator, report)
        else:
            _rewrite_lines(cell, index, values, translator, language, syntax, report)
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
    edits = []
    for definition in definitions:
        value = _value_for(values[definition.name], definition.holds_bool)
        rendered = literal(translator, "python", definition.name, value)
        if definition.annotation is not None:
            edits.append((definition, f"{definition.name}: {definition.annotation} = {rendered}"))
        else:
            edits.append((definition, translator.assign(definition.name, rendered)))
    cell.source = python_source.replace_definitions(source, edits)
    for definition in definitions:
        report.replacements.append(
            Replacement(definition.name, index, cell.get("id"), definition.start[0] + 1)
        )


def _rewrite_lines(
    cell: NotebookNode,
    index: int,
    values: dict,
    translator: Any,
    language: str,
    syntax: other_languages.Syntax,
    report: Report,
) -> None:
    lines = other_languages.split_lines(cell.source)
    patterns = {name: other_languages.definition_pattern(syntax, name) for name in values}
    changed = False
    for number, line in enumerate(lines):
        for name, pattern in patterns.items():
            match = pattern.match(line)
            if match is None:
                continue
            span = other_languages.value_span(line, match.end(), syntax)
            if span is None:
                report.skipped.append((index, f"{name} at line {number + 1} spans several lines"))
                continue
            start, end = span
            holds_bool = other_languages.is_boolean(line[start:end], syntax)
            rendered = literal(translator, language, name, _value_for(values[name], holds_bool))
            lines[number] = line[:start] + rendered + line[end:]
            report.replacements.append(Replacement(name, index, cell.get("id"), number + 1))
            changed = True
            break
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
        "parameters": _json_safe(recorded),
        "replaced": [
            {"parameter": r.parameter, "cell": r.cell, "line": r.line} for r in report.replacements
        ],
    }


def _json_safe(value: Any) -> Any:
    """``value`` as strict JSON data: NaN and infinities become the strings ".nan", ".inf" and
    "-.inf" (their YAML spelling), anything else that JSON cannot hold becomes its string."""
    if isinstance(value, float) and not math.isfinite(value):
        return ".nan" if math.isnan(value) else ".inf" if value > 0 else "-.inf"
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return str(value)
    if isinstance(value, dict):
        return {str(key): _json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(item) for item in value]
    return str(value)


def read_notebook(text: str, origin: str) -> NotebookNode:
    """Parse notebook JSON; a clear error when it is not a notebook."""
    try:
        nb = nbformat.reads(text, as_version=4)
    except Exception as error:  # nbformat raises several types for bad input
        reason = "not valid JSON" if isinstance(error, ValueError) else "not a Jupyter notebook"
        raise ParameterizeError(f"{origin} is {reason}") from None
    if not isinstance(nb.get("cells"), list):
        raise ParameterizeError(f"{origin} is not a Jupyter notebook (no cells)")
    for index, cell in enumerate(nb.cells):
        if not isinstance(cell, dict) or not isinstance(cell.get("cell_type"), str):
            raise ParameterizeError(f"{origin}: cell {index} has no cell_type")
        if not isinstance(cell.get("source"), str):
            raise ParameterizeError(f"{origin}: cell {index} has no source")
    return nb
