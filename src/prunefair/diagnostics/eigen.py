"""Top eigenvalue of a symmetric operator from matrix-vector products: Lanczos or power iteration.

- ``lanczos_top_eigenvalue``: Lanczos with full reorthogonalisation (classical Gram-Schmidt, twice), stopped
  when the top Ritz pair's residual estimate |beta_k s_k| falls below tol * |theta|; returns the largest
  (algebraic) eigenvalue. Usually needs far fewer products than power iteration.
- ``power_top_eigenvalue``: power iteration with the Rayleigh quotient, stopped on the same relative
  residual ||H v - lambda v|| <= tol |lambda|; returns the eigenvalue of largest magnitude (with its sign).

Both are seeded (the start vector comes from a CPU generator) and report iterations, the number of
products and the residual ||H v - lambda v|| of the returned unit vector, measured with a real product.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np
import torch

EIGEN_METHODS = ("lanczos", "power")
CRITERIA = ("residual", "value")


@dataclass(frozen=True)
class EigenResult:
    value: float
    iterations: int
    hvps: int  # matrix-vector products used, the residual check included
    residual: float  # ||H v - value v|| for the returned unit vector v
    converged: bool
    method: str
    seed: int
    vector: torch.Tensor | None = field(default=None, repr=False, compare=False)

    @property
    def relative_residual(self) -> float:
        return self.residual / abs(self.value) if self.value else float("inf")

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("vector")
        d["relative_residual"] = self.relative_residual
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "EigenResult":
        return cls(**{k: d[k] for k in ("value", "iterations", "hvps", "residual", "converged", "method", "seed")})


def _start(dim: int, seed: int, device, dtype) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    v = torch.randn(dim, generator=g, dtype=torch.float64).to(device=device, dtype=dtype)
    return v / v.norm()


def lanczos_top_eigenvalue(matvec: Callable[[torch.Tensor], torch.Tensor], dim: int, *, max_iter: int = 50,
                           tol: float = 1e-3, seed: int = 0, device="cpu", dtype=torch.float32,
                           check_residual: bool = True, criterion: str = "residual") -> EigenResult:
    """Largest eigenvalue of the symmetric operator ``matvec`` on R^dim by Lanczos with full reorthogonalisation.

    ``criterion="residual"`` stops when the residual estimate |beta_k s_k| <= tol |theta|; ``"value"`` stops when
    the top Ritz value changes by less than tol relatively between iterations (PyHessian's rule for power
    iteration). Either way the returned residual is measured with one more product when ``check_residual``.
    """
    if criterion not in CRITERIA:
        raise ValueError(f"unknown criterion {criterion!r}; allowed: {', '.join(CRITERIA)}")
    max_iter = max(1, min(max_iter, dim))
    Q = torch.zeros(max_iter, dim, device=device, dtype=dtype)
    q = _start(dim, seed, device, dtype)
    alphas, betas = [], []
    theta, s, converged, k = float("nan"), None, False, 0
    for k in range(1, max_iter + 1):
        Q[k - 1] = q
        w = matvec(q)
        alpha = float(w @ q)
        alphas.append(alpha)
        basis = Q[:k]
        for _ in range(2):  # full reorthogonalisation against every earlier vector, twice
            w = w - basis.T @ (basis @ w)
        beta = float(w.norm())
        T = np.diag(alphas) + np.diag(betas, 1) + np.diag(betas, -1)
        evals, evecs = np.linalg.eigh(T)
        previous, theta, s = theta, float(evals[-1]), evecs[:, -1]
        estimate = abs(beta * s[-1])
        if criterion == "value":
            done = k > 1 and abs(theta - previous) <= tol * max(abs(theta), 1e-30)
        else:
            done = estimate <= tol * max(abs(theta), 1e-30)
        if done or beta <= 1e-10 * max(abs(theta), 1.0):
            converged = True
            break
        if k == max_iter:
            break
        betas.append(beta)
        q = w / beta
    vec = torch.as_tensor(s, device=device, dtype=dtype) @ Q[:k]
    vec = vec / vec.norm()
    hvps = k
    residual = float("nan")
    if check_residual:
        residual = float((matvec(vec) - theta * vec).norm())
        hvps += 1
    return EigenResult(theta, k, hvps, residual, converged, "lanczos", seed, vec)


def power_top_eigenvalue(matvec: Callable[[torch.Tensor], torch.Tensor], dim: int, *, max_iter: int = 200,
                         tol: float = 1e-3, seed: int = 0, device="cpu", dtype=torch.float32,
                         criterion: str = "residual") -> EigenResult:
    """Dominant eigenvalue (largest |lambda|, signed) by power iteration; stops on the relative residual
    (``criterion="residual"``) or on the relative change of the Rayleigh quotient (``"value"``)."""
    if criterion not in CRITERIA:
        raise ValueError(f"unknown criterion {criterion!r}; allowed: {', '.join(CRITERIA)}")
    v = _start(dim, seed, device, dtype)
    lam, residual, converged, k = float("nan"), float("nan"), False, 0
    for k in range(1, max_iter + 1):
        w = matvec(v)
        previous, lam = lam, float(w @ v)
        residual = float((w - lam * v).norm())
        if criterion == "value":
            done = k > 1 and abs(lam - previous) <= tol * max(abs(lam), 1e-30)
        else:
            done = residual <= tol * max(abs(lam), 1e-30)
        if done:
            converged = True
            break
        v = w / w.norm()
    return EigenResult(lam, k, k, residual, converged, "power", seed, v)


def top_eigenvalue(matvec, dim: int, *, method: str = "lanczos", max_iter: int = 50, tol: float = 1e-3,
                   seed: int = 0, device="cpu", dtype=torch.float32, criterion: str = "residual") -> EigenResult:
    kw = dict(max_iter=max_iter, tol=tol, seed=seed, device=device, dtype=dtype, criterion=criterion)
    if method == "lanczos":
        return lanczos_top_eigenvalue(matvec, dim, **kw)
    if method == "power":
        return power_top_eigenvalue(matvec, dim, **kw)
    raise ValueError(f"unknown eigen method {method!r}; allowed: {', '.join(EIGEN_METHODS)}")


def hessian_top_eigenvalue(model, x: torch.Tensor, y: torch.Tensor, *, method: str = "lanczos",
                           hvp: str = "auto", max_iter: int = 50, tol: float = 1e-3, seed: int = 0,
                           chunk_size: int = 1024, criterion: str = "residual") -> EigenResult:
    """lambda(H) for H the Hessian of the mean cross-entropy of ``model`` (eval mode) on (x, y)."""
    from prunefair.diagnostics.hvp import GroupHessian

    op = GroupHessian(model, x, y, method=hvp, chunk_size=chunk_size)
    try:
        return top_eigenvalue(op, op.dim, method=method, max_iter=max_iter, tol=tol, seed=seed,
                              device=op.device, dtype=op.dtype, criterion=criterion)
    finally:
        op.release()
