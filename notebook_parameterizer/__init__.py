"""notebook_parameterizer: parameterize notebooks without a parameters tag (not implemented yet)."""
