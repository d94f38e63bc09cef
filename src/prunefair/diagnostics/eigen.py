"""Top eigenvalue of a symmetric operator from matrix-vector products: Lanczos or power iteration.

- ``lanczos_top_eigenvalue``: Lanczos with full reorthogonalisation (classical Gram-Schmidt, twice); returns
  the largest (algebraic) eigenvalue. By default it stops when the top Ritz value's error estimate
  min(r, r^2 / gap) (r = |beta_k s_k| the Ritz pair's residual, gap to the next Ritz value) falls below
  tol * |theta|: the eigenvalue converges about twice as fast as the residual, and the eigenvalue is the answer.
  It is an estimate, not a bound: r bounds the distance to *some* eigenvalue, and r^2 / gap is Kato-Temple's
  bound with the Ritz gap standing in for the unknown spectral gap. After 2-3 products the second Ritz value can
  lie far below the second eigenvalue, so the Ritz gap overstates the spectral gap and the estimate the error:
  on small digits MLPs the actual error reached 2.4x tol (5 of 60 groups above tol; on the CIFAR-10 study's
  model at most 1.1x; docs/diagnostics.md). Where the top of the spectrum is clustered and the start
  nearly misses the top eigenvector, a run can settle on the second eigenvalue, as any Krylov method stopped
  early can. ``criterion="residual"`` is the safer, slower rule.
- ``power_top_eigenvalue``: power iteration with the Rayleigh quotient, stopped on the relative residual
  ||H v - lambda v|| <= tol |lambda|; returns the eigenvalue of largest magnitude (with its sign).
  ``top_eigenvalue(method="power")`` returns the largest one (a second, shifted run when the dominant is < 0).

Both are seeded (the random start vector comes from a CPU generator), take an optional start vector (the
Hessian's callers pass the gradient), and report iterations, the number of products and the residual
||H v - lambda v|| of the returned unit vector (Lanczos: its recurrence's value unless ``check_residual``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import Callable

import numpy as np
import torch

EIGEN_METHODS = ("lanczos", "power")
CRITERIA = ("eigenvalue", "residual", "value")
STARTS = ("gradient", "random")
START_MIX = 0.1  # the random share of a given start vector


class NotFiniteError(ValueError):
    """A loss, gradient or matrix-vector product that is NaN or infinite (NaN inputs, or weights so large that the
    logits or the gradient overflow): said at once, naming what and where, instead of NaN eigenvalues or numpy's
    "Eigenvalues did not converge" further on. ``index``: the operator (e.g. the group) it came from, when known."""

    def __init__(self, message: str, index: int | None = None):
        super().__init__(message)
        self.index = index


_PRODUCT = "the {} is not finite ({}): NaN inputs, or weights so large that the logits or the gradient overflow"


def _not_finite(w: torch.Tensor, value: float) -> NotFiniteError:
    """The error for a product whose norm (or residual) came out as ``value``, NaN or inf: a product with an entry
    that is not finite, or finite entries whose norm overflows the dtype (float32 beyond about 1.8e19)."""
    if bool(torch.isfinite(w).all()):
        return NotFiniteError(f"the Hessian-vector product's norm overflows {str(w.dtype).replace('torch.', '')} "
                              f"(its largest entry is {float(w.abs().max()):.3g}): the curvature is too large for "
                              "this precision; run the diagnostics on the model in float64 (model.double())")
    return NotFiniteError(_PRODUCT.format("Hessian-vector product", value))


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
    residual_measured: bool = True  # False: Lanczos's own estimate |beta_k s_k| (equal in exact arithmetic)

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
        keys = ("value", "iterations", "hvps", "residual", "converged", "method", "seed", "residual_measured")
        return cls(**{k: d[k] for k in keys if k in d})


def _start(dim: int, seed: int, device, dtype, start: torch.Tensor | None = None,
           mix: float = START_MIX) -> torch.Tensor:
    """The seeded random unit vector, or ``start`` (normalised) plus ``mix`` times that random vector, so that
    a start orthogonal to the top eigenvector is not stuck in an invariant subspace. The random share is small
    (about ``mix``/sqrt(dim) along any one direction): a start lying almost exactly in a lower eigenspace can
    still stop at that eigenvalue under the default ``"eigenvalue"`` criterion; ``"residual"`` goes on longer."""
    g = torch.Generator().manual_seed(seed)
    v = torch.randn(dim, generator=g, dtype=torch.float64).to(device=device, dtype=dtype)
    v = v / v.norm()
    if start is not None:
        s = start.detach().reshape(-1).to(device=device, dtype=dtype)
        if s.numel() != dim:
            raise ValueError(f"start vector has {s.numel()} entries; the operator has dimension {dim}")
        norm = float(s.norm())
        if norm > 0 and norm == norm:  # a zero or NaN start falls back to the random vector
            v = s / norm + mix * v
            v = v / v.norm()
    return v


def _done(criterion: str, k: int, theta: float, previous: float, estimate: float, gap: float, tol: float) -> bool:
    scale = tol * abs(theta)  # relative throughout: no absolute floor, so any scale of H stops alike
    if criterion == "value":
        return k > 1 and abs(theta - previous) <= scale
    if criterion == "residual":
        return estimate <= scale
    # "eigenvalue": an estimate of the Ritz value's error, min(r, r^2 / gap) (Kato-Temple with the Ritz gap)
    return k > 1 and min(estimate, estimate * estimate / gap if gap > 0 else math.inf) <= scale


class Lanczos:
    """One Lanczos run as a stepper, so several runs can share batched products (``lanczos_lockstep``):
    ``q`` is the vector to multiply next; ``step(H q)`` returns True once the run has stopped."""

    def __init__(self, dim: int, *, max_iter: int = 50, tol: float = 1e-3, seed: int = 0, device="cpu",
                 dtype=torch.float32, criterion: str = "eigenvalue", start: torch.Tensor | None = None):
        check_settings(max_iter=max_iter, tol=tol, criterion=criterion)
        self.max_iter, self.tol, self.seed, self.criterion = max(1, min(max_iter, dim)), tol, seed, criterion
        # the Lanczos basis, grown as needed (max_iter x dim up front would be 2 GB for ResNet18 at 50 steps)
        self.Q = torch.empty(min(self.max_iter, 4), dim, device=device, dtype=dtype)
        self.q = _start(dim, seed, device, dtype, start)
        self.alphas: list[float] = []
        self.betas: list[float] = []
        self.theta, self.s, self.estimate = float("nan"), None, float("nan")
        self.k, self.converged, self.stopped = 0, False, False
        self.norm = 0.0

    def step(self, w: torch.Tensor) -> bool:
        """Take w = H q; returns whether the run has stopped (converged or out of iterations)."""
        self.k += 1
        k, q = self.k, self.q
        if k > len(self.Q):
            grown = torch.empty(min(self.max_iter, 2 * len(self.Q)), self.Q.shape[1], device=q.device, dtype=q.dtype)
            grown[: len(self.Q)] = self.Q
            self.Q = grown
        self.Q[k - 1] = q
        norm = float(w.norm())
        if not math.isfinite(norm):  # a NaN or inf product would end in numpy's "Eigenvalues did not converge"
            raise _not_finite(w, norm)
        self.norm = max(self.norm, norm)  # ||H q|| <= ||H||: the scale a breakdown is judged at
        self.alphas.append(float(w @ q))
        basis = self.Q[:k]
        for _ in range(2):  # full reorthogonalisation against every earlier vector, twice
            w = w - basis.T @ (basis @ w)
        beta = float(w.norm())
        T = np.diag(self.alphas) + np.diag(self.betas, 1) + np.diag(self.betas, -1)
        evals, evecs = np.linalg.eigh(T)
        previous, self.theta, self.s = self.theta, float(evals[-1]), evecs[:, -1]
        self.estimate = abs(beta * self.s[-1])
        # the gap to the next Ritz value, at most |theta|: a large negative Ritz value (converged early at the far
        # end of an indefinite spectrum) says nothing of the eigenvalues just below the top, and would shrink
        # r^2 / gap enough to stop on a far-off top Ritz value
        gap = min(self.theta - float(evals[-2]), abs(self.theta)) if k > 1 else float("inf")
        if _done(self.criterion, k, self.theta, previous, self.estimate, gap, self.tol):
            self.converged = self.stopped = True
        elif beta <= 1e-10 * self.norm:  # an invariant subspace (relative: a Hessian may be tiny): no new
            # direction to go on with; converged only if the residual itself is within the tolerance
            self.stopped = True
            self.converged = self.estimate <= self.tol * abs(self.theta)
        elif k == self.max_iter:
            self.stopped = True
        else:
            self.betas.append(beta)
            self.q = w / beta
        return self.stopped

    def vector(self) -> torch.Tensor:
        """The top Ritz vector (unit norm)."""
        vec = torch.as_tensor(self.s, device=self.Q.device, dtype=self.Q.dtype) @ self.Q[: self.k]
        return vec / vec.norm()

    def result(self, measured_residual: float | None = None) -> EigenResult:
        measured = measured_residual is not None
        return EigenResult(self.theta, self.k, self.k + int(measured),
                           measured_residual if measured else self.estimate, self.converged, "lanczos", self.seed,
                           self.vector(), residual_measured=measured)


def lanczos_top_eigenvalue(matvec: Callable[[torch.Tensor], torch.Tensor], dim: int, *, max_iter: int = 50,
                           tol: float = 1e-3, seed: int = 0, device="cpu", dtype=torch.float32,
                           check_residual: bool = False, criterion: str = "eigenvalue",
                           start: torch.Tensor | None = None) -> EigenResult:
    """Largest eigenvalue of the symmetric operator ``matvec`` on R^dim by Lanczos with full reorthogonalisation.

    Stopping rules (``criterion``): ``"eigenvalue"`` (default) stops when the error estimate of the top Ritz value,
    min(r, r^2 / gap) with r = |beta_k s_k| its residual and gap the distance to the next Ritz value (at most
    |theta|), is below tol |theta|; ``"residual"`` when r <= tol |theta| (stricter: the eigenvalue error is about
    r^2 / gap);
    ``"value"`` when the top Ritz value changes by less than tol relatively (PyHessian's rule for power iteration).
    The returned residual is r, which equals ||H v - theta v|| for the returned unit vector v in exact
    arithmetic; ``check_residual`` measures it with one more product instead. ``start`` (e.g. the gradient)
    replaces the random start vector, with a seeded random share of ``START_MIX``.
    """
    run = Lanczos(dim, max_iter=max_iter, tol=tol, seed=seed, device=device, dtype=dtype, criterion=criterion,
                  start=start)
    while not run.step(matvec(run.q)):
        pass
    if not check_residual:
        return run.result()
    vec = run.vector()
    return run.result(float((matvec(vec) - run.theta * vec).norm()))


def lanczos_lockstep(matmat: Callable[[torch.Tensor], torch.Tensor], dim: int, count: int, *,
                     starts: torch.Tensor | list[torch.Tensor | None] | None = None, **kw) -> list[EigenResult]:
    """``count`` Lanczos runs, one per operator, advanced together: ``matmat`` maps a [count, dim] stack of
    vectors to the stack of products (row i through operator i), e.g. every group's Hessian in one pass.
    Each run stops on its own rule; a stopped run's row is zero in later products. Same results as
    ``lanczos_top_eigenvalue`` run per operator with the same arguments."""
    runs = [Lanczos(dim, start=None if starts is None else starts[i], **kw) for i in range(count)]
    while not all(r.stopped for r in runs):
        V = torch.stack([torch.zeros_like(r.q) if r.stopped else r.q for r in runs])
        W = matmat(V)
        for i, (r, w) in enumerate(zip(runs, W)):
            if not r.stopped:
                try:
                    r.step(w)
                except NotFiniteError as exc:
                    raise NotFiniteError(f"operator {i}: {exc}", index=i) from None
    return [r.result() for r in runs]


def power_top_eigenvalue(matvec: Callable[[torch.Tensor], torch.Tensor], dim: int, *, max_iter: int = 200,
                         tol: float = 1e-3, seed: int = 0, device="cpu", dtype=torch.float32,
                         criterion: str = "eigenvalue", start: torch.Tensor | None = None) -> EigenResult:
    """Dominant eigenvalue (largest |lambda|, signed) by power iteration with the Rayleigh quotient; stops on the
    relative residual ||H v - lambda v|| (``"residual"``, and ``"eigenvalue"``: power iteration has no gap
    estimate, so the residual is its error bound) or on the relative change of the quotient (``"value"``)."""
    check_settings(max_iter=max_iter, tol=tol, criterion=criterion)
    v = _start(dim, seed, device, dtype, start)
    lam, residual, converged, k = float("nan"), float("nan"), False, 0
    for k in range(1, max_iter + 1):
        w = matvec(v)
        previous, lam = lam, float(w @ v)
        residual = float((w - lam * v).norm())
        if not math.isfinite(residual):
            raise _not_finite(w, residual)
        if _done("value" if criterion == "value" else "residual", k, lam, previous, residual, 0.0, tol):
            converged = True
            break
        if k == max_iter:  # keep the vector the residual was measured at
            break
        v = w / w.norm()
    return EigenResult(lam, k, k, residual, converged, "power", seed, v, residual_measured=True)


def _largest_by_power(matvec, dim: int, *, tol: float, start=None, **kw) -> EigenResult:
    """The largest (algebraic) eigenvalue by power iteration. Power iteration finds the dominant one (largest
    |lambda|); when that is negative, the largest is the dominant eigenvalue of H - mu I (mu the negative one, a
    spectrum >= 0), found by a second run; that run's tolerance is relative to lambda - mu, so it is tightened
    once, from where it stopped, until it holds relative to lambda itself."""
    first = power_top_eigenvalue(matvec, dim, tol=tol, start=start, **kw)
    if not first.value < 0:
        return first
    mu = first.value
    runs, want, start = [first], tol, None
    while True:
        run = power_top_eigenvalue(lambda v: matvec(v) - mu * v, dim, tol=want, start=start, **kw)
        runs.append(run)
        top = run.value + mu
        need = tol * abs(top) / max(abs(run.value), 1e-30)
        if not 0 < need < want or not run.converged or len(runs) == 3:  # need 0: top is 0, no tighter tol
            break
        want, start = need, run.vector
    return replace(run, value=top, iterations=sum(r.iterations for r in runs), hvps=sum(r.hvps for r in runs))


def top_eigenvalue(matvec, dim: int, *, method: str = "lanczos", max_iter: int = 50, tol: float = 1e-3,
                   seed: int = 0, device="cpu", dtype=torch.float32, criterion: str = "eigenvalue",
                   start: torch.Tensor | None = None, check_residual: bool = False) -> EigenResult:
    kw = dict(max_iter=max_iter, tol=tol, seed=seed, device=device, dtype=dtype, criterion=criterion, start=start)
    if method == "lanczos":
        return lanczos_top_eigenvalue(matvec, dim, check_residual=check_residual, **kw)
    if method == "power":
        return _largest_by_power(matvec, dim, **kw)
    raise ValueError(f"unknown eigen method {method!r}; allowed: {', '.join(EIGEN_METHODS)}")


def check_settings(*, max_iter: int, tol: float, criterion: str, method: str = "lanczos") -> None:
    """The eigenvalue settings, checked before any product: max_iter 0 ran one product and returned its Rayleigh
    quotient as the eigenvalue, a tolerance <= 0 ran every iteration and reported no convergence."""
    if method not in EIGEN_METHODS:
        raise ValueError(f"unknown eigen method {method!r}; allowed: {', '.join(EIGEN_METHODS)}")
    if criterion not in CRITERIA:
        raise ValueError(f"unknown criterion {criterion!r}; allowed: {', '.join(CRITERIA)}")
    if isinstance(max_iter, bool) or not isinstance(max_iter, (int, np.integer)) or max_iter < 1:
        raise ValueError(f"max_iter = {max_iter!r}: at least 1 (products per eigenvalue)")
    if not (isinstance(tol, (int, float, np.floating)) and math.isfinite(tol) and tol > 0):
        raise ValueError(f"tol = {tol!r}: a relative tolerance > 0 (e.g. 1e-3)")


def check_start(start: str) -> str:
    if start not in STARTS:
        raise ValueError(f"unknown start {start!r}; allowed: {', '.join(STARTS)}")
    return start


def start_vector(op, start: str) -> torch.Tensor | None:
    """The start named by ``start`` for a Hessian operator: its gradient (a [groups, dim] stack for a stacked
    operator), or None for the seeded random vector."""
    return op.gradient() if check_start(start) == "gradient" else None


def hessian_top_eigenvalue(model, x: torch.Tensor, y: torch.Tensor, *, method: str = "lanczos",
                           hvp: str = "auto", max_iter: int = 50, tol: float = 1e-3, seed: int = 0,
                           chunk_size: int = 1024, criterion: str = "eigenvalue", start: str = "gradient",
                           check_residual: bool = False) -> EigenResult:
    """lambda(H) for H the Hessian of the mean cross-entropy of ``model`` (eval mode) on (x, y).

    ``start="gradient"`` (default) starts from the gradient on (x, y), which a trained model's Hessian mostly
    maps within its top eigenspace; ``"random"`` from a seeded Gaussian vector."""
    from prunefair.diagnostics.hvp import GroupHessian
    from prunefair.models import kept_modes

    check_start(start)
    # derivatives: gradients on also when called under torch.no_grad() or torch.inference_mode()
    with kept_modes(model), torch.inference_mode(False), torch.enable_grad():
        op = GroupHessian(model, x, y, method=hvp, chunk_size=chunk_size)
        try:
            return top_eigenvalue(op, op.dim, method=method, max_iter=max_iter, tol=tol, seed=seed,
                                  device=op.device, dtype=op.dtype, criterion=criterion,
                                  check_residual=check_residual, start=start_vector(op, start))
        finally:
            op.release()
