"""Corpora: how each data set is built or found, and the cache they are kept in."""
