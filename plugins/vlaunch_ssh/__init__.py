"""The ssh backend (work in progress)."""
