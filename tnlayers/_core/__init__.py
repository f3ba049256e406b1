"""Declare and plan, without torch: networks, builders, factorisation, paths, plans, cost.

Nothing in this package imports torch (``tests/test_layout.py`` checks it), so a network can be
declared, planned and costed anywhere.
"""
