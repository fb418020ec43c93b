"""Pieces every process shares, below every other package: the retry policy."""
