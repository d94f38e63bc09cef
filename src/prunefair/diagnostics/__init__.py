"""Why groups lose (Sections 4-5 of the paper): group gradient norms, Hessian top eigenvalues and traces from
Hessian-vector products, distances to the decision boundary, the Theorem 1 bound and rank correlations."""

from prunefair.diagnostics.bound import BoundCheck, theorem1_check, theorem1_terms
from prunefair.diagnostics.boundary import BoundaryStats, boundary_terms, group_boundary_distance
from prunefair.diagnostics.correlation import RankCorrelation, spearman_across_groups
from prunefair.diagnostics.diagnose import GroupDiagnostics, diagnose_groups
from prunefair.diagnostics.eigen import (
    EIGEN_METHODS, EigenResult, hessian_top_eigenvalue, lanczos_lockstep, lanczos_top_eigenvalue, power_top_eigenvalue,
    top_eigenvalue,
)
from prunefair.diagnostics.gradients import GroupGradients, full_gradient, group_batches, group_gradient_norms
from prunefair.diagnostics.hvp import HVP_METHODS, GroupHessian, hessian_vector_product
from prunefair.diagnostics.stacked_hvp import StackedGroupHessian
from prunefair.diagnostics.trace import TraceEstimate, hutchinson_trace

__all__ = [
    "BoundCheck", "BoundaryStats", "EIGEN_METHODS", "EigenResult", "GroupDiagnostics", "GroupGradients",
    "GroupHessian", "HVP_METHODS", "RankCorrelation", "StackedGroupHessian", "TraceEstimate", "boundary_terms",
    "diagnose_groups", "full_gradient", "group_batches", "group_boundary_distance", "group_gradient_norms",
    "hessian_top_eigenvalue", "hessian_vector_product", "hutchinson_trace", "lanczos_lockstep",
    "lanczos_top_eigenvalue", "power_top_eigenvalue",
    "spearman_across_groups", "theorem1_check", "theorem1_terms", "top_eigenvalue",
]
