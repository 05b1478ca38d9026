"""Line-wise top-level definitions for kernels other than Python (R, Julia, bash, ...)."""

from __future__ import annotations

import re

from .errors import ParameterizeError

# How a top-level definition of {name} starts, per kernel language (papermill's names).
_DEFINITION = {
    "r": r"{name}\s*(<-|=(?!=))",
    "julia": r"{name}\s*=(?!=)",
    "matlab": r"{name}\s*=(?!=)",
    "bash": r"{name}=",
    "scala": r"(val|var)\s+{name}\s*(:[^=]+)?=(?!=)",
    "csharp": r"var\s+{name}\s*=(?!=)",
    "fsharp": r"let\s+{name}\s*=(?!=)",
    "powershell": r"\${name}\s*=(?!=)",
}
# A line that does not end its statement: open brackets or a trailing operator.
_CONTINUES = re.compile(r"(,|\\|\+|-|\*|/|<-|=|%>%|\|>|\||&|\(|\[|\{)\s*$")


def definition_pattern(language: str, name: str) -> re.Pattern[str]:
    try:
        template = _DEFINITION[language.lower()]
    except KeyError:
        known = ", ".join(sorted(["python", *_DEFINITION]))
        raise ParameterizeError(
            f"kernel language {language!r} is not supported (supported: {known})"
        ) from None
    return re.compile("^" + template.format(name=re.escape(name)))


def is_single_line(line: str) -> bool:
    """True when the definition on ``line`` is complete (brackets balanced, no continuation)."""
    depth = 0
    quote = ""
    for char in line:
        if quote:
            if char == quote:
                quote = ""
        elif char in "\"'":
            quote = char
        elif char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        elif char == "#":
            break
    code = line.split("#", 1)[0] if not quote else line
    return depth == 0 and not quote and not _CONTINUES.search(code.rstrip())
