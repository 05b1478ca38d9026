"""Finding and rewriting top-level definitions in Python (IPython) cell source."""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass

# Where Python's tokenizer ends a line: \n, \r\n or a lone \r; never \x0c, \x85 or \u2028,
# which str.splitlines() would split on even inside a string literal.
_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+\Z")


def split_lines(source: str) -> list[str]:
    """The lines of ``source`` with their endings, numbered as ``ast`` numbers them."""
    return _LINE.findall(source)


# IPython syntax that is not Python: magics, shell escapes, help, and `x = !cmd` / `x = %magic`.
_IPYTHON_LINE = re.compile(r"^\s*([!%?]|[A-Za-z_]\w*\s*=\s*[!%])|\?\s*$")


@dataclass(frozen=True)
class Definition:
    """A top-level ``name = value`` or ``name: T = value`` statement, located in the source."""

    name: str
    start: tuple[int, int]  # (line index, character column)
    end: tuple[int, int]
    annotation: str | None
    holds_bool: bool = False  # the value replaced is True or False


def parse_cell(source: str) -> ast.Module | None:
    """Parse a cell as Python; IPython-only lines are masked; None when it is not Python at all."""
    try:
        return ast.parse(source)
    except SyntaxError:
        pass
    lines = split_lines(source)
    if not lines or lines[0].lstrip().startswith("%%"):
        return None  # a cell magic: the body is another language
    masked = []
    for line in lines:
        if _IPYTHON_LINE.search(line):
            indent = line[: len(line) - len(line.lstrip())]
            line = f"{indent}pass\n"
        masked.append(line)
    try:
        return ast.parse("".join(masked))
    except SyntaxError:
        return None


def _reads(node: ast.AST, name: str) -> bool:
    return any(isinstance(n, ast.Name) and n.id == name for n in ast.walk(node))


def _char_column(line: str, byte_column: int) -> int:
    return len(line.encode("utf-8")[:byte_column].decode("utf-8", errors="replace"))


def find_definitions(source: str, tree: ast.Module, names: set[str]) -> list[Definition]:
    """Top-level single-name assignments of ``names`` whose value does not read the name."""
    lines = split_lines(source)
    found = []
    for stmt in tree.body:
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1:
            target, annotation = stmt.targets[0], None
        elif isinstance(stmt, ast.AnnAssign) and stmt.value is not None and stmt.simple:
            target, annotation = stmt.target, ast.get_source_segment(source, stmt.annotation)
        else:
            continue
        if not isinstance(target, ast.Name) or target.id not in names:
            continue
        if _reads(stmt.value, target.id):
            continue
        assert stmt.end_lineno is not None and stmt.end_col_offset is not None
        first, last = lines[stmt.lineno - 1], lines[stmt.end_lineno - 1]
        found.append(
            Definition(
                name=target.id,
                start=(stmt.lineno - 1, _char_column(first, stmt.col_offset)),
                end=(stmt.end_lineno - 1, _char_column(last, stmt.end_col_offset)),
                annotation=annotation,
                holds_bool=isinstance(stmt.value, ast.Constant)
                and isinstance(stmt.value.value, bool),
            )
        )
    return found


def replace_definitions(source: str, edits: list[tuple[Definition, str]]) -> str:
    """Replace each definition's statement text by its new code (trailing comments are kept)."""
    lines = split_lines(source)
    for definition, code in sorted(edits, key=lambda edit: edit[0].start, reverse=True):
        (first, start), (last, end) = definition.start, definition.end
        lines[first : last + 1] = [lines[first][:start] + code + lines[last][end:]]
    return "".join(lines)
