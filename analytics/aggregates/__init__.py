"""Aggregates: mergeable statistics (``identity``, ``chunk``, ``merge``, ``finalize``).

They import numpy, pyarrow and numba only — never an engine (DESIGN.md §2).
"""
