"""The compose stack, run for real by `make stack-test` (tests/stack/check_stack.py)."""
