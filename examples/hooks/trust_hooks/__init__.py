"""A trust's own podlink rules (an example: see README.md)."""
