import pytest
import torch

from prunefair.diagnostics import (
    GroupHessian, hessian_top_eigenvalue, hessian_vector_product, hutchinson_trace, lanczos_top_eigenvalue,
    power_top_eigenvalue, top_eigenvalue,
)
from tests.diagnostics.helpers import dense_hessian, tiny_data, tiny_model, trained


@pytest.fixture(scope="module")
def setup():
    data = tiny_data(n=90, groups=3)
    model = trained(tiny_model(batch_norm=True), data, steps=150)
    model.train()  # GroupHessian must put it in eval mode
    x, y = data.x[data.g == 0], data.y[data.g == 0]
    H = dense_hessian(model, x, y)
    return model, x, y, H


@pytest.mark.parametrize("method", ["double_backward", "forward_over_reverse"])
@pytest.mark.parametrize("chunk_size", [4, 1000])
def test_hvp_equals_dense_hessian_times_v(setup, method, chunk_size):
    model, x, y, H = setup
    op = GroupHessian(model, x, y, method=method, chunk_size=chunk_size)
    assert not model.training and op.dim == H.shape[0]
    v = torch.randn(op.dim, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(op(v).double(), H @ v.double(), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(op(2 * v).double(), 2 * (H @ v.double()), rtol=1e-4, atol=1e-5)


def test_auto_is_fixed_on_the_cpu_and_the_timed_choice_picks_the_fastest(setup):
    model, x, y, _ = setup
    op = GroupHessian(model, x, y, method="auto")  # on the CPU: no timing, so the same seed gives the same numbers
    assert (op.method, op.rules, op.timings) == ("double_backward", True, {})
    assert GroupHessian(model, x, y, method="auto", rules=False).rules is False
    choice = op._pick_faster()  # what "auto" does on other devices
    assert set(op.timings) == {"double_backward", "double_backward_autograd", "forward_over_reverse"}
    fastest = min(op.timings, key=op.timings.get)
    assert choice == {"double_backward": ("double_backward", True),
                      "double_backward_autograd": ("double_backward", False),
                      "forward_over_reverse": ("forward_over_reverse", True)}[fastest]
    plain = GroupHessian(model, x[:-1], y[:-1], method="double_backward", rules=False)  # no rules: two candidates
    plain._pick_faster()
    assert set(plain.timings) == {"double_backward", "forward_over_reverse"}
    with pytest.raises(ValueError, match="allowed"):
        GroupHessian(model, x, y, method="finite_differences")


@pytest.mark.parametrize("method", ["lanczos", "power"])
def test_top_eigenvalue_equals_eigvalsh_of_the_dense_hessian(setup, method):
    model, x, y, H = setup
    exact = torch.linalg.eigvalsh(H)
    top = float(exact[-1])
    assert top > abs(float(exact[0]))  # the top eigenvalue is also the dominant one here
    res = hessian_top_eigenvalue(model, x, y, method=method, hvp="double_backward", tol=1e-5, max_iter=500, seed=3)
    assert res.converged and res.method == method
    assert res.value == pytest.approx(top, rel=1e-3)
    assert res.residual <= 1e-3 * top and res.hvps >= res.iterations
    # the reported residual is ||H v - lambda v|| for the returned vector
    v = res.vector.double()
    assert float((H @ v - res.value * v).norm()) == pytest.approx(res.residual, rel=0.05, abs=1e-6)
    again = hessian_top_eigenvalue(model, x, y, method=method, hvp="double_backward", tol=1e-5, max_iter=500, seed=3)
    assert again.value == res.value and again.iterations == res.iterations  # seeded


def test_lanczos_needs_fewer_products_than_power_iteration():
    torch.manual_seed(0)
    q, _ = torch.linalg.qr(torch.randn(200, 200, dtype=torch.float64))
    evals = torch.linspace(0.0, 1.0, 200, dtype=torch.float64)
    evals[-1] = 1.05  # a small gap: hard for power iteration
    A = (q * evals) @ q.T
    lz = lanczos_top_eigenvalue(lambda v: A @ v, 200, max_iter=200, tol=1e-6, dtype=torch.float64,
                                criterion="residual")
    pw = power_top_eigenvalue(lambda v: A @ v, 200, max_iter=5000, tol=1e-6, dtype=torch.float64)
    assert lz.value == pytest.approx(1.05, rel=1e-8) and pw.value == pytest.approx(1.05, rel=1e-5)
    assert lz.hvps < pw.hvps / 3
    by_value = lanczos_top_eigenvalue(lambda v: A @ v, 200, max_iter=200, tol=1e-8, dtype=torch.float64,
                                      criterion="value")
    assert by_value.value == pytest.approx(1.05, rel=1e-6) and by_value.residual < 1e-2
    with pytest.raises(ValueError, match="allowed: eigenvalue, residual, value"):
        power_top_eigenvalue(lambda v: A @ v, 200, criterion="relative")


def test_lanczos_returns_the_largest_algebraic_eigenvalue():
    A = torch.diag(torch.tensor([-5.0, 1.0, 2.0, 3.0], dtype=torch.float64))
    res = lanczos_top_eigenvalue(lambda v: A @ v, 4, tol=1e-10, dtype=torch.float64)
    assert res.value == pytest.approx(3.0) and res.iterations <= 4
    assert power_top_eigenvalue(lambda v: A @ v, 4, tol=1e-8, max_iter=2000, dtype=torch.float64).value == \
        pytest.approx(-5.0, rel=1e-6)


def test_top_eigenvalue_by_power_is_the_largest_not_the_dominant():
    """Power iteration finds the eigenvalue of largest |lambda|; the "top" eigenvalue is the largest, so a negative
    dominant one is shifted away, and the tolerance holds relative to the answer (0.1, not the shifted 3.1)."""
    evals = torch.tensor([0.1, 0.05, 0.02, -1.0, -3.0], dtype=torch.float64)
    q, _ = torch.linalg.qr(torch.randn(5, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(0)))
    A = (q * evals) @ q.T
    res = top_eigenvalue(lambda v: A @ v, 5, method="power", tol=1e-4, max_iter=5000, dtype=torch.float64)
    assert res.converged and abs(res.value - 0.1) <= 1e-4 * 0.1
    assert res.hvps > power_top_eigenvalue(lambda v: A @ v, 5, tol=1e-4, dtype=torch.float64).hvps  # two runs
    lz = top_eigenvalue(lambda v: A @ v, 5, method="lanczos", tol=1e-10, dtype=torch.float64)
    assert lz.value == pytest.approx(0.1, rel=1e-8)
    pos = top_eigenvalue(lambda v: A @ v + 4 * v, 5, method="power", tol=1e-8, max_iter=5000, dtype=torch.float64)
    assert pos.value == pytest.approx(4.1, rel=1e-6)  # a positive dominant eigenvalue: one run, as before


def test_lanczos_stops_the_same_way_at_any_scale():
    """The breakdown test is relative to the operator's scale: a Hessian of norm 1e-11 (a group the model fits
    with great confidence) is not mistaken for an invariant subspace after one step."""
    A = torch.diag(torch.linspace(1.0, 0.0, 50, dtype=torch.float64))
    runs = {c: lanczos_top_eigenvalue(lambda v: c * (A @ v), 50, tol=1e-8, dtype=torch.float64, seed=3)
            for c in (1.0, 1e-11, 1e-30)}
    for c, res in runs.items():
        assert res.value / c == pytest.approx(1.0, rel=1e-7), c
        assert res.iterations == runs[1.0].iterations > 1
    zero = lanczos_top_eigenvalue(lambda v: 0 * v, 50, dtype=torch.float64)
    assert zero.value == 0.0 and zero.converged and zero.iterations == 1


def test_hessian_top_eigenvalue_keeps_the_models_mode(setup):
    model, x, y, _ = setup
    for mode in (True, False):
        model.train(mode)
        hessian_top_eigenvalue(model, x, y, seed=0)
        assert model.training is mode
        hessian_vector_product(model, x, y, torch.ones(sum(p.numel() for p in model.parameters())))
        assert model.training is mode
    model.train()


def test_hutchinson_trace_is_within_its_error_bars(setup):
    model, x, y, H = setup
    exact = float(torch.trace(H))
    op = GroupHessian(model, x, y, method="double_backward")
    est = hutchinson_trace(op, op.dim, samples=200, seed=0)
    assert est.stderr > 0 and est.samples == 200
    assert abs(est.value - exact) <= 3 * est.stderr
    # error bars shrink like 1/sqrt(samples): the estimate is informative, not vacuous
    assert est.stderr < 0.25 * abs(exact)


def _spectrum(gap: float, n: int = 300) -> torch.Tensor:
    q, _ = torch.linalg.qr(torch.randn(n, n, dtype=torch.float64, generator=torch.Generator().manual_seed(5)))
    evals = torch.linspace(-0.2, 1.0, n, dtype=torch.float64)
    evals[-1] = 1.0 + gap
    return (q * evals) @ q.T


@pytest.mark.parametrize("gap", [0.3, 0.05, 0.01])
@pytest.mark.parametrize("tol", [1e-3, 1e-6])
def test_eigenvalue_criterion_meets_its_tolerance_in_fewer_products(gap, tol):
    """The default rule stops on the Ritz value's error estimate min(r, r^2/gap): the error stays within tol, and it
    needs no more products than stopping on the residual itself."""
    A = _spectrum(gap)
    top = 1.0 + gap
    by_value = lanczos_top_eigenvalue(lambda v: A @ v, 300, max_iter=300, tol=tol, dtype=torch.float64, seed=1)
    by_residual = lanczos_top_eigenvalue(lambda v: A @ v, 300, max_iter=300, tol=tol, dtype=torch.float64, seed=1,
                                         criterion="residual")
    assert by_value.converged and abs(by_value.value - top) <= tol * top
    assert by_value.hvps <= by_residual.hvps
    assert abs(by_value.value - top) <= by_value.residual ** 2 / (top - 1.0) * 1.01 + 1e-12  # Kato-Temple


def test_estimated_residual_equals_the_measured_one():
    A = _spectrum(0.1)
    est = lanczos_top_eigenvalue(lambda v: A @ v, 300, max_iter=300, tol=1e-4, dtype=torch.float64, seed=2)
    meas = lanczos_top_eigenvalue(lambda v: A @ v, 300, max_iter=300, tol=1e-4, dtype=torch.float64, seed=2,
                                  check_residual=True)
    assert not est.residual_measured and meas.residual_measured and meas.hvps == est.hvps + 1
    assert est.value == meas.value
    assert est.residual == pytest.approx(meas.residual, rel=1e-3)
    v = est.vector.double()
    assert float((A @ v - est.value * v).norm()) == pytest.approx(est.residual, rel=1e-3)


@pytest.mark.parametrize("method", ["lanczos", "power"])
def test_a_start_in_a_lower_eigenspace_still_finds_the_top(method):
    """A given start vector gets a seeded random share, so a start that misses the top eigenvector (here an
    exact eigenvector of a smaller eigenvalue, an invariant subspace) still converges to the top."""
    A = torch.diag(torch.linspace(0.1, 1.0, 50, dtype=torch.float64))
    A[-1, -1] = 2.0
    start = torch.zeros(50, dtype=torch.float64)
    start[10] = 1.0
    res = (lanczos_top_eigenvalue if method == "lanczos" else power_top_eigenvalue)(
        lambda v: A @ v, 50, max_iter=500, tol=1e-8, dtype=torch.float64, start=start, criterion="residual")
    assert res.value == pytest.approx(2.0, rel=1e-6)
    with pytest.raises(ValueError, match="dimension 50"):
        lanczos_top_eigenvalue(lambda v: A @ v, 50, start=torch.ones(3))


@pytest.mark.parametrize("method", ["double_backward", "forward_over_reverse"])
def test_gradient_start_is_the_gradient_and_converges(setup, method):
    """Both starts reach the top eigenvalue within tol; the products the gradient start saves on real models
    (about half) are measured in benchmarks/bench_eigenvalue.py, not here: on this tiny model it saves none."""
    model, x, y, H = setup
    op = GroupHessian(model, x, y, method=method, chunk_size=7)
    loss = torch.nn.functional.cross_entropy(model(x), y)
    expected = torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, list(model.parameters()))])
    torch.testing.assert_close(op.gradient(), expected, rtol=1e-4, atol=1e-6)
    top = float(torch.linalg.eigvalsh(H)[-1])
    runs = {s: hessian_top_eigenvalue(model, x, y, hvp=method, start=s, seed=0) for s in ("gradient", "random")}
    for res in runs.values():
        assert abs(res.value - top) <= 1e-3 * top
    with pytest.raises(ValueError, match="allowed: gradient, random"):
        hessian_top_eigenvalue(model, x, y, start="ones")


def _rotated(values, seed=0):
    """A dense symmetric matrix with the given eigenvalues in a random orthonormal basis (float64)."""
    gen = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(len(values), len(values), generator=gen, dtype=torch.float64))
    return q @ torch.diag(torch.as_tensor(values, dtype=torch.float64)) @ q.T


def test_a_far_negative_eigenvalue_does_not_stop_the_default_rule_early():
    """A large negative eigenvalue converges first as the second Ritz value; the gap to it (about 1000) says nothing
    of the eigenvalues just below the top, and once made r^2 / gap small enough to stop at 1.71 for a top of 3."""
    A = _rotated([-1000.0] + torch.linspace(0.5, 3.0, 39).tolist())
    for seed in range(10):
        res = lanczos_top_eigenvalue(lambda v: A @ v, 40, tol=1e-3, seed=seed, dtype=torch.float64)
        assert res.converged and abs(res.value - 3.0) <= 3e-3, (seed, res.value, res.iterations)


def test_a_breakdown_is_not_convergence_unless_the_residual_is_within_tol():
    """beta <= 1e-10 ||H|| ends the run (no new direction); with ||H|| = 1e10 that happens while the top Ritz value
    is still 14% off by its own residual: the run must say it did not converge."""
    A = _rotated([-1e10] + torch.linspace(0.5, 3.0, 39).tolist())
    res = lanczos_top_eigenvalue(lambda v: A @ v, 40, tol=1e-6, dtype=torch.float64, criterion="residual")
    v = res.vector.double()
    true_residual = float((A @ v - res.value * v).norm())
    assert res.converged == (true_residual <= 1e-6 * abs(res.value))
    zero = lanczos_top_eigenvalue(lambda v: 0 * v, 5, dtype=torch.float64)  # an exact breakdown at 0
    assert zero.converged and zero.value == 0.0


def test_power_iteration_out_of_iterations_returns_the_vector_its_residual_was_measured_at():
    A = torch.diag(torch.linspace(0.0, 1.0, 100, dtype=torch.float64))
    for max_iter in (1, 3, 10):
        res = power_top_eigenvalue(lambda v: A @ v, 100, max_iter=max_iter, tol=1e-9, dtype=torch.float64)
        v = res.vector.double()
        assert not res.converged and res.iterations == max_iter
        assert float((A @ v - res.value * v).norm()) == pytest.approx(res.residual, rel=1e-9)
