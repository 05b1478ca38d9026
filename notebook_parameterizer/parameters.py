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


class MaybeBool(str):
    """A YAML 1.1 boolean word other than true/false (``yes``, ``NO``, ``on``, ``Off``...).

    It is the string as written, except where it replaces a definition that holds a boolean.
    """

    @property
    def as_bool(self) -> bool:
        return self.lower() in ("yes", "on")


class ParameterLoader(yaml.SafeLoader):
    """YAML with the plain scalars of YAML 1.2's core schema, so nothing surprising is implied.

    - ``true``/``false`` (any case spelling of YAML 1.2) are booleans; ``yes``/``no``/``on``/``off``
      are ``MaybeBool`` strings (booleans only where they replace a boolean).
    - Integers are decimal without leading zeros, ``0x..`` or ``0o..``: ``0123`` stays the string
      "0123" (YAML 1.1 read it as octal 83) and ``1_000`` stays a string.
    - No sexagesimal numbers (``12:30`` stays "12:30", not 750) and no dates (``2021-06-01`` stays
      a string). ``.nan``, ``.inf`` and ``-.inf`` are floats; ``1e3`` is a float.
    """


_REPLACED = {
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:timestamp",
}
ParameterLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag not in _REPLACED]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
ParameterLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
ParameterLoader.add_implicit_resolver(
    "!maybe-bool",
    re.compile(r"^(?:yes|Yes|YES|no|No|NO|on|On|ON|off|Off|OFF)$"),
    list("yYnNoO"),
)
ParameterLoader.add_implicit_resolver(
    "tag:yaml.org,2002:int",
    re.compile(r"^(?:[-+]?(?:0|[1-9][0-9]*)|0x[0-9a-fA-F]+|0o[0-7]+)$"),
    list("-+0123456789"),
)
ParameterLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+\.[0-9]*|[0-9]+(?:\.[0-9]*)?[eE][-+]?[0-9]+)"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
    ),
    list("-+0123456789."),
)


def _int(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int:
    text = loader.construct_scalar(node)
    if text.startswith(("0x", "0o")):
        return int(text, 0)
    return int(text)


def _float(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> float:
    text = str(loader.construct_scalar(node)).lower()
    if text.endswith("nan"):
        return float("nan")
    if text.endswith("inf"):
        return float("-inf") if text.startswith("-") else float("inf")
    return float(text)


ParameterLoader.add_constructor("tag:yaml.org,2002:int", _int)
ParameterLoader.add_constructor("tag:yaml.org,2002:float", _float)
ParameterLoader.add_constructor(
    "!maybe-bool", lambda loader, node: MaybeBool(loader.construct_scalar(node))
)


def read_yaml(text: str) -> Any:
    """Parse YAML with ``ParameterLoader``."""
    return yaml.load(text, Loader=ParameterLoader)  # noqa: S506 - a SafeLoader subclass


def load_parameters_file(path: Path) -> dict[str, Any]:
    """Parameters from a YAML mapping of ``name: value``; an empty file gives no parameters."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ParameterizeError(f"cannot read parameters file {path}: {error.strerror}") from None
    try:
        data = read_yaml(text)
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
            overrides[name] = read_yaml(raw) if raw.strip() else raw
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
