"""The spectral core.

Eigendecompositions of K (or of the Gram W'W), rotation of y and X, standardization (numpy
only).
"""
