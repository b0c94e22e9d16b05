"""Evolutionary search over cell architectures (Jozefowicz et al. 2015) on an Optuna store."""
