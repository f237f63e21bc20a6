"""Synthetic demo data: a deterministic world for every system the platform analyses.

See :mod:`auterity.demo.generate` (``auterity demo-data`` is its command).
"""
