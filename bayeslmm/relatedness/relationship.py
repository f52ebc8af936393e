"""The Kinship type: a kinship matrix with its sample IDs, shared by the readers and builders.

It sits below both :mod:`bayeslmm.io` (``read_grm`` returns one) and :mod:`bayeslmm.relatedness.grm`
(which builds them from genotypes), so that neither imports the other for it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from bayeslmm.linalg.spectral import Spectral, spectral_from_kinship


@dataclass(frozen=True, eq=False)
class Kinship:
    """A kinship matrix with its sample IDs.

    Attributes
    ----------
    matrix : ndarray
        [shape: (n_samples, n_samples)], as built (not normalized).
    samples : ndarray of str
        Sample IDs, the order of the rows and columns.
    n_snps : int
        SNPs used.
    method : str
        How it was built.
    qc : dict
        SNP counts of the quality control (input, removed per reason, used); with
        ``autosomes_only`` (the default) ``non_autosomal`` counts the SNPs left out when any were.
    fid : ndarray of str, optional
        Family IDs (kept for writing GCTA files).
    """

    matrix: np.ndarray
    samples: np.ndarray
    n_snps: int = 0
    method: str = ""
    qc: dict[str, int] = field(default_factory=dict)
    fid: np.ndarray | None = None
    _cache: dict[str, Spectral] = field(default_factory=dict, repr=False)

    @property
    def scale(self) -> float:
        """Mean diagonal, the factor models divide K by (normalization to mean diagonal 1)."""
        return float(np.mean(np.diag(self.matrix)))

    def spectral(self) -> Spectral:
        """Eigendecomposition of the normalized matrix, computed once and cached."""
        if "spectral" not in self._cache:
            self._cache["spectral"] = spectral_from_kinship(self.matrix)
        return self._cache["spectral"]

    def to_frame(self) -> pd.DataFrame:
        """The matrix as a DataFrame indexed both ways by sample ID."""
        return pd.DataFrame(self.matrix, index=self.samples, columns=self.samples)

    def __repr__(self) -> str:
        return (
            f"Kinship({len(self.samples)} samples, {self.n_snps} SNPs, method={self.method!r},"
            f" mean diagonal {self.scale:.4g})"
        )
