"""The spectral core: K = U diag(s) U' once, then every likelihood is a sum over r terms.

A :class:`Spectral` holds the r eigenvectors of K with eigenvalues above a relative tolerance.
The null space of K (N − r dimensions) is never formed: the part of a vector outside the span
of U is recovered as a residual, ``a - U @ (U.T @ a)``, whose squared norm enters the
likelihood with variance σe² alone.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy import linalg

from bayeslmm.errors import InputError, KinshipWarning

DEFAULT_RTOL = 1e-10


@dataclass(frozen=True, eq=False)
class Spectral:
    r"""Eigendecomposition of a (normalized) kinship matrix, restricted to its range.

    Attributes
    ----------
    U : ndarray
        Orthonormal eigenvectors with non-negligible eigenvalues [shape: (n_samples, rank)].
    s : ndarray
        The matching eigenvalues of the normalized K, descending [shape: (rank,)].
    scale : float
        Factor K was divided by (its mean diagonal when normalized, else 1).
    min_eigenvalue : float
        Most negative eigenvalue before clipping (0 when none), on the normalized scale.

    Notes
    -----
    With :math:`K = U_1 \operatorname{diag}(s) U_1^\top` and :math:`V = \sigma_g^2 K +
    \sigma_e^2 I`, the eigenvalues of V are :math:`\sigma_g^2 s_i + \sigma_e^2` on the range
    of :math:`U_1` and :math:`\sigma_e^2` on its (N − r)-dimensional complement.
    """

    U: np.ndarray
    s: np.ndarray
    scale: float = 1.0
    min_eigenvalue: float = 0.0

    @property
    def n(self) -> int:
        """Number of samples."""
        return self.U.shape[0]

    @property
    def rank(self) -> int:
        """Number of eigenvalues kept (r)."""
        return self.s.shape[0]

    def rotate(self, A: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Split A into its coordinates on U and its residual off U.

        Parameters
        ----------
        A : ndarray
            Vectors in sample space [shape: (n_samples,) or (n_samples, k)].

        Returns
        -------
        A1 : ndarray
            ``U.T @ A`` [shape: (rank,) or (rank, k)].
        residual : ndarray
            ``A - U @ A1``, the part of A in the null space of K, same shape as A.
        """
        A1 = self.U.T @ A
        return A1, A - self.U @ A1

    def matrix(self) -> np.ndarray:
        """Rebuild the normalized K (dense; for small N and tests)."""
        return (self.U * self.s) @ self.U.T


@dataclass(frozen=True, eq=False)
class Rotated:
    """Phenotype and covariates in the eigenbasis of K, with their null-space residual Gram.

    Attributes
    ----------
    y1 : ndarray
        ``U.T @ y`` [shape: (rank,)].
    X1 : ndarray
        ``U.T @ X`` [shape: (rank, n_covariates)].
    gram : ndarray
        Gram matrix of the null-space residuals of ``[X, y]`` [shape: (d + 1, d + 1)]; its
        blocks are ``Xc'Xc``, ``Xc'yc`` and ``yc'yc``.
    n_null : int
        Dimension of the null space of K, N − r.
    s : ndarray
        Eigenvalues [shape: (rank,)].
    null_factor : ndarray or None
        Triangular factor R of the null-space residuals of ``[X, y]`` (``gram = R'R``)
        [shape: (k, d + 1)], or None. ``‖R (−β, 1)‖²`` is the null-space RSS without the
        cancellation of the quadratic form in ``gram`` when y or X has a large offset.
    """

    y1: np.ndarray
    X1: np.ndarray
    gram: np.ndarray
    n_null: int
    s: np.ndarray
    null_factor: np.ndarray | None = None

    @property
    def n(self) -> int:
        """Number of samples."""
        return self.y1.shape[0] + self.n_null


def rotate_data(spectral: Spectral, y: np.ndarray, X: np.ndarray) -> Rotated:
    """Rotate y and X once; everything the likelihood needs is then O(r·d).

    Notes
    -----
    The residuals are formed explicitly (``A - U U'A``) rather than as ``A'A - A1'A1``, which
    would lose precision when the null space is small.
    """
    A = np.column_stack([X, y])
    A1, residual = spectral.rotate(A)
    n_null = spectral.n - spectral.rank
    gram = residual.T @ residual if n_null > 0 else np.zeros((A.shape[1], A.shape[1]))
    factor = np.linalg.qr(residual, mode="r") if n_null > 0 else np.zeros((1, A.shape[1]))
    return Rotated(
        y1=A1[:, -1], X1=A1[:, :-1], gram=gram, n_null=n_null, s=spectral.s, null_factor=factor
    )


@dataclass(frozen=True, eq=False)
class Standardized:
    r"""y and X re-expressed so that no computation depends on units or offsets.

    Attributes
    ----------
    y : ndarray
        ``(y - X @ offset) / scale``: the least-squares residual of y on X in units of its
        residual standard deviation [shape: (n_samples,)].
    X : ndarray
        ``X @ transform``: orthogonal columns of squared norm N spanning the columns of X
        [shape: (n_samples, n_covariates)].
    offset : ndarray
        Least-squares coefficients of y on X [shape: (n_covariates,)].
    scale : float
        Residual standard deviation of y on X (1 when y lies in the span of X).
    transform : ndarray
        ``sqrt(N) R^-1`` from the thin QR factorization X = QR [shape: (d, d)].

    Notes
    -----
    With :math:`X = QR`, :math:`\tilde X = \sqrt N Q = X T`,
    :math:`\tilde y = (y - X b_0)/c`, the model :math:`y = X\beta + u + \varepsilon` reads
    :math:`\tilde y = \tilde X\tilde\beta + \tilde u + \tilde\varepsilon` with
    :math:`\beta = b_0 + c\,T\tilde\beta` and every variance divided by :math:`c^2`.
    h² and every test statistic are unchanged; a log-likelihood of :math:`\tilde y` differs
    from that of y by the Jacobian :math:`-N\log c` (ML) or :math:`-(N-d)\log c` (REML).
    The map y → a·y + b·x (any column x of X) and any invertible recombination of the columns
    of X leave :math:`\tilde y` and the span of :math:`\tilde X` unchanged up to round-off, so
    the rotated data and the sums of squares formed from them no longer cancel catastrophically
    (a trait of 1e6 + noise, a covariate in days since 1900).
    """

    y: np.ndarray
    X: np.ndarray
    offset: np.ndarray
    scale: float
    transform: np.ndarray

    def beta(self, beta: np.ndarray) -> np.ndarray:
        """Fixed effects on the user's scale from those of the standardized data."""
        return self.offset + self.scale * (self.transform @ beta)

    def beta_cov(self, cov: np.ndarray) -> np.ndarray:
        """Covariance of the fixed effects on the user's scale."""
        return self.scale**2 * (self.transform @ cov @ self.transform.T)

    def loglik(self, loglik: float, n_eff: int) -> float:
        """Log-likelihood of y from that of the standardized y (``n_eff``: N or N − d)."""
        return float(loglik - n_eff * np.log(self.scale))


def standardize(y: np.ndarray, X: np.ndarray) -> Standardized:
    """Project out the covariates from y and orthonormalize X (see :class:`Standardized`).

    Parameters
    ----------
    y : ndarray
        Phenotype [shape: (n_samples,)].
    X : ndarray
        Covariates of full column rank [shape: (n_samples, n_covariates)].

    Returns
    -------
    Standardized

    Notes
    -----
    Householder QR is backward stable, so the residual of y and the span of X are accurate to
    round-off relative to the residual (not to the size of the offset). The projection is
    applied twice (iterative refinement), which makes the residual orthogonal to X to working
    precision even when X is badly scaled. Cost O(N·d²).
    """
    y = np.asarray(y, dtype=float)
    X = np.asarray(X, dtype=float)
    n, d = X.shape
    if d == 0:
        scale = float(np.sqrt(y @ y / n))
        scale = scale if scale > 0 else 1.0
        return Standardized(y / scale, X, np.zeros(0), scale, np.zeros((0, 0)))
    Q, R = np.linalg.qr(X)
    coef = Q.T @ y
    resid = y - Q @ coef
    extra = Q.T @ resid
    resid = resid - Q @ extra
    offset = linalg.solve_triangular(R, coef + extra)
    dof = max(n - d, 1)
    scale = float(np.linalg.norm(resid) / np.sqrt(dof))
    if not (scale > 0 and np.isfinite(scale)):
        scale = 1.0
    transform = linalg.solve_triangular(R, np.sqrt(n) * np.eye(d))
    return Standardized(resid / scale, np.sqrt(n) * Q, offset, scale, transform)


def check_kinship(K: np.ndarray, name: str = "K") -> np.ndarray:
    """Return K as a float array after checking it is a finite symmetric square matrix.

    Raises
    ------
    InputError
        If K is not 2-D square, has NaN or inf, or is not symmetric.
    """
    try:
        K = np.asarray(K, dtype=float)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{name} could not be read as a numeric matrix ({exc}).") from None
    if K.ndim != 2 or K.shape[0] != K.shape[1]:
        raise InputError(f"{name} must be a square N×N matrix, got shape {K.shape}.")
    bad = ~np.isfinite(K)
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise InputError(
            f"{name} has {int(bad.sum())} NaN or infinite entries (first at [{i}, {j}]); "
            "rebuild it after imputing missing genotypes."
        )
    asym = np.abs(K - K.T).max()
    if asym > 1e-8 * max(np.abs(K).max(), 1e-300):
        i, j = np.unravel_index(np.argmax(np.abs(K - K.T)), K.shape)
        raise InputError(
            f"{name} is not symmetric (|K[{i},{j}] - K[{j},{i}]| = {asym:.3g}); a kinship matrix "
            "must be symmetric; check that rows and columns are in the same sample order."
        )
    return K


def _keep(values: np.ndarray, rtol: float) -> tuple[np.ndarray, float]:
    top = values.max()
    if top <= 0:
        raise InputError(
            "K has no positive eigenvalue; it cannot be a kinship matrix (is it all zeros?)."
        )
    return values > rtol * top, float(min(values.min(), 0.0))


def _warn_negative(min_eig: float, top: float, rtol: float, n_neg: int) -> None:
    if min_eig < -rtol * top * 1e2:
        warnings.warn(
            f"K is not positive semi-definite: {n_neg} eigenvalues are negative, the most "
            f"negative is {min_eig:.4g} (largest {top:.4g}, ratio {min_eig / top:.1e}); they "
            "were clipped at 0. Expected for IBS kinships and GCTA-style GRMs (their diagonal "
            "is not that of a Gram matrix); a ratio below ~1e-3 changes nothing. A kinship "
            "from method='standardized_empirical' or 'centered' is positive semi-definite.",
            KinshipWarning,
            stacklevel=3,
        )


def spectral_from_kinship(
    K: np.ndarray, *, normalize: bool = True, rtol: float = DEFAULT_RTOL
) -> Spectral:
    """Eigendecompose a kinship matrix.

    Parameters
    ----------
    K : ndarray
        Kinship (genetic relationship) matrix [shape: (n_samples, n_samples)].
    normalize : bool
        Divide K by its mean diagonal so that h² is comparable across tools.
    rtol : float
        Eigenvalues at or below ``rtol * max(eigenvalue)`` are treated as zero.

    Returns
    -------
    Spectral

    Notes
    -----
    Cost O(N³) once (LAPACK ``syevd``). Negative eigenvalues beyond round-off are clipped at 0
    with one :class:`~bayeslmm.errors.KinshipWarning` stating the most negative value.
    """
    K = check_kinship(K)
    scale = 1.0
    if normalize:
        scale = float(np.trace(K) / K.shape[0])
        if not scale > 0:
            raise InputError(
                f"K has mean diagonal {scale:.4g}; a kinship matrix has a positive diagonal."
            )
        K = K / scale
    values, vectors = np.linalg.eigh(K)
    keep, min_eig = _keep(values, rtol)
    _warn_negative(min_eig, values.max(), rtol, int((values < 0).sum()))
    order = np.flatnonzero(keep)[::-1]
    return Spectral(U=vectors[:, order], s=values[order], scale=scale, min_eigenvalue=min_eig)


def spectral_from_genotypes(
    W: np.ndarray, *, normalize: bool = True, rtol: float = DEFAULT_RTOL
) -> Spectral:
    r"""Decompose K = W W'/M through W, by a thin SVD when M < N.

    Parameters
    ----------
    W : ndarray
        Standardized genotypes [shape: (n_samples, n_snps)], complete (no NaN).
    normalize : bool
        Scale so that K = W W'/M has mean diagonal 1.
    rtol : float
        Relative tolerance on the eigenvalues of K (squared singular values).

    Returns
    -------
    Spectral

    Notes
    -----
    With :math:`W/\sqrt{M} = U S V^\top`, :math:`K = U S^2 U^\top`, so :math:`s = S^2`. The
    thin SVD costs O(N·M²) instead of the O(N²·M + N³) of forming and decomposing K.
    """
    W = np.asarray(W, dtype=float)
    if W.ndim != 2:
        raise InputError(f"W must be a 2-D genotype matrix (samples × SNPs), got {W.shape}.")
    if not np.isfinite(W).all():
        raise InputError(
            "W has NaN or infinite entries; impute missing genotypes (e.g. by the SNP mean) first."
        )
    n, m = W.shape
    scale = float(np.einsum("ij,ij->", W, W) / (n * m)) if normalize else 1.0
    if not scale > 0:
        raise InputError("W is all zeros; no SNP varies across samples.")
    if m < n:
        U, sv, _ = np.linalg.svd(W / np.sqrt(m * scale), full_matrices=False)
        values = sv**2
        keep, _ = _keep(values, rtol)
        return Spectral(U=U[:, keep], s=values[keep], scale=scale)
    K = (W @ W.T) / (m * scale)
    values, vectors = np.linalg.eigh(K)
    keep, _ = _keep(values, rtol)
    order = np.flatnonzero(keep)[::-1]
    return Spectral(U=vectors[:, order], s=values[order], scale=scale)


@dataclass(frozen=True, eq=False)
class LowRank:
    r"""The eigenbasis of K = W W'/(M·scale) known through the Gram W'W; U is never formed.

    Attributes
    ----------
    V : ndarray
        Orthonormal eigenvectors of W'W with non-negligible eigenvalues
        [shape: (n_snps, rank)].
    s : ndarray
        The matching eigenvalues of the normalized K, descending [shape: (rank,)].
    scale : float
        Factor K = W W'/M was divided by (its mean diagonal when normalized, else 1).
    n : int
        Number of samples (rows of W).

    Notes
    -----
    With :math:`W^\top W/(Mc) = V \operatorname{diag}(s) V^\top` (c = ``scale``), the
    non-zero eigenvalues of :math:`K = W W^\top/(Mc)` are the same s and its eigenvectors
    are :math:`U = W V \operatorname{diag}(s)^{-1/2}/\sqrt{Mc}`, so for any
    :math:`a \in \mathbb{R}^N`

    .. math::

        U^\top a = \operatorname{diag}(s)^{-1/2} V^\top (W^\top a) / \sqrt{Mc},

    which needs only the M-vector W'a: the rotation costs O(N·M) per vector, read in blocks,
    and the N×N matrix K and the N×r matrix U are never formed.
    """

    V: np.ndarray
    s: np.ndarray
    scale: float
    n: int

    @property
    def rank(self) -> int:
        """Number of eigenvalues kept (r)."""
        return self.s.shape[0]

    @property
    def n_snps(self) -> int:
        """Number of SNPs (M, the order of W'W)."""
        return self.V.shape[0]

    def coordinates(self, WtA: np.ndarray) -> np.ndarray:
        """``U.T @ A`` from ``W.T @ A`` [shape: (n_snps,) or (n_snps, k)] (see Notes above)."""
        coef = 1.0 / np.sqrt(self.s * self.n_snps * self.scale)
        A1 = self.V.T @ WtA
        return A1 * (coef[:, None] if A1.ndim == 2 else coef)


def spectral_from_gram(
    WtW: np.ndarray,
    n_samples: int,
    *,
    normalize: bool = True,
    rtol: float = DEFAULT_RTOL,
    overwrite: bool = False,
) -> LowRank:
    r"""Decompose K = W W'/M through the Gram W'W of the standardized genotypes.

    Parameters
    ----------
    WtW : ndarray
        ``W.T @ W`` of the N samples analysed [shape: (n_snps, n_snps)], symmetric.
    n_samples : int
        N, the number of rows of W.
    normalize : bool
        Divide K by its mean diagonal, trace(W'W)/(N·M), as :func:`spectral_from_kinship`
        divides an N×N K.
    rtol : float
        Eigenvalues at or below ``rtol * max(eigenvalue)`` are treated as zero (the range kept
        is that of :func:`spectral_from_kinship` on the same K).
    overwrite : bool
        Scale ``WtW`` in place (its values are then lost) instead of scaling a copy: one M×M
        matrix less at the peak (the LOCO scan decomposes a submatrix it made for the purpose).

    Returns
    -------
    LowRank

    Raises
    ------
    InputError
        If WtW is not a finite symmetric square matrix or is all zeros.

    Notes
    -----
    Cost O(M³) (LAPACK ``syevd``) whatever N is; memory about four M×M matrices besides
    ``WtW`` (three with ``overwrite``: LAPACK's copy, its workspace and the eigenvectors, which
    are put in descending order in place). W'W is positive semi-definite by construction, so
    negative eigenvalues are round-off and are dropped with the other negligible ones, without
    a warning.
    """
    WtW = np.asarray(WtW, dtype=float)
    if WtW.ndim != 2 or WtW.shape[0] != WtW.shape[1] or not np.isfinite(WtW).all():
        raise InputError(f"W'W must be a finite square M×M matrix, got shape {WtW.shape}.")
    m = WtW.shape[0]
    if not n_samples > 0 or m == 0:
        raise InputError(f"W'W of {n_samples} samples × {m} SNPs is empty.")
    if _asymmetry(WtW) > 1e-8 * max(float(np.abs(WtW).max()), 1e-300):
        raise InputError("W'W is not symmetric; it is not the Gram matrix of a genotype matrix.")
    scale = float(np.trace(WtW) / (n_samples * m)) if normalize else 1.0
    if not scale > 0:
        raise InputError("W'W has a zero trace; no SNP varies across the samples analysed.")
    if overwrite:
        WtW /= m * scale
        values, vectors = np.linalg.eigh(WtW)
    else:
        values, vectors = np.linalg.eigh(WtW / (m * scale))
    keep, _ = _keep(values, rtol)
    order = np.flatnonzero(keep)[::-1]
    return LowRank(V=_descending(vectors, order), s=values[order], scale=scale, n=int(n_samples))


def _asymmetry(A: np.ndarray, step: int = 512) -> float:
    """The largest |A - A'| entry, in blocks of ``step`` columns (no M×M temporary)."""
    worst = 0.0
    for j0 in range(0, A.shape[0], step):
        block = A[:, j0 : j0 + step] - A[j0 : j0 + step, :].T
        worst = max(worst, float(np.abs(block).max()))
    return worst


def _descending(vectors: np.ndarray, order: np.ndarray) -> np.ndarray:
    """``vectors[:, order]`` for the kept eigenvalues in descending order, in place if possible.

    ``order`` lists the last columns last-first (eigh sorts ascending and the kept ones are the
    largest): when it is every column they are reversed by swapping pairs, without a copy.
    """
    m = vectors.shape[1]
    if order.size != m:
        return vectors[:, order]
    spare = np.empty(vectors.shape[0], dtype=vectors.dtype)
    for lo in range(m // 2):
        hi = m - 1 - lo
        spare[:] = vectors[:, lo]
        vectors[:, lo] = vectors[:, hi]
        vectors[:, hi] = spare
    return vectors


def rotate_lowrank(basis: LowRank, y: np.ndarray, X: np.ndarray, WtA: np.ndarray) -> Rotated:
    r"""Rotate y and X in the eigenbasis of a :class:`LowRank` K: what :func:`rotate_data` gives.

    Parameters
    ----------
    basis : LowRank
        The eigenbasis of K = W W'/(M·scale) for the N samples of y.
    y : ndarray
        Phenotype, standardized (:func:`standardize`) [shape: (n_samples,)].
    X : ndarray
        Covariates, standardized [shape: (n_samples, n_covariates)].
    WtA : ndarray
        ``W.T @ [X, y]`` over the same samples in the same order [shape: (n_snps, d + 1)].

    Returns
    -------
    Rotated
        As :func:`rotate_data` returns it for the N×N K = W W'/(M·scale).

    Notes
    -----
    With A = [X, y] and :math:`A_1 = U^\top A` from :meth:`LowRank.coordinates`, the Gram of
    the null-space residuals is :math:`R^\top R = A^\top A - A_1^\top A_1`, since
    :math:`R = (I - UU^\top)A` and :math:`I - UU^\top` is a projector. The residuals themselves
    (N×(d+1), needing U) are not formed, so the difference is taken on standardized data:
    every column of A then has squared norm N or N − d and the relative error of
    :math:`R^\top R` is about :math:`\epsilon\,N/(N-r)`, with no offset to cancel (the
    cancellation that :attr:`Rotated.null_factor` exists for). ``null_factor`` is the
    upper-triangular Cholesky factor of :math:`R^\top R` (from a QR factorization of its
    clipped square root where round-off makes it singular). Cost O(M·r·d + N·d²).
    """
    y = np.asarray(y, dtype=float)
    A = np.column_stack([X, y])
    WtA = np.asarray(WtA, dtype=float).reshape(basis.n_snps, A.shape[1])
    A1 = basis.coordinates(WtA)
    n_null = basis.n - basis.rank
    k = A.shape[1]
    if n_null <= 0:
        gram, factor = np.zeros((k, k)), np.zeros((1, k))
    else:
        gram = A.T @ A - A1.T @ A1
        gram = (gram + gram.T) / 2
        factor = _upper_factor(gram)
    return Rotated(
        y1=A1[:, -1],
        X1=A1[:, :-1],
        gram=gram,
        n_null=max(n_null, 0),
        s=basis.s,
        null_factor=factor,
    )


def _upper_factor(gram: np.ndarray) -> np.ndarray:
    """Upper-triangular R with R'R = gram (semi-definite gram: via its clipped square root)."""
    try:
        return linalg.cholesky(gram, lower=False)
    except linalg.LinAlgError:
        values, vectors = np.linalg.eigh(gram)
        root = np.sqrt(np.clip(values, 0.0, None))[:, None] * vectors.T
        return np.linalg.qr(root, mode="r")
