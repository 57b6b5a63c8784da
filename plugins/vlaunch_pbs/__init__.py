"""The pbs backend (work in progress)."""
