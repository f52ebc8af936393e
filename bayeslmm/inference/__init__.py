"""Inference.

Sampling (nutpie or PyMC), MAP, posterior post-processing (u/v draws, sample-space LOO) and
model comparison.
"""
