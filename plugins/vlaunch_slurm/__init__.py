"""The slurm backend (work in progress)."""
