"""Variance-component estimation.

The profiled REML/ML fit of one or several components (numpy only).
"""
