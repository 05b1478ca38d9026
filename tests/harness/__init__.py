"""Real throwaway services for the tests: each starts on loopback, waits until ready, stops by PID."""
