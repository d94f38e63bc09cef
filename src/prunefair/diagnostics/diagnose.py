"""All of Sections 4-5 for one dense model: ``diagnose_groups(model, data) -> GroupDiagnostics``."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from torch import nn

from prunefair.data import GroupedData
from prunefair.diagnostics.boundary import group_boundary_distance
from prunefair.diagnostics.bound import theorem1_terms
from prunefair.diagnostics.eigen import (
    EigenResult, NotFiniteError, check_settings, check_start, lanczos_lockstep, start_vector, top_eigenvalue,
)
from prunefair.diagnostics.stacked_hvp import StackedGroupHessian
from prunefair.diagnostics.gradients import NO_TRAINABLE, group_gradient_norms
from prunefair.diagnostics.hvp import HVP_METHODS, GroupHessian
from prunefair.diagnostics.trace import hutchinson_trace
from prunefair.measure import evaluate_groups
from prunefair.models import eval_mode, input_dtype, model_device

# stored at the top level (a list per diagnostic, one number per group) ...
DIAGNOSTICS = ("grad_norm", "hessian_top_eigenvalue", "hessian_trace", "gini", "margin", "f_one_minus_f")
# ... and per group, as records under "per_group"
DETAILS = ("count", "loss", "accuracy", "hessian_samples", "hessian_trace_se")
ARRAYS = DIAGNOSTICS + DETAILS

# diagnose_groups's defaults, which the [diagnostics] section (config.DiagnosticsConfig) takes too, so that a model
# diagnosed from Python gets the numbers a study or `prunefair diagnose` gives (tests/diagnostics/
# test_outputs_and_defaults.py checks the other shared defaults)
HARM_DETAILS = ("hessian_trace", "hessian_trace_se", "f_one_minus_f")  # predicted_harm's last columns
DEFAULT_MAX_SAMPLES = 256  # samples per group for the Hessian
DEFAULT_TRACE_SAMPLES = 10  # Hutchinson probes per group


def _jsonable(a) -> list:
    return [None if (isinstance(v, float) and np.isnan(v)) else v for v in np.asarray(a).tolist()]


@dataclass
class GroupDiagnostics:
    """Per-group diagnostics of a dense model theta* (each array has one entry per group)."""

    group_names: tuple[str, ...]
    count: np.ndarray
    loss: np.ndarray
    accuracy: np.ndarray
    grad_norm: np.ndarray  # ||g_a||, exact over the whole group
    hessian_top_eigenvalue: np.ndarray  # lambda(H_a), from Hessian-vector products
    hessian_samples: np.ndarray  # samples of the group the Hessian was computed on
    hessian_trace: np.ndarray  # Hutchinson estimate of tr(H_a) (NaN if not asked)
    hessian_trace_se: np.ndarray
    f_one_minus_f: np.ndarray  # binary tasks only, else NaN
    gini: np.ndarray  # 1 - sum_c p_c^2
    margin: np.ndarray  # logit margin z_y - max_{c != y} z_c
    full_grad_norm: float
    cancellation: float
    prop1_error: float | None
    eigen: list[dict] = field(default_factory=list)  # per group: EigenResult.to_dict() (None for empty groups)
    split: str | None = None  # the split the diagnostics were computed on, if known
    settings: dict = field(default_factory=dict)
    timing: dict = field(default_factory=dict)

    def frame(self) -> pd.DataFrame:
        df = pd.DataFrame({k: getattr(self, k) for k in ARRAYS})
        df.insert(0, "group", list(self.group_names))
        df["hessian_iterations"] = pd.array([e["iterations"] if e else None for e in self.eigen], dtype="Int64")
        df["hessian_residual"] = [e["residual"] if e else None for e in self.eigen]
        return df

    def predicted_harm(self, distance: float) -> pd.DataFrame:
        """Theorem 1 terms at ||theta_bar - theta*|| = distance, groups ranked by the bound (1 = most harm)."""
        first, second, bound = theorem1_terms(self.grad_norm, self.hessian_top_eigenvalue, distance)
        df = pd.DataFrame({"group": list(self.group_names), "n": self.count, "grad_norm": self.grad_norm,
                           "hessian_top_eigenvalue": self.hessian_top_eigenvalue, "gradient_term": first,
                           "curvature_term": second, "bound": bound, "gini": self.gini, "margin": self.margin})
        df["rank"] = df.bound.rank(ascending=False, method="min").astype("Int64")
        for c in HARM_DETAILS:  # after the columns of earlier versions (diagnose.csv puts them after rate, distance)
            df[c] = getattr(self, c)
        return df.sort_values("rank", kind="stable").reset_index(drop=True)

    def to_dict(self) -> dict:
        """JSON form: each diagnostic a list over groups at the top level, details as per-group records.

        Lists that are all NaN (the trace when not asked, f(1-f) for multi-class tasks) are left out.
        """
        d: dict = {"split": self.split, "group_names": list(self.group_names)}
        for k in DIAGNOSTICS:
            a = np.asarray(getattr(self, k), float)
            if np.isfinite(a).any():
                d[k] = _jsonable(a)
        d["per_group"] = [
            {"group": name, **{k: _jsonable([getattr(self, k)[i]])[0] for k in DETAILS}, "eigen": self.eigen[i]}
            for i, name in enumerate(self.group_names)]
        d.update({"full_grad_norm": self.full_grad_norm, "cancellation": self.cancellation,
                  "prop1_error": self.prop1_error, "settings": self.settings, "timing": self.timing})
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "GroupDiagnostics":
        G = len(d["group_names"])
        recs = d.get("per_group", [{}] * G)
        arrays = {k: np.asarray([np.nan if v is None else v for v in d.get(k, [None] * G)], dtype=float)
                  for k in DIAGNOSTICS}
        arrays.update({k: np.asarray([np.nan if r.get(k) is None else r[k] for r in recs], dtype=float)
                       for k in DETAILS})
        arrays["count"] = arrays["count"].astype(np.int64)
        arrays["hessian_samples"] = arrays["hessian_samples"].astype(np.int64)
        return cls(tuple(d["group_names"]), **arrays, full_grad_norm=d["full_grad_norm"],
                   cancellation=d["cancellation"], prop1_error=d.get("prop1_error"),
                   eigen=[r.get("eigen") for r in recs], split=d.get("split"),
                   settings=dict(d.get("settings", {})), timing=dict(d.get("timing", {})))


def _hessian_subset(data: GroupedData, a: int, max_samples: int | None, seed: int) -> torch.Tensor:
    idx = torch.nonzero(data.g == a).flatten()
    if max_samples is not None and len(idx) > max_samples:
        g = torch.Generator().manual_seed(seed * 1000 + a)
        idx = idx[torch.randperm(len(idx), generator=g)[:max_samples]].sort().values
    return idx


def _hessian_inputs(data: GroupedData, idx: torch.Tensor, device, channels_last: bool, dtype: torch.dtype):
    x = data.to_float(data.x[idx].to(device), dtype)
    if channels_last and x.dim() == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    return x, data.y[idx].to(device)


def _check_losses(data: GroupedData, loss: np.ndarray, split: str | None) -> None:
    """Each group's mean loss (computed anyway) must be a number: NaN inputs or overflowing weights are said here,
    with the group, instead of as NaN diagnostics or numpy's "Eigenvalues did not converge" later."""
    counts = data.group_counts()
    for a, v in enumerate(np.asarray(loss, float)):
        if counts[a] and not np.isfinite(v):
            on = f" on {split}" if split else ""
            raise NotFiniteError(f"group {data.group_names[a]!r}{on}: the mean loss of the model is not finite ({v}): "
                                 "NaN inputs, or weights so large that the logits overflow", index=a)


def _named(exc: NotFiniteError, data: GroupedData, a: int | None, split: str | None) -> NotFiniteError:
    """``exc`` with the group (and split) it came from in front of its message."""
    on = f" on {split}" if split else ""
    where = f"group {data.group_names[a]!r}{on}" if a is not None else f"a group{on}"
    message = str(exc).split(": ", 1)[1] if str(exc).startswith("operator ") else str(exc)
    return NotFiniteError(f"{where}: {message}", index=a)


def diagnose_groups(
    model: nn.Module,
    data: GroupedData,
    *,
    batch_size: int = 512,
    max_samples: int | None = DEFAULT_MAX_SAMPLES,
    eigen_method: str = "lanczos",
    hvp: str = "auto",
    max_iter: int = 50,
    tol: float = 1e-3,
    criterion: str = "eigenvalue",
    start: str = "gradient",
    stacked: bool = False,
    trace_samples: int = DEFAULT_TRACE_SAMPLES,
    seed: int = 0,
    device: torch.device | str | None = None,
    channels_last: bool = False,
    check_prop1: bool = True,
    split: str | None = None,
) -> GroupDiagnostics:
    """Gradient norms (exact, whole groups), Hessian top eigenvalues and traces (on up to ``max_samples`` per
    group, seeded), distances to the decision boundary and per-group loss/accuracy of ``model`` in eval mode.
    The defaults are those of the study file's [diagnostics] section (256 samples per group for the Hessian, 10
    Hutchinson probes; ``trace_samples=0``: no trace, 10 fewer products per group). ``device``: where the data
    go, by default the model's (a model elsewhere than a given ``device`` is a ValueError).

    A loss, gradient or Hessian-vector product that is not finite (NaN inputs, overflowing weights) is a
    ``NotFiniteError`` (a ValueError) naming the group, checked on numbers read anyway (no extra pass).

    ``stacked`` runs every group's Lanczos together on ``StackedGroupHessian`` (one pass per product for all
    groups; same values). Off by default: measured slower than group by group (CPU 0.55x on UTKFace, H200 0.96x
    on a small CNN; see docs/benchmarks.md)."""
    check_start(start)  # the settings first, so that a wrong one costs no gradient pass
    check_settings(max_iter=max_iter, tol=tol, criterion=criterion, method=eigen_method)
    if hvp not in HVP_METHODS:
        raise ValueError(f"unknown hvp method {hvp!r}; allowed: {', '.join(HVP_METHODS)}")
    if isinstance(trace_samples, bool) or not isinstance(trace_samples, (int, np.integer)) or not (
            trace_samples == 0 or trace_samples >= 2):
        raise ValueError(f"trace_samples = {trace_samples!r}: 0 (no trace) or at least 2 (for a standard error)")
    if not isinstance(data, GroupedData):
        raise TypeError(f"data: one split's GroupedData (e.g. splits.train), got a {type(data).__name__}")
    if max_samples is not None and max_samples < 1:
        raise ValueError(f"max_samples = {max_samples}: at least 1 sample per group for the Hessian, or None for all")
    if not any(p.requires_grad for p in model.parameters()):
        raise ValueError(NO_TRAINABLE)
    device = model_device(model, device)  # None: the model's device
    # derivatives: gradients on even when called under torch.no_grad() or torch.inference_mode()
    with eval_mode(model), torch.inference_mode(False), torch.enable_grad():
        t0 = time.perf_counter()
        stats = evaluate_groups(model, data, batch_size=batch_size, device=device, channels_last=channels_last)
        _check_losses(data, stats.loss, split)
        try:
            grads = group_gradient_norms(model, data, batch_size=batch_size, device=device,
                                         channels_last=channels_last, check_full=check_prop1)
        except NotFiniteError as exc:  # its message names the group; the split is added here
            name = f"group {data.group_names[exc.index]!r}" if exc.index is not None else None
            if not (split and name and str(exc).startswith(f"{name}: ")):
                raise
            raise NotFiniteError(f"{name} on {split}{str(exc)[len(name):]}", index=exc.index) from None
        t1 = time.perf_counter()
        boundary = group_boundary_distance(model, data, batch_size=batch_size, device=device,
                                           channels_last=channels_last)
        t2 = time.perf_counter()
        G = data.num_groups
        lam, trace, trace_se = np.full(G, np.nan), np.full(G, np.nan), np.full(G, np.nan)
        subsets = [_hessian_subset(data, a, max_samples, seed) for a in range(G)]
        samples = np.array([len(idx) for idx in subsets], dtype=np.int64)
        eigen = [None] * G
        inputs = {a: _hessian_inputs(data, idx, device, channels_last, input_dtype(model))
                  for a, idx in enumerate(subsets) if len(idx)}
        use_stacked = stacked and eigen_method == "lanczos" and bool(inputs)
        if use_stacked:  # every group's product in one pass
            op = StackedGroupHessian(model, [x for x, _ in inputs.values()], [y for _, y in inputs.values()],
                                     chunk_size=batch_size)
            try:
                results = lanczos_lockstep(op, op.dim, len(inputs), max_iter=max_iter, tol=tol, seed=seed,
                                           device=op.device, dtype=op.dtype, criterion=criterion,
                                           starts=start_vector(op, start))
            except NotFiniteError as exc:
                a = list(inputs)[exc.index] if exc.index is not None else None
                raise _named(exc, data, a, split) from None
            finally:
                op.release()
            for a, res in zip(inputs, results):
                lam[a], eigen[a] = res.value, res.to_dict()
        per_group = inputs if not use_stacked or trace_samples else {}  # eigenvalues group by group, and traces
        method, rules = hvp, True
        for a, (x, y) in per_group.items():
            op = GroupHessian(model, x, y, method=method, chunk_size=batch_size, rules=rules)
            method, rules = op.method, op.rules  # "auto" is decided once (on the first group), then reused
            try:
                if not use_stacked:
                    res: EigenResult = top_eigenvalue(op, op.dim, method=eigen_method, max_iter=max_iter, tol=tol,
                                                      seed=seed, device=op.device, dtype=op.dtype,
                                                      criterion=criterion, start=start_vector(op, start))
                    lam[a], eigen[a] = res.value, res.to_dict()
                if trace_samples:
                    tr = hutchinson_trace(op, op.dim, samples=trace_samples, seed=seed, device=op.device,
                                          dtype=op.dtype)
                    trace[a], trace_se[a] = tr.value, tr.stderr
            except NotFiniteError as exc:
                raise _named(exc, data, a, split) from None
            finally:
                op.release()
        hvp_used = "stacked" if use_stacked else (method if per_group else None)
        t3 = time.perf_counter()
    settings = {"batch_size": batch_size, "max_samples": max_samples, "eigen_method": eigen_method,
                "hvp": hvp, "hvp_used": hvp_used, "hvp_rules": rules if per_group else None, "max_iter": max_iter,
                "tol": tol, "criterion": criterion, "start": start, "trace_samples": trace_samples, "seed": seed,
                "samples": len(data)}
    timing = {"gradients_s": t1 - t0, "boundary_s": t2 - t1, "hessian_s": t3 - t2}
    return GroupDiagnostics(
        tuple(data.group_names), count=stats.count, loss=stats.loss, accuracy=stats.accuracy, grad_norm=grads.norms,
        hessian_top_eigenvalue=lam, hessian_samples=samples, hessian_trace=trace, hessian_trace_se=trace_se,
        f_one_minus_f=boundary.f_one_minus_f, gini=boundary.gini, margin=boundary.margin,
        full_grad_norm=grads.full_norm, cancellation=grads.cancellation, prop1_error=grads.prop1_error,
        eigen=eigen, settings=settings, timing=timing, split=split)
