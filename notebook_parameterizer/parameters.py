"""Reading parameters: the YAML file, ``-p NAME VALUE`` overrides and ``ENV_`` expansion."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from .errors import ParameterizeError

ENV_PREFIX = "ENV_"
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def load_parameters_file(path: Path) -> dict[str, Any]:
    """Parameters from a YAML mapping of ``name: value``; an empty file gives no parameters."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ParameterizeError(f"cannot read parameters file {path}: {error.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        where = getattr(error, "problem_mark", None)
        at = f" at line {where.line + 1}, column {where.column + 1}" if where else ""
        raise ParameterizeError(f"parameters file {path} is not valid YAML{at}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ParameterizeError(
            f"parameters file {path} must be a mapping of name: value, not a {type(data).__name__}"
        )
    return check_names(data)


def parse_overrides(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """``-p NAME VALUE`` pairs, each value read as YAML (``-p n 3`` is the integer 3)."""
    overrides = {}
    for name, raw in pairs:
        try:
            overrides[name] = yaml.safe_load(raw) if raw.strip() else raw
        except yaml.YAMLError:
            raise ParameterizeError(f"-p {name}: {raw!r} is not a valid YAML value") from None
    return check_names(overrides)


def check_names(parameters: Mapping[Any, Any]) -> dict[str, Any]:
    for name in parameters:
        if not isinstance(name, str) or not _NAME.match(name):
            raise ParameterizeError(
                f"parameter name {name!r} is not a valid variable name (letters, digits, _)"
            )
    return dict(parameters)


def expand_env(parameters: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> dict:
    """Replace each string value ``ENV_NAME`` by the environment variable ``NAME``."""
    environ = os.environ if environ is None else environ
    expanded = {}
    for name, value in parameters.items():
        if isinstance(value, str) and value.startswith(ENV_PREFIX) and len(value) > len(ENV_PREFIX):
            variable = value[len(ENV_PREFIX) :]
            if variable not in environ:
                raise ParameterizeError(
                    f"parameter {name}: environment variable {variable} is not set (from {value})"
                )
            expanded[name] = environ[variable]
        else:
            expanded[name] = value
    return expanded
