"""Writing a parameter value as a literal of the notebook's language.

papermill's translators do most languages; JavaScript/TypeScript and Kotlin, which papermill does not
know, are written here, and so are the non-finite floats papermill writes as ``nan``/``inf`` (not valid
R, Julia, Scala or .NET code).
"""

from __future__ import annotations

import json
import math
from typing import Any

from .errors import ParameterizeError

_NON_FINITE = {
    # language: (NaN, +Infinity, -Infinity)
    "r": ("NaN", "Inf", "-Inf"),
    "julia": ("NaN", "Inf", "-Inf"),
    "matlab": ("NaN", "Inf", "-Inf"),
    "octave": ("NaN", "Inf", "-Inf"),
    "scala": ("Double.NaN", "Double.PositiveInfinity", "Double.NegativeInfinity"),
    "kotlin": ("Double.NaN", "Double.POSITIVE_INFINITY", "Double.NEGATIVE_INFINITY"),
    "javascript": ("NaN", "Infinity", "-Infinity"),
    "typescript": ("NaN", "Infinity", "-Infinity"),
    "c#": ("double.NaN", "double.PositiveInfinity", "double.NegativeInfinity"),
    "f#": ("nan", "infinity", "-infinity"),
    "powershell": ("[double]::NaN", "[double]::PositiveInfinity", "[double]::NegativeInfinity"),
}


class JavaScriptTranslator:
    """Values as JavaScript/TypeScript literals (JSON, which is valid JavaScript)."""

    def translate(self, value: Any) -> str:
        return json.dumps(value, ensure_ascii=True)


class KotlinTranslator:
    """Values as Kotlin literals: ``listOf``, ``mapOf(k to v)``, escaped ``$`` in strings."""

    def translate(self, value: Any) -> str:
        if value is None:
            return "null"
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, int):
            return f"{value}L" if not -(2**31) <= value < 2**31 else str(value)
        if isinstance(value, float):
            return repr(value)
        if isinstance(value, str):
            return '"' + "".join(_kotlin_char(char) for char in value) + '"'
        if isinstance(value, list | tuple):
            return "listOf(" + ", ".join(self.translate(item) for item in value) + ")"
        if isinstance(value, dict):
            pairs = (f"{self.translate(k)} to {self.translate(v)}" for k, v in value.items())
            return "mapOf(" + ", ".join(pairs) + ")"
        return self.translate(str(value))


def _kotlin_char(char: str) -> str:
    escapes = {"\\": "\\\\", '"': '\\"', "$": "\\$", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
    if char in escapes:
        return escapes[char]
    return char if char.isprintable() else f"\\u{ord(char):04x}"


def find_translator(kernel: str, language: str) -> Any:
    """The translator object for a kernel and language; a clear error when there is none."""
    key = language.lower()
    if key in ("javascript", "typescript"):
        return JavaScriptTranslator()
    if key == "kotlin":
        return KotlinTranslator()
    from papermill.exceptions import PapermillException
    from papermill.translators import papermill_translators

    if key == "octave":
        kernel, language = "matlab", "matlab"
    try:
        return papermill_translators.find_translator(kernel, language)
    except PapermillException:
        raise ParameterizeError(
            f"unknown kernel language {language!r} (kernel {kernel!r}): no translator for it"
        ) from None


def literal(translator: Any, language: str, name: str, value: Any) -> str:
    """``value`` written as a literal for ``translator``'s language."""
    if isinstance(value, float) and not math.isfinite(value):
        spelled = _NON_FINITE.get(language.lower())
        if spelled is not None:
            return spelled[0 if math.isnan(value) else 1 if value > 0 else 2]
    try:
        text = translator.translate(value)
    except NotImplementedError:
        raise ParameterizeError(
            f"parameter {name}: a {type(value).__name__} cannot be written in this kernel's language"
        ) from None
    if language.lower() == "julia":
        text = text.replace("$", "\\$")  # Julia interpolates $ in strings; literals have no other $
    return text
