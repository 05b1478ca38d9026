"""Line-wise top-level definitions for kernels other than Python (R, Julia, bash, MATLAB, ...).

A definition is an unindented line that starts with ``name`` and the language's assignment, e.g.
``threshold <- 10`` (R), ``const n = 1`` (Julia), ``val x: Int = 1`` (Scala, Kotlin), ``x=1`` (bash).
Only its value is replaced: the keyword, the name, the operator and its spacing, and whatever
follows the value on the line (``; b=2;``, a comment) are kept as written.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from .errors import ParameterizeError

_TYPED = r"(?:[ \t]*:[ \t]*[^=\n]+?)?"  # an optional ": Type"


@dataclass(frozen=True)
class Syntax:
    """How one language writes a definition, a comment, and a boolean."""

    definition: str  # regex of the text before the value; ``{name}`` is the parameter
    comments: tuple[str, ...] = ("#",)
    booleans: tuple[str, ...] = ("true", "false")
    words: bool = False  # unquoted whitespace ends the value (shell words)
    escapes: bool = True  # a backslash escapes the next character inside quotes


SYNTAX = {
    "r": Syntax(
        r"{name}[ \t]*(?:<<?-|=(?!=))[ \t]*", booleans=("TRUE", "FALSE", "T", "F"), escapes=True
    ),
    "julia": Syntax(
        r"(?:(?:const|global)[ \t]+)?{name}(?:[ \t]*::[ \t]*[^=\n]+?)?[ \t]*=(?!=)[ \t]*"
    ),
    "matlab": Syntax(r"{name}[ \t]*=(?!=)[ \t]*", comments=("%", "#"), escapes=False),
    "bash": Syntax(r"(?:(?:export|declare|local|readonly)[ \t]+)?{name}=", comments=(), words=True),
    "scala": Syntax(r"(?:val|var)[ \t]+{name}" + _TYPED + r"[ \t]*=(?!=)[ \t]*", ("//",)),
    "kotlin": Syntax(
        r"(?:const[ \t]+)?(?:val|var)[ \t]+{name}" + _TYPED + r"[ \t]*=(?!=)[ \t]*", ("//",)
    ),
    "javascript": Syntax(
        r"(?:(?:const|let|var)[ \t]+)?{name}" + _TYPED + r"[ \t]*=(?![=>])[ \t]*", ("//",)
    ),
    "csharp": Syntax(r"var[ \t]+{name}[ \t]*=(?!=)[ \t]*", ("//",)),
    "fsharp": Syntax(r"let[ \t]+(?:mutable[ \t]+)?{name}" + _TYPED + r"[ \t]*=[ \t]*", ("//",)),
    "powershell": Syntax(r"\${name}[ \t]*=(?!=)[ \t]*", booleans=("$true", "$false")),
}
ALIASES = {
    "octave": "matlab",
    "typescript": "javascript",
    "c#": "csharp",
    ".net-csharp": "csharp",
    "f#": "fsharp",
    ".net-fsharp": "fsharp",
    ".net-powershell": "powershell",
    "sh": "bash",
}
# A value that does not end on its line: a trailing operator or MATLAB's "...".
_CONTINUES = re.compile(r"(,|\\|\+|-|\*|/|<-|=|%>%|\|>|\||&|\.\.\.)\s*$")


def syntax_for(language: str) -> Syntax:
    key = language.lower()
    key = ALIASES.get(key, key)
    if key not in SYNTAX:
        known = ", ".join(sorted(["python", *SYNTAX, *ALIASES]))
        raise ParameterizeError(
            f"kernel language {language!r} is not supported (supported: {known})"
        )
    return SYNTAX[key]


@functools.lru_cache(maxsize=1024)
def definition_pattern(syntax: Syntax, name: str) -> re.Pattern[str]:
    """Matches an unindented definition of ``name`` up to where its value starts."""
    return re.compile("^" + syntax.definition.format(name=re.escape(name)))


def value_span(line: str, start: int, syntax: Syntax) -> tuple[int, int] | None:
    """(start, end) of the value that begins at ``start``; None when it goes on past the line."""
    body = len(line.rstrip("\r\n"))
    depth, quote, index = 0, "", start
    while index < body:
        char = line[index]
        if quote:
            if char == "\\" and syntax.escapes:
                index += 2
                continue
            if char == quote:
                quote = ""
        elif char in "\"'`":
            quote = char
        elif char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        elif depth == 0 and (
            char == ";"
            or (syntax.words and char in " \t")
            or any(line.startswith(mark, index) for mark in syntax.comments)
        ):
            break
        index += 1
    if quote or depth != 0:
        return None
    end = index
    while end > start and line[end - 1] in " \t":
        end -= 1
    value = line[start:end]
    if (not value and not syntax.words) or _CONTINUES.search(value):
        return None
    return start, end


def is_boolean(text: str, syntax: Syntax) -> bool:
    """True when ``text`` (a value as written) is one of the language's boolean literals."""
    return text.strip() in syntax.booleans or text.strip().lower() in ("true", "false")


def split_lines(text: str) -> list[str]:
    """Lines with their endings, split on ``\\n`` only (``\\r\\n`` ends with it); never on
    ``\\x0c``, ``\\x85``, ``\\u2028`` or other characters ``str.splitlines`` splits on."""
    return _LINE.findall(text)


_LINE = re.compile(r"[^\n]*\n|[^\n]+\Z")
