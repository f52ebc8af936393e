"""Sample identity and input coercion.

Every entry point turns y, X, K, genotypes and PCs into one aligned object here (numpy only).
"""
