"""notebook_parameterizer: parameterize notebooks without a ``parameters`` tag, then run them."""

from .errors import ParameterizeError
from .notebook import Replacement, Report, parameterize

__all__ = ["ParameterizeError", "Replacement", "Report", "parameterize"]
