"""Odyssey: Greff-style variant-search experiments on recurrent networks."""

__version__ = "0.1.0"
