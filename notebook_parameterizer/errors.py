"""The one exception type the parameterizer raises for bad input."""


class ParameterizeError(Exception):
    """Bad input (file, YAML, notebook, parameter, kernel); the message says what to fix."""
