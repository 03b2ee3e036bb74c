"""Synthetic datasets written by the project's own generator."""
