"""headerauthenticator: JupyterHub login from headers forwarded by a trusted front proxy."""

from .authenticator import HeaderAuthenticator
from .handlers import USER_DATA_KEY
from .parsers import HeaderParseError, JSONParser, Parser, RegexUsernameParser

__all__ = [
    "USER_DATA_KEY",
    "HeaderAuthenticator",
    "HeaderParseError",
    "JSONParser",
    "Parser",
    "RegexUsernameParser",
]
