"""Genetic relationship matrices.

Kinship constructions, leave-one-chromosome-out kinships, principal components (numpy only).
"""
