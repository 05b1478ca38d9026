"""Parsers that turn a forwarded header value into the value HeaderAuthenticator keeps.

Each parser is a small class with one method, ``parse(value) -> object``. Configure one per header key
with ``c.HeaderAuthenticator.header_parser_classes = {"auth_data": JSONParser}``. A class or an
instance may be given; instances carry their own settings, classes use their class-level defaults
(which is how the thesis listings configure ``RegexUsernameParser``).
"""

from __future__ import annotations

import json
import re
from typing import Any


class HeaderParseError(ValueError):
    """A header value could not be parsed; the message says what is wrong, never the value."""


class Parser:
    """Keeps the header value as it was sent (a string)."""

    def parse(self, value: str) -> Any:
        """Return the value to keep for this header."""
        return value


class JSONParser(Parser):
    """Decodes the header value as JSON (an object, list, string, number, boolean or null).

    Values nested more than ``max_depth`` levels deep are refused: they serve no login and deep
    enough ones exhaust Python's recursion limit when decoded or stored.
    """

    max_depth: int = 32

    def parse(self, value: str) -> Any:
        try:
            data = json.loads(value)
        except RecursionError:
            raise HeaderParseError(f"is nested more than {self.max_depth} levels deep") from None
        except ValueError as error:
            raise HeaderParseError(
                f"is not valid JSON (line {getattr(error, 'lineno', '?')},"
                f" column {getattr(error, 'colno', '?')})"
            ) from None
        if nesting_depth(data) > self.max_depth:
            raise HeaderParseError(f"is nested more than {self.max_depth} levels deep")
        return data


def nesting_depth(data: Any) -> int:
    """How many levels of lists and objects ``data`` has (0 for a plain value), without recursion."""
    deepest = 0
    stack = [(data, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            stack.extend((child, depth + 1) for child in item.values())
        elif isinstance(item, list):
            stack.extend((child, depth + 1) for child in item)
        else:
            continue
        deepest = max(deepest, depth + 1)
    return deepest


class RegexUsernameParser(Parser):
    """Extracts a username from the header with a regular expression of exactly one group.

    ``username_extract_regex`` is searched in the value and its one group is kept; then each key of
    ``replace_extract_chars`` is replaced by its value, e.g. ``{"@": "_", ".": "_"}`` turns
    ``jane.doe@example.org`` into ``jane_doe_example_org``.
    """

    username_extract_regex: str = r"(.+)"
    replace_extract_chars: dict[str, str] = {}

    def __init__(
        self,
        username_extract_regex: str | None = None,
        replace_extract_chars: dict[str, str] | None = None,
    ) -> None:
        if username_extract_regex is not None:
            self.username_extract_regex = username_extract_regex
        if replace_extract_chars is not None:
            self.replace_extract_chars = dict(replace_extract_chars)
        self._pattern = compile_one_group(self.username_extract_regex)

    def parse(self, value: str) -> str:
        match = self._pattern.search(value)
        if match is None or not match.group(1):
            raise HeaderParseError("does not contain a username the configured pattern can extract")
        username = match.group(1)
        for old, new in self.replace_extract_chars.items():
            username = username.replace(old, new)
        return username


def compile_one_group(pattern: str) -> re.Pattern[str]:
    """Compile ``pattern``, insisting on exactly one capture group (a configuration error otherwise)."""
    try:
        compiled = re.compile(pattern)
    except re.error as error:
        raise ValueError(
            f"username_extract_regex {pattern!r} is not a valid regex: {error}"
        ) from None
    if compiled.groups != 1:
        raise ValueError(
            f"username_extract_regex {pattern!r} must have exactly one capture group,"
            f" it has {compiled.groups}"
        )
    return compiled


def as_parser(parser: type[Parser] | Parser) -> Parser:
    """Return a parser instance for a configured class or instance."""
    if isinstance(parser, Parser):
        return parser
    if isinstance(parser, type) and issubclass(parser, Parser):
        return parser()
    raise TypeError(f"{parser!r} is not a headerauthenticator Parser class or instance")
