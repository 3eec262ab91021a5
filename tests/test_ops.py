"""The compiled tryon.ops kernels against the reference ops, the impl dispatch, and the build cache.

Parity covers values, first derivatives and second derivatives (gradcheck / gradgradcheck in float64,
and direct comparison with the reference's autograd). Every test runs for the C++ kernels ("cpp", CPU)
and again for the CUDA kernels ("cuda", marked `gpu`, in float32 / float16 / bfloat16 too).
The kernels are built once per test session (about a minute the first time, then cached in
$TRYON_CACHE_DIR, default ~/.cache/tryon).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from torch.autograd import gradcheck, gradgradcheck

from tryon.ops import _dispatch, _fused, bias_act, setup_filter, upfirdn2d
from tryon.ops.bias_act import activation_funcs, bias_act_ref
from tryon.ops.upfirdn2d import upfirdn2d_ref

REPO = Path(__file__).resolve().parents[1]
ACTS = sorted(activation_funcs)

# (impl, device, dtype): both kernels in float32 and the half precisions (read and written as they are,
# computed in float32), the C++ ones also in float64.
GPU = pytest.mark.gpu
IMPL_DTYPES = [
    pytest.param("cpp", torch.float32, id="cpp-f32"),
    pytest.param("cpp", torch.float64, id="cpp-f64"),
    pytest.param("cpp", torch.float16, id="cpp-f16"),
    pytest.param("cpp", torch.bfloat16, id="cpp-bf16"),
    pytest.param("cuda", torch.float32, id="cuda-f32", marks=GPU),
    pytest.param("cuda", torch.float16, id="cuda-f16", marks=GPU),
    pytest.param("cuda", torch.bfloat16, id="cuda-bf16", marks=GPU),
]
IMPLS = [pytest.param("cpp", id="cpp"), pytest.param("cuda", id="cuda", marks=GPU)]

# Absolute / relative tolerances against the reference evaluated in float32 (float64 for float64).
TOL = {torch.float64: 1e-10, torch.float32: 2e-5, torch.float16: 1e-2, torch.bfloat16: 6e-2}


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """Parity tensors are tiny: one thread keeps the reference ops from paying for parallel regions
    (test_large_tensors_split_across_threads covers the kernels' parallel paths)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def cpp_kernels() -> object:
    return _fused.load_plugin("cpp")


@pytest.fixture(scope="session")
def cuda_kernels() -> object:
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    return _fused.load_plugin("cuda")


@pytest.fixture
def device(request: pytest.FixtureRequest, impl: str) -> str:
    """The device of `impl`, after its kernels are built (once per session)."""
    request.getfixturevalue("cuda_kernels" if impl == "cuda" else "cpp_kernels")
    return "cuda" if impl == "cuda" else "cpu"


def _randn(*shape: int, seed: int = 0, dtype: torch.dtype = torch.float32, device: str = "cpu") -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=torch.float64).to(device=device, dtype=dtype)


def _ref_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def assert_close(actual: torch.Tensor, expected: torch.Tensor, dtype: torch.dtype, scale: float = 1.0) -> None:
    tol = TOL[dtype] * scale
    torch.testing.assert_close(actual.to(expected.dtype), expected, atol=tol, rtol=tol)


# ---------------------------------------------------------------------------------------------------
# bias_act

# (shape, dim, layout): the bias dimension in various places of memory.
BIAS_CASES = {
    "nchw": ([2, 5, 3, 4], 1, "contiguous"),
    "channels_last": ([2, 6, 3, 4], 1, "channels_last"),
    "dim_last": ([3, 4, 5], 2, "contiguous"),
    "dim0": ([5, 7], 0, "contiguous"),
    "strided_view": ([4, 12, 8], 1, "every_other"),
}


def _bias_act_input(case: str, dtype: torch.dtype, device: str, seed: int = 0) -> tuple[torch.Tensor, int]:
    shape, dim, layout = BIAS_CASES[case]
    x = _randn(*shape, seed=seed, dtype=dtype, device=device)
    if layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
    elif layout == "every_other":  # Not dense in memory: the kernels must cope.
        x = x[:, ::2]
    return x, dim


@pytest.mark.parametrize("case", sorted(BIAS_CASES))
@pytest.mark.parametrize("clamp", [None, 0.5])
@pytest.mark.parametrize("with_bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize(("impl", "dtype"), IMPL_DTYPES)
def test_bias_act_matches_ref(
    impl: str, dtype: torch.dtype, act: str, with_bias: bool, clamp: float | None, case: str, device: str
) -> None:
    x, dim = _bias_act_input(case, dtype, device)
    b = _randn(x.shape[dim], seed=1, dtype=dtype, device=device) if with_bias else None
    dy = _randn(*x.shape, seed=2, dtype=dtype, device=device)
    rd = _ref_dtype(dtype)

    xk = x.detach().requires_grad_(True)
    bk = b.detach().requires_grad_(True) if b is not None else None
    y = bias_act(xk, bk, dim=dim, act=act, clamp=clamp, impl=impl)
    xr = x.detach().to(rd).requires_grad_(True)
    br = b.detach().to(rd).requires_grad_(True) if b is not None else None
    yr = bias_act_ref(xr, br, dim=dim, act=act, clamp=clamp)

    assert y.shape == x.shape and y.dtype == x.dtype and y.device == x.device
    assert_close(y, yr, dtype)
    inputs_k = [xk] + ([bk] if bk is not None else [])
    inputs_r = [xr] + ([br] if br is not None else [])
    grads_k = torch.autograd.grad(y, inputs_k, dy)
    grads_r = torch.autograd.grad(yr, inputs_r, dy.to(rd))
    for gk, gr, what in zip(grads_k, grads_r, ["dx", "db"][: len(grads_k)], strict=True):
        assert gk.dtype == dtype, what
        assert_close(gk, gr, dtype, scale=1.0 if what == "dx" else 10.0)  # db sums many terms.


@pytest.mark.parametrize("clamp", [None, 0.5])
@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize(("impl", "dtype"), [p for p in IMPL_DTYPES if p.values[1] == torch.float32])
def test_bias_act_second_derivatives_match_ref(
    impl: str, dtype: torch.dtype, act: str, clamp: float | None, device: str
) -> None:
    """d/d(x, b, dy) of <dx, w>: what R1 and path-length regularisation differentiate."""
    x, dim = _bias_act_input("nchw", dtype, device)
    b = _randn(x.shape[dim], seed=1, dtype=dtype, device=device)
    dy = _randn(*x.shape, seed=2, dtype=dtype, device=device)
    w = _randn(*x.shape, seed=3, dtype=dtype, device=device)

    def second(use_kernel: bool) -> tuple[torch.Tensor, ...]:
        xx, bb, gg = (t.detach().clone().requires_grad_(True) for t in (x, b, dy))
        kw = {"impl": impl} if use_kernel else {}
        y = (bias_act if use_kernel else bias_act_ref)(xx, bb, dim=dim, act=act, clamp=clamp, **kw)
        dx, db = torch.autograd.grad(y, [xx, bb], gg, create_graph=True)
        loss = (dx * w).sum() + (db * w.mean(dim=[0, 2, 3])).sum()
        return torch.autograd.grad(loss, [xx, bb, gg], allow_unused=True)

    for gk, gr, what in zip(second(True), second(False), ["x", "b", "dy"], strict=True):
        # A zero gradient must stay a tensor where the reference gives one (optimizers treat a None
        # gradient as "skip this parameter").
        assert (gk is None) == (gr is None), what
        if gk is not None:
            assert_close(gk, gr, dtype, scale=10.0)


@pytest.mark.parametrize("clamp", [None, 0.5])
@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("impl", IMPLS)
def test_bias_act_gradcheck(impl: str, act: str, clamp: float | None, device: str) -> None:
    x = _randn(2, 3, 4, dtype=torch.float64, device=device).requires_grad_(True)
    b = _randn(3, seed=1, dtype=torch.float64, device=device).requires_grad_(True)

    def fn(x: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return bias_act(x, b, act=act, clamp=clamp, impl=impl)

    assert gradcheck(fn, (x, b))
    assert gradgradcheck(fn, (x, b))


@pytest.mark.parametrize("impl", IMPLS)
def test_bias_act_alpha_gain_and_zero_clamp(impl: str, device: str) -> None:
    x = _randn(3, 4, 5, device=device)
    b = _randn(4, seed=1, device=device)
    for kw in [{"alpha": 0.05, "gain": 0.7}, {"gain": 3.0, "clamp": 1.0}, {"clamp": 0.0}]:
        for act in ("lrelu", "elu", "swish"):
            y = bias_act(x, b, act=act, impl=impl, **kw)
            assert_close(y, bias_act_ref(x, b, act=act, **kw), torch.float32)


@pytest.mark.parametrize("impl", IMPLS)
def test_bias_act_third_derivative_is_refused(impl: str, device: str) -> None:
    x = _randn(2, 3, device=device).requires_grad_(True)
    y = bias_act(x, act="tanh", impl=impl)
    (dx,) = torch.autograd.grad(y.sum(), x, create_graph=True)
    (ddx,) = torch.autograd.grad(dx.sum(), x, create_graph=True)
    with pytest.raises(NotImplementedError, match="third derivatives"):
        torch.autograd.grad(ddx.sum(), x)


# ---------------------------------------------------------------------------------------------------
# upfirdn2d

# (up, down, padding): plain, StyleGAN's upsample2d / downsample2d geometries, 4x, asymmetric and
# negative padding, different factors per axis, up and down at once.
GEOMETRIES = {
    "identity": ((1, 1), (1, 1), (0, 0, 0, 0)),
    "up2": ((2, 2), (1, 1), (2, 1, 2, 1)),
    "down2": ((1, 1), (2, 2), (1, 1, 1, 1)),
    "up4_crop": ((4, 4), (1, 1), (3, -1, 2, 0)),
    "down4_crop": ((1, 1), (4, 4), (-1, 3, 0, 2)),
    "mixed_axes": ((2, 1), (1, 2), (1, -1, 2, 0)),
    "up2_down2": ((2, 2), (2, 2), (1, 2, 3, 0)),
    "up3_down2": ((3, 3), (2, 2), (2, 0, 1, 3)),
    "crop_only": ((1, 1), (1, 1), (-1, -1, 3, 1)),
}


def _filter(name: str, device: str) -> torch.Tensor:
    if name == "2d":  # [1, 3, 3, 1] outer product: what StyleGAN2 uses everywhere.
        return setup_filter([1, 3, 3, 1], device=device)
    if name == "separable":
        return setup_filter([1, 3, 3, 1], device=device, separable=True)
    if name == "random_2d":
        return _randn(3, 5, seed=7).float().to(device)
    return _randn(5, seed=8).float().to(device)  # random_separable


FILTERS = ["2d", "separable", "random_2d", "random_separable"]
# Shapes: few planes (row path), >= 16 small planes (blocked path on the CPU), wide rows.
UPFIRDN_SHAPES = [[2, 3, 5, 7], [2, 9, 6, 8], [1, 2, 9, 37]]


@pytest.mark.parametrize(("flip_filter", "gain"), [(False, 1.0), (True, 2.5)], ids=["conv", "flip-gain"])
@pytest.mark.parametrize("filt", FILTERS)
@pytest.mark.parametrize("geometry", sorted(GEOMETRIES))
@pytest.mark.parametrize(("impl", "dtype"), IMPL_DTYPES)
def test_upfirdn2d_matches_ref(
    impl: str, dtype: torch.dtype, geometry: str, filt: str, flip_filter: bool, gain: float, device: str
) -> None:
    up, down, padding = GEOMETRIES[geometry]
    f = _filter(filt, device)
    rd = _ref_dtype(dtype)
    kw = {"up": up, "down": down, "padding": padding, "flip_filter": flip_filter, "gain": gain}
    for i, shape in enumerate(UPFIRDN_SHAPES):
        for channels_last in (False, True):
            x = _randn(*shape, seed=i, dtype=dtype, device=device)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            xk = x.detach().requires_grad_(True)
            y = upfirdn2d(xk, f, impl=impl, **kw)
            xr = x.detach().to(rd).requires_grad_(True)
            yr = upfirdn2d_ref(xr, f, **kw)
            what = f"shape {shape}, channels_last={channels_last}"
            assert y.shape == yr.shape and y.dtype == dtype, what
            assert_close(y, yr, dtype, scale=4.0)
            dy = _randn(*y.shape, seed=10 + i, dtype=dtype, device=device)
            (dx,) = torch.autograd.grad(y, xk, dy)
            (dxr,) = torch.autograd.grad(yr, xr, dy.to(rd))
            assert dx.shape == x.shape and dx.dtype == dtype, what
            assert_close(dx, dxr, dtype, scale=4.0)


@pytest.mark.parametrize("geometry", ["up2", "down2", "up3_down2", "mixed_axes", "crop_only"])
@pytest.mark.parametrize("filt", ["random_2d", "random_separable"])
@pytest.mark.parametrize("impl", IMPLS)
def test_upfirdn2d_gradcheck(impl: str, geometry: str, filt: str, device: str) -> None:
    up, down, padding = GEOMETRIES[geometry]
    f = _filter(filt, device)
    x = _randn(1, 2, 5, 7, dtype=torch.float64, device=device).requires_grad_(True)

    def fn(x: torch.Tensor) -> torch.Tensor:
        return upfirdn2d(x, f, up=up, down=down, padding=padding, gain=1.5, impl=impl)

    assert gradcheck(fn, (x,))
    assert gradgradcheck(fn, (x,))


@pytest.mark.parametrize("impl", IMPLS)
def test_upfirdn2d_second_derivative_matches_ref(impl: str, device: str) -> None:
    f = setup_filter([1, 3, 3, 1], device=device)
    x = _randn(2, 3, 8, 8, device=device)
    w = _randn(2, 3, 8, 8, seed=1, device=device)

    def second(use_kernel: bool) -> torch.Tensor:
        xx = x.detach().clone().requires_grad_(True)
        kw = {"up": 2, "padding": (2, 1, 2, 1), "gain": 4.0}
        y = upfirdn2d(xx, f, impl=impl, **kw) if use_kernel else upfirdn2d_ref(xx, f, **kw)
        y = (
            upfirdn2d(y**2, f, down=2, padding=1, impl=impl)
            if use_kernel
            else upfirdn2d_ref(y**2, f, down=2, padding=1)
        )
        (dx,) = torch.autograd.grad(y.sum(), xx, create_graph=True)
        (ddx,) = torch.autograd.grad((dx * w).sum(), xx)
        return ddx

    assert_close(second(True), second(False), torch.float32, scale=10.0)


@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "nhwc"])
def test_large_tensors_split_across_threads(cpp_kernels: object, channels_last: bool) -> None:
    """Big enough for the CPU kernels to split the work: same results with 2 threads as with 1."""
    f = setup_filter([1, 3, 3, 1])
    b = _randn(32, seed=1)
    results: dict[int, list[torch.Tensor]] = {}
    for threads in (1, 2):
        torch.set_num_threads(threads)
        out = []
        for shape in ([2, 32, 64, 64], [4, 32, 16, 16]):  # Row path and blocked path for NCHW.
            x = _randn(*shape)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            out.append(bias_act(x, b, act="lrelu", clamp=0.5, impl="cpp"))
            out.append(upfirdn2d(x, f, up=2, padding=(2, 1, 2, 1), gain=4, impl="cpp"))
            out.append(upfirdn2d(x, f, down=2, padding=1, impl="cpp"))
            if threads == 1:
                assert_close(out[-3], bias_act_ref(x, b, act="lrelu", clamp=0.5), torch.float32)
                assert_close(out[-2], upfirdn2d_ref(x, f, up=2, padding=(2, 1, 2, 1), gain=4), torch.float32)
                assert_close(out[-1], upfirdn2d_ref(x, f, down=2, padding=1), torch.float32)
        results[threads] = out
    for one, two in zip(results[1], results[2], strict=True):
        torch.testing.assert_close(two, one, atol=0, rtol=0)


def test_upfirdn2d_filter_gradient_is_refused(cpp_kernels: object) -> None:
    f = setup_filter([1, 3, 3, 1]).requires_grad_(True)
    with pytest.raises(ValueError, match="does not differentiate the filter"):
        upfirdn2d(_randn(1, 1, 4, 4), f, impl="cpp")


def test_cpu_bf16_is_computed_in_float32_and_rounded_once(cpp_kernels: object) -> None:
    """bf16 in, bf16 out, the arithmetic in float32: the result is the float32 reference rounded to bf16
    (within one bf16 step where the kernel sums its taps in another order)."""
    x = _randn(2, 4, 6, 6).to(torch.bfloat16)
    b = _randn(4, seed=1).to(torch.bfloat16)
    for layout in (torch.contiguous_format, torch.channels_last):
        xl = x.contiguous(memory_format=layout)
        y = bias_act(xl, b, act="lrelu", impl="cpp")
        assert y.dtype == torch.bfloat16
        torch.testing.assert_close(y, bias_act_ref(x.float(), b.float(), act="lrelu").to(torch.bfloat16),
                                   atol=0, rtol=0)
        f = setup_filter([1, 3, 3, 1])
        z = upfirdn2d(xl, f, up=2, padding=(2, 1, 2, 1), impl="cpp")
        assert z.dtype == torch.bfloat16
        expected = upfirdn2d_ref(x.float(), f, up=2, padding=(2, 1, 2, 1))
        step = expected.abs().clamp(min=1e-3) * 2.0**-7  # One bf16 step (8 bits of mantissa).
        assert ((z.float() - expected).abs() <= step).all()


# ---------------------------------------------------------------------------------------------------
# Dispatch: impl choice, fallback, errors.


def test_auto_falls_back_to_ref_with_one_warning_when_the_build_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(kind: str) -> object:
        raise RuntimeError(f"no compiler for {kind}\nlong compiler output")

    monkeypatch.setattr(_fused, "load_plugin", broken)
    monkeypatch.setattr(_dispatch, "AUTO_CPP_OPS", frozenset({"bias_act", "upfirdn2d"}))
    monkeypatch.setattr(_dispatch, "_failed", {})
    x, b, f = _randn(2, 3, 4, 4), _randn(3, seed=1), setup_filter([1, 3, 3, 1])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        y1 = bias_act(x, b, act="lrelu", impl="auto")
        y2 = bias_act(x, b, act="lrelu", impl="auto")
        y3 = upfirdn2d(x, f, up=2, padding=(2, 1, 2, 1), impl="auto")
    runtime = [w for w in caught if issubclass(w.category, RuntimeWarning)]
    assert len(runtime) == 1, [str(w.message) for w in caught]
    assert "falling back" in str(runtime[0].message) and "no compiler for cpp" in str(runtime[0].message)
    torch.testing.assert_close(y1, bias_act_ref(x, b, act="lrelu"))
    torch.testing.assert_close(y2, y1)
    torch.testing.assert_close(y3, upfirdn2d_ref(x, f, up=2, padding=(2, 1, 2, 1)))
    assert _dispatch.backends()["bias_act/cpu"] == "ref"
    assert "cpp" in _dispatch.build_failures()


def _broken_sources(tmp_path: Path) -> Path:
    """A copy of csrc/ whose every source fails to compile at once (a missing header)."""
    src = tmp_path / "csrc"
    shutil.copytree(_fused.SOURCE_DIR, src)
    for path in src.iterdir():
        if path.suffix in (".cpp", ".cu"):
            path.write_text('#include "tryon_missing_header.h"\n' + path.read_text())
    return src


def test_a_failing_build_raises_for_cpp_and_falls_back_for_auto(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_fused, "SOURCE_DIR", _broken_sources(tmp_path))
    monkeypatch.setenv("TRYON_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(_dispatch, "AUTO_CPP_OPS", frozenset({"bias_act"}))
    monkeypatch.setattr(_dispatch, "_failed", {})
    x = _randn(2, 3, 4)
    with pytest.raises(RuntimeError, match="could not build the cpp kernels") as info:
        bias_act(x, act="relu", impl="cpp")
    assert "tryon_missing_header.h" in str(info.value)
    with pytest.warns(RuntimeWarning, match="falling back"):
        y = bias_act(x, act="relu", impl="auto")
    torch.testing.assert_close(y, bias_act_ref(x, act="relu"))
    # Nothing half-built is left looking like a build.
    assert [p.name for p in (tmp_path / "cache" / "ops").iterdir() if not p.name.endswith(".lock")] == []


def test_explicit_impl_on_the_wrong_device_raises() -> None:
    x = _randn(1, 2, 4, 4)
    with pytest.raises(ValueError, match="needs a cuda tensor"):
        bias_act(x, impl="cuda")
    with pytest.raises(ValueError, match="needs a cuda tensor"):
        upfirdn2d(x, setup_filter([1, 3, 3, 1]), impl="cuda")


@pytest.mark.gpu
def test_cpp_on_a_cuda_tensor_raises() -> None:
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    with pytest.raises(ValueError, match="needs a cpu tensor"):
        bias_act(torch.zeros(2, 3, device="cuda"), impl="cpp")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on machines without a GPU")
def test_cuda_kernels_without_a_gpu_say_why() -> None:
    with pytest.raises(RuntimeError, match=r"CPU-only build|CUDA GPU|CUDA toolkit"):
        _fused.load_plugin("cuda")


def test_load_plugin_rejects_unknown_kinds() -> None:
    with pytest.raises(ValueError, match="kind must be one of"):
        _fused.load_plugin("metal")


def test_build_hash_covers_source_contents_and_kind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = _fused._build_hash("cpp")
    copy = tmp_path / "csrc"
    shutil.copytree(_fused.SOURCE_DIR, copy)
    monkeypatch.setattr(_fused, "SOURCE_DIR", copy)
    assert _fused._build_hash("cpp") == before  # Where the sources are does not matter...
    (copy / "common.h").write_text((copy / "common.h").read_text() + "\n// changed\n")
    assert _fused._build_hash("cpp") != before  # ...what they say does.


def test_nothing_is_built_at_import() -> None:
    code = (
        "import sys, tryon.ops, tryon.ops.bias_act, tryon.ops.upfirdn2d;"
        "assert 'tryon.ops._fused' not in sys.modules, 'imported _fused';"
        "assert not [m for m in sys.modules if m.startswith('tryon_ops_')], 'loaded kernels'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


@pytest.mark.slow
def test_concurrent_builds_into_an_empty_cache(tmp_path: Path) -> None:
    """Two processes build at once: both get working kernels, one build lands, no debris; a third
    process loads the cached build without compiling."""
    script = (
        "import logging, torch; logging.basicConfig(level=logging.INFO);"
        "from tryon.ops import bias_act; from tryon.ops.bias_act import bias_act_ref;"
        "x = torch.randn(3, 4); b = torch.randn(4);"
        "torch.testing.assert_close(bias_act(x, b, act='lrelu', impl='cpp'), bias_act_ref(x, b, act='lrelu'))"
    )
    env = {**os.environ, "TRYON_CACHE_DIR": str(tmp_path / "cache")}
    procs = [
        subprocess.Popen([sys.executable, "-c", script], cwd=REPO, env=env, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    logs = [p.communicate()[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], logs
    assert sum("building the cpp kernels" in log for log in logs) == 1, logs  # The other one waited.
    ops = tmp_path / "cache" / "ops"
    builds = [p for p in ops.iterdir() if p.is_dir()]
    assert len(builds) == 1 and builds[0].name.startswith("tryon_ops_cpp_"), builds
    assert (builds[0] / "module.json").is_file()
    third = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=env, stderr=subprocess.PIPE, text=True)
    assert third.returncode == 0, third.stderr
    assert "building" not in third.stderr and "loaded kernels from" in third.stderr
