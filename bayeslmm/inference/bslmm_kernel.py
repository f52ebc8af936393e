r"""The compiled chain of the exact BSLMM-style MCMC (:mod:`bayeslmm.inference.bslmm_mcmc`).

:func:`chain` runs the moves of :func:`bayeslmm.inference.bslmm_mcmc.run_chain` (γ: add /
remove / swap; then random-walk Metropolis on h, ρ, log π) in numba, with the same target and
proposals, and records (γ, h, ρ, log π) at each kept draw; the draws of σe², β and v_γ given
those are made afterwards in Python. It is compiled once and cached on disk
(``cache=True``), and releases the GIL (``nogil=True``), so that chains run in threads.

The state carries the Cholesky factor L of C = A + I/s_a (A = B_γ'D⁻¹B_γ), T = L⁻¹F
(F = B_γ'D⁻¹[X₁, y₁]) and G = [X, y]'H⁻¹[X, y] = G₀ − T'T. Adding SNP j appends one row to L
(a rank-one extension: l = L⁻¹c, d² = a_jj + 1/s_a − l'l, t = (f_j − T'l)/d, G ← G − tt',
log|C| ← log|C| + log d²), O(|γ|² + r·|γ|); removing one updates L's trailing block by
Givens rotations (:func:`_delete`), O(|γ|²); a swap is a removal then an addition. Moves of
h and ρ change D, so they recompute A and F (O(r·|γ|²)) and refactorize; moves of π only
refactorize.
"""

from __future__ import annotations

import math

import numba
import numpy as np

_NEG_INF = -np.inf


@numba.njit(cache=True, nogil=True)
def _cholesky(M, k, shift, L):  # pragma: no cover - compiled
    """Lower Cholesky factor of M[:k, :k] + shift·I into L[:k, :k]; False if not PD."""
    for j in range(k):
        acc = M[j, j] + shift
        for t in range(j):
            acc -= L[j, t] * L[j, t]
        if not acc > 0.0:
            return False
        d = math.sqrt(acc)
        L[j, j] = d
        for i in range(j + 1, k):
            acc = M[i, j]
            for t in range(j):
                acc -= L[i, t] * L[j, t]
            L[i, j] = acc / d
    return True


@numba.njit(cache=True, nogil=True)
def _tail(G, Lg):  # pragma: no cover - compiled
    """Cholesky of G = [X, y]'H⁻¹[X, y]: (ok, log|X'H⁻¹X|, y'Py)."""
    q = G.shape[0]
    if not _cholesky(G, q, 0.0, Lg):
        return False, 0.0, 1.0
    logdet_x = 0.0
    for i in range(q - 1):
        logdet_x += 2.0 * math.log(Lg[i, i])
    return True, logdet_x, Lg[q - 1, q - 1] ** 2


@numba.njit(cache=True, nogil=True)
def _factor(A, F, k, s_a, G0, L, T, G, Lg):  # pragma: no cover - compiled
    """Factor C = A + I/s_a into L, T = L⁻¹F, G = G₀ − T'T: (ok, log|C| + k log s_a, ...)."""
    q = F.shape[1]
    if not _cholesky(A, k, 1.0 / s_a, L):
        return False, 0.0, 0.0, 1.0
    logdet_c = k * math.log(s_a)
    for i in range(k):
        logdet_c += 2.0 * math.log(L[i, i])
        for c in range(q):
            acc = F[i, c]
            for t in range(i):
                acc -= L[i, t] * T[t, c]
            T[i, c] = acc / L[i, i]
    for a in range(q):
        for b in range(q):
            acc = G0[a, b]
            for i in range(k):
                acc -= T[i, a] * T[i, b]
            G[a, b] = acc
    ok, logdet_x, quad = _tail(G, Lg)
    return ok, logdet_c, logdet_x, quad


@numba.njit(cache=True, nogil=True)
def _extend(L, T, G, k, col, ajj, fnew, s_a, lvec, tnew, G2, Lg):  # pragma: no cover
    """Extend L, T and G by one SNP; returns (ok, d²).

    The SNP adds ``col`` to C's columns (``ajj`` on the diagonal) and ``fnew`` to F's rows:
    L's new row (l', d), l = L⁻¹c, d² = a_jj + 1/s_a − l'l, into ``lvec``; T's new row
    t = (f − T'l)/d into ``tnew``; G − tt' into ``G2``.
    """
    q = T.shape[1]
    dd = ajj + 1.0 / s_a
    for i in range(k):
        acc = col[i]
        for t in range(i):
            acc -= L[i, t] * lvec[t]
        lvec[i] = acc / L[i, i]
        dd -= lvec[i] * lvec[i]
    if not dd > 0.0:
        return False, dd
    d = math.sqrt(dd)
    for c in range(q):
        acc = fnew[c]
        for i in range(k):
            acc -= T[i, c] * lvec[i]
        tnew[c] = acc / d
    for a in range(q):
        for b in range(q):
            G2[a, b] = G[a, b] - tnew[a] * tnew[b]
    return True, dd


@numba.njit(cache=True, nogil=True)
def _append(
    e, j, col, ajj, dd, lvec, fnew, tnew, A, L, F, T, Bg, Bt, gamma, member
):  # pragma: no cover
    """Write SNP j as row/column e of γ's system (an add, or a swap's new SNP).

    A's new column, L's and T's new rows (from :func:`_extend`: ``lvec``, pivot ``dd``,
    ``tnew``), F, B_γ, γ and the membership mask.
    """
    gamma[e] = j
    member[j] = True
    Bg[e] = Bt[j]
    for i in range(e):
        A[i, e] = col[i]
        A[e, i] = col[i]
        L[e, i] = lvec[i]
    A[e, e] = ajj
    L[e, e] = math.sqrt(dd)
    F[e] = fnew
    T[e] = tnew


@numba.njit(cache=True, nogil=True)
def _delete(L, T, k, t, L2, T2, x, tt):  # pragma: no cover - compiled
    """L and T without SNP t, into L2 and T2 [first k − 1 rows]; T's rotated-out row into tt.

    With L = [[L₁₁, 0, 0], [l₂₁', l₂₂, 0], [L₃₁, l₃₂, L₃₃]], C without row and column t has
    the factor [[L₁₁, 0], [L₃₁, L̃₃₃]], L̃₃₃L̃₃₃' = L₃₃L₃₃' + l₃₂l₃₂' (Givens rotations of
    [L₃₃, l₃₂]); the same rotations of the rows [T₃; t₂] give L̃₃₃⁻¹(L₃₃T₃ + l₃₂t₂) (the new
    T₃) and a last row tt, with T̃₃'T̃₃ + tt tt' = T₃'T₃ + t₂t₂' (the rotations are
    orthogonal), so that the new G = G₀ − T̃'T̃ is G + tt tt'. O(|γ|²).
    """
    q = T.shape[1]
    n = k - 1
    for i in range(n):
        si = i if i < t else i + 1
        for j in range(i + 1):
            L2[i, j] = L[si, j if j < t else j + 1]
        for c in range(q):
            T2[i, c] = T[si, c]
    for i in range(t, n):
        x[i] = L[i + 1, t]
    for c in range(q):
        tt[c] = T[t, c]
    for i in range(t, n):
        a = L2[i, i]
        r = math.hypot(a, x[i])
        cs, sn = a / r, x[i] / r
        L2[i, i] = r
        for row in range(i + 1, n):
            li = L2[row, i]
            L2[row, i] = cs * li + sn * x[row]
            x[row] = cs * x[row] - sn * li
        for c in range(q):
            ti = T2[i, c]
            T2[i, c] = cs * ti + sn * tt[c]
            tt[c] = cs * tt[c] - sn * ti


@numba.njit(cache=True, nogil=True)
def _hyper(s, s_b, Z1, null_gram, dinv, G0):  # pragma: no cover - compiled
    """D⁻¹ = 1/(1 + s_b s) into dinv, G₀ = Z₁'D⁻¹Z₁ + null Gram into G0; returns log|D|."""
    logdet_d = 0.0
    for x in range(s.shape[0]):
        d = 1.0 + s_b * s[x]
        dinv[x] = 1.0 / d
        logdet_d += math.log(d)
    G0[:, :] = np.dot(Z1.T * dinv, Z1) + null_gram
    return logdet_d


@numba.njit(cache=True, nogil=True)
def _ratios(theta, m):  # pragma: no cover - compiled
    """σb²/σe² and σL²/σe² (``bslmm_mcmc.variance_ratios``)."""
    ratio = theta[0] / (1.0 - theta[0])
    return (1.0 - theta[1]) * ratio, theta[1] * ratio / (m * math.exp(theta[2]))


@numba.njit(cache=True, nogil=True)
def _log_prior_gamma(k, log_pi, m):  # pragma: no cover - compiled
    if log_pi >= 0.0:
        return _NEG_INF
    return k * log_pi + (m - k) * math.log1p(-math.exp(log_pi))


@numba.njit(cache=True, nogil=True)
def _move_probs(k, kmax, m):  # pragma: no cover - compiled
    """Probabilities of add, remove, swap at |γ| = k ≤ kmax ≤ M = m."""
    if k == 0:
        return 1.0, 0.0, 0.0
    if k >= kmax:
        if k >= m:
            return 0.0, 1.0, 0.0
        return 0.0, 0.5, 0.5
    return 1.0 / 3.0, 1.0 / 3.0, 1.0 / 3.0


@numba.njit(cache=True, nogil=True)
def _draw_outside(cumulative, member, rng):  # pragma: no cover - compiled
    """A SNP not in γ, with probability ∝ its weight (by rejection: exact)."""
    m = cumulative.shape[0]
    total = cumulative[m - 1]
    while True:
        j = np.searchsorted(cumulative, rng.random() * total)
        if j > m - 1:
            j = m - 1
        if not member[j]:
            return j


@numba.njit(cache=True, nogil=True)
def _reflect(x, low, high):  # pragma: no cover - compiled
    width = high - low
    x = (x - low) % (2.0 * width)
    return low + (x if x < width else 2.0 * width - x)


@numba.njit(cache=True, nogil=True)
def _draw_effects(A, F, k, s_a, G0, G, Lg, dof, P, rng, out_beta, out_v):  # pragma: no cover
    """σe², then (β, v_γ) | σe², from their conditionals given (γ, h, ρ, π); returns σe².

    σe² ~ InvGamma(dof, y'Py/2) (y'Py the last pivot of G's factor, squared); (β, v_γ) is
    normal with precision P/σe², P = [[X'D⁻¹X, X₁'D⁻¹B_γ], [B_γ'D⁻¹X₁, A + I/s_a]], and mean
    P⁻¹[X'D⁻¹y; B_γ'D⁻¹y₁]: mean + σe·L'⁻¹z with P = LL', z standard normal.
    """
    q = G0.shape[0]
    p = q - 1
    _tail(G, Lg)
    sigma_e2 = 0.5 * Lg[q - 1, q - 1] ** 2 / rng.gamma(dof)
    size = p + k
    for a in range(p):
        for b in range(p):
            P[a, b] = G0[a, b]
        for i in range(k):
            P[p + i, a] = F[i, a]
            P[a, p + i] = F[i, a]
    for i in range(k):
        for j in range(k):
            P[p + i, p + j] = A[i, j]
        P[p + i, p + i] += 1.0 / s_a
    _cholesky(P, size, 0.0, P)  # in place: reads the lower triangle row by row before writing
    rhs = np.empty(size)
    for a in range(p):
        rhs[a] = G0[a, p]
    for i in range(k):
        rhs[p + i] = F[i, p]
    for i in range(size):  # forward: L w = rhs
        acc = rhs[i]
        for t in range(i):
            acc -= P[i, t] * rhs[t]
        rhs[i] = acc / P[i, i]
    scale = math.sqrt(sigma_e2)
    for i in range(size):  # mean = L'⁻¹w, noise = L'⁻¹z: one back substitution of w + σe z
        rhs[i] += scale * rng.standard_normal()
    for i in range(size - 1, -1, -1):
        acc = rhs[i]
        for t in range(i + 1, size):
            acc -= P[t, i] * rhs[t]
        rhs[i] = acc / P[i, i]
    out_beta[:] = rhs[:p]
    out_v[:k] = rhs[p:]
    return sigma_e2


@numba.njit(cache=True, nogil=True)
def chain(
    Bt,
    Z1,
    null_gram,
    s,
    weights,
    cumulative,
    n,
    kmax,
    theta0,
    steps0,
    step_caps,
    draws,
    burn,
    thin,
    update_hyper,
    gamma_moves,
    target_accept,
    rng,
    out_theta,
    out_gamma,
    out_size,
    out_accept,
    out_beta,
    out_v,
    out_sigma_e2,
):  # pragma: no cover - compiled
    """Run one chain; write each kept draw's θ, γ, |γ|, acceptance rates, σe², β and v_γ.

    θ = (h, ρ, log π); σe², β and v_γ from :func:`_draw_effects`.

    ``out_theta`` [draws, 3], ``out_gamma`` and ``out_v`` [draws, kmax] (the first
    ``out_size[d]`` entries), ``out_accept`` [draws, 2] (γ moves, hyperparameter moves since
    the previous draw), ``out_beta`` [draws, p], ``out_sigma_e2`` [draws]. See
    ``bslmm_mcmc.run_chain`` for the arguments; ``step_caps`` bounds the adapted steps.
    Returns the final log posterior (up to a constant).
    """
    m, r = Bt.shape
    q = Z1.shape[1]
    dof = 0.5 * (n - (q - 1))
    bounds_lo = np.array([0.0, 0.0, -math.log(m)])
    bounds_hi = np.array([1.0, 1.0, 0.0])
    theta = theta0.copy()
    steps = steps0.copy()
    s_b, s_a = _ratios(theta, m)
    dinv, dinv2 = np.empty(r), np.empty(r)
    G0, G02 = np.empty((q, q)), np.empty((q, q))
    logdet_d = _hyper(s, s_b, Z1, null_gram, dinv, G0)
    gamma = np.empty(kmax, dtype=np.int64)
    member = np.zeros(m, dtype=np.bool_)
    Bg = np.empty((kmax, r))
    A, A2 = np.zeros((kmax, kmax)), np.zeros((kmax, kmax))
    F, F2 = np.zeros((kmax, q)), np.zeros((kmax, q))
    L, L2 = np.zeros((kmax, kmax)), np.zeros((kmax, kmax))
    T, T2 = np.zeros((kmax, q)), np.zeros((kmax, q))
    G, G2, G3 = G0.copy(), np.empty((q, q)), np.empty((q, q))
    xbuf = np.empty(kmax)
    fnew = np.empty(q)
    dd = ajj = 1.0
    tt = np.empty(q)
    Lg = np.zeros((q, q))
    P = np.zeros((q - 1 + kmax, q - 1 + kmax))
    bw = np.empty(r)
    col = np.empty(kmax)
    lvec = np.empty(kmax)
    tnew = np.empty(q)
    k = 0
    w_out = 1.0
    logdet_c = 0.0
    ok, logdet_x, quad = _tail(G, Lg)
    log_post = -0.5 * (logdet_d + logdet_x) - dof * math.log(quad)
    log_post += _log_prior_gamma(0, theta[2], m)
    acc_g = acc_h = tried_g = tried_h = 0
    total = burn + draws * thin
    for it in range(total):
        for _ in range(gamma_moves):
            tried_g += 1
            p_add, p_rem, _p_swap = _move_probs(k, kmax, m)
            u = rng.random()
            log_pi = theta[2]
            if u < p_add:  # add j: extend L by one row
                j = _draw_outside(cumulative, member, rng)
                for x in range(r):
                    bw[x] = Bt[j, x] * dinv[x]
                if k:
                    col[:k] = np.dot(Bg[:k], bw)
                ajj = np.dot(Bt[j], bw)
                fnew[:] = np.dot(bw, Z1)
                new_k = k + 1
                log_q = math.log(_move_probs(new_k, kmax, m)[1] / new_k)
                log_q -= math.log(p_add * weights[j] / w_out)
                lp = _NEG_INF
                logdet_c2 = 0.0
                ok, dd = _extend(L, T, G, k, col, ajj, fnew, s_a, lvec, tnew, G2, Lg)
                if ok:
                    ok, logdet_x, quad = _tail(G2, Lg)
                if ok:
                    logdet_c2 = logdet_c + math.log(dd) + math.log(s_a)
                    lp = -0.5 * (logdet_d + logdet_c2 + logdet_x) - dof * math.log(quad)
                    lp += _log_prior_gamma(new_k, log_pi, m)
                if math.log(rng.random() + 1e-300) < lp - log_post + log_q:
                    _append(k, j, col, ajj, dd, lvec, fnew, tnew, A, L, F, T, Bg, Bt, gamma, member)
                    G, G2 = G2, G
                    logdet_c, log_post = logdet_c2, lp
                    w_out -= weights[j]
                    k = new_k
                    acc_g += 1
                continue
            # remove γ_t (a rank-one update of L's trailing block), or swap it for j (the
            # same, then a one-row extension): O(|γ|² + r·|γ|), no refactorization
            t = rng.integers(0, k)
            j_old = gamma[t]
            new_k = k - 1
            _delete(L, T, k, t, L2, T2, xbuf, tt)
            logdet_c2 = new_k * math.log(s_a)
            for i in range(new_k):
                logdet_c2 += 2.0 * math.log(L2[i, i])
            for a in range(q):
                for b in range(q):
                    G2[a, b] = G[a, b] + tt[a] * tt[b]
            if u < p_add + p_rem:
                log_q = math.log(
                    _move_probs(new_k, kmax, m)[0] * weights[j_old] / (w_out + weights[j_old])
                )
                log_q -= math.log(p_rem / k)
                w_new = w_out + weights[j_old]
                j = -1
                ok, logdet_x, quad = _tail(G2, Lg)
            else:
                j = _draw_outside(cumulative, member, rng)
                for x in range(r):
                    bw[x] = Bt[j, x] * dinv[x]
                full = np.dot(Bg[:k], bw)
                for i in range(new_k):
                    col[i] = full[i if i < t else i + 1]
                ajj = np.dot(Bt[j], bw)
                fnew[:] = np.dot(bw, Z1)
                w_new = w_out - weights[j] + weights[j_old]
                log_q = math.log(weights[j_old] * w_out / (weights[j] * w_new))
                ok, dd = _extend(L2, T2, G2, new_k, col, ajj, fnew, s_a, lvec, tnew, G3, Lg)
                if ok:
                    logdet_c2 += math.log(dd) + math.log(s_a)
                    ok, logdet_x, quad = _tail(G3, Lg)
                    G2, G3 = G3, G2
                    new_k = k
            lp = _NEG_INF
            if ok:
                lp = -0.5 * (logdet_d + logdet_c2 + logdet_x) - dof * math.log(quad)
                lp += _log_prior_gamma(new_k, log_pi, m)
            if math.log(rng.random() + 1e-300) < lp - log_post + log_q:
                member[j_old] = False
                for i in range(t, k - 1):  # drop row and column t
                    gamma[i] = gamma[i + 1]
                    Bg[i] = Bg[i + 1]
                    F[i] = F[i + 1]
                for i in range(k - 1):
                    si = i if i < t else i + 1
                    for jj in range(k - 1):
                        A[i, jj] = A[si, jj if jj < t else jj + 1]
                if j >= 0:  # the swap's new SNP, last
                    _append(
                        k - 1,
                        j,
                        col,
                        ajj,
                        dd,
                        lvec,
                        fnew,
                        tnew,
                        A,
                        L2,
                        F,
                        T2,
                        Bg,
                        Bt,
                        gamma,
                        member,
                    )
                L, L2 = L2, L
                T, T2 = T2, T
                G, G2 = G2, G
                logdet_c, log_post = logdet_c2, lp
                w_out = w_new
                k = new_k
                acc_g += 1
        if update_hyper:
            for which in range(3):
                tried_h += 1
                theta2 = theta.copy()
                step = steps[which] * rng.standard_normal()
                theta2[which] = _reflect(theta[which] + step, bounds_lo[which], bounds_hi[which])
                accepted = 0.0
                if 0.0 < theta2[0] < 1.0 and 0.0 < theta2[1] < 1.0 and theta2[2] < 0.0:
                    s_b2, s_a2 = _ratios(theta2, m)
                    if which == 2:  # π changes σL only: D and its products stay
                        logdet_d2 = logdet_d
                        ok, logdet_c2, logdet_x, quad = _factor(A, F, k, s_a2, G0, L2, T2, G2, Lg)
                    else:
                        logdet_d2 = _hyper(s, s_b2, Z1, null_gram, dinv2, G02)
                        if k:
                            Bw = Bg[:k] * dinv2
                            A2[:k, :k] = np.dot(Bw, Bg[:k].T)
                            F2[:k] = np.dot(Bw, Z1)
                        ok, logdet_c2, logdet_x, quad = _factor(
                            A2, F2, k, s_a2, G02, L2, T2, G2, Lg
                        )
                    lp = _NEG_INF
                    if ok:
                        lp = -0.5 * (logdet_d2 + logdet_c2 + logdet_x) - dof * math.log(quad)
                        lp += _log_prior_gamma(k, theta2[2], m)
                    if math.log(rng.random() + 1e-300) < lp - log_post:
                        accepted = 1.0
                        theta = theta2
                        s_b, s_a = s_b2, s_a2
                        if which < 2:
                            A, A2 = A2, A
                            F, F2 = F2, F
                            dinv, dinv2 = dinv2, dinv
                            G0, G02 = G02, G0
                            logdet_d = logdet_d2
                        L, L2 = L2, L
                        T, T2 = T2, T
                        G, G2 = G2, G
                        logdet_c, log_post = logdet_c2, lp
                        acc_h += 1
                if it < burn:  # Robbins–Monro toward target_accept, burn-in only
                    steps[which] *= math.exp((accepted - target_accept) / math.sqrt(it + 1.0))
                    steps[which] = min(steps[which], step_caps[which])
        if it < burn or (it - burn + 1) % thin:
            continue
        dk = (it - burn + 1) // thin - 1
        out_theta[dk] = theta
        out_size[dk] = k
        out_gamma[dk, :k] = gamma[:k]
        out_accept[dk, 0] = acc_g / max(tried_g, 1)
        out_accept[dk, 1] = acc_h / max(tried_h, 1) if update_hyper else np.nan
        out_sigma_e2[dk] = _draw_effects(
            A, F, k, s_a, G0, G, Lg, dof, P, rng, out_beta[dk], out_v[dk]
        )
        acc_g = acc_h = tried_g = tried_h = 0
    return log_post
