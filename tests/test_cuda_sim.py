"""The CUDA backend against its CPU twin, op by op, plus a tiny end-to-end fit on each device.

Without a GPU the CUDA kernels run in Numba's CUDA simulator. The simulator must not leak into the
other tests of this pytest process, so every check runs in a SUBPROCESS: this file, run as a script
(``python tests/test_cuda_sim.py GROUP``), sets nothing itself; the parent passes
``NUMBA_ENABLE_CUDASIM=1`` in the child's environment, and the child prints one JSON line with a
result per check. On a machine with a GPU, ``EDGEMINE_CUDA_REAL=1`` runs the same checks on the real
device (tools/gpu_check.sh does that).

With numba-cuda installed, ``EDGEMINE_CUDA_PTX=1`` adds a test that compiles every kernel signature
these checks launch to sm_90 PTX with the real CUDA target (no GPU needed), catching typing errors
that the simulator, which runs the kernels as plain Python, cannot see.

The simulator is made stricter than it is by default, so that what fails on a real GPU fails here:
arithmetic on device arrays (the simulator quietly allows ``a * b``), ``np.asarray(device_array)``,
and host numpy arrays passed to a kernel (an implicit copy per launch) all raise.

Tolerances: forward values 1e-5 relative, gradients and weights after an optimizer step 1e-4
relative, each element-wise with an absolute floor of the same fraction of the array's largest
magnitude (so values near zero are judged against the array's scale).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import traceback
from pathlib import Path

import numpy as np
import pytest

FWD = 1e-5
GRAD = 1e-4
HERE = Path(__file__).resolve()
REPO = HERE.parents[1]
REAL_GPU = os.environ.get("EDGEMINE_CUDA_REAL") == "1"

GROUPS = {
    "gemm_dense": [
        "gemm",
        "column_sums",
        "dense",
        "activations",
        "batchnorm",
        "dropout",
        "memory",
        "batch_memory",
    ],
    "conv_pool": ["conv2d", "conv2d_corner", "pool2d", "global_pool", "nan"],
    "loss_optim": ["losses", "optimizers", "sparse_rows"],
    "recurrent": ["embedding", "lstm", "gru", "simple_rnn", "bidirectional_ops"],
    "fit": [
        "fit_cnn",
        "fit_functional",
        "fit_multi_output",
        "fit_bn_dropout",
        "fit_lstm",
        "fit_stacked_lstm",
        "fit_bidirectional",
        "fit_conv_misc",
        "fit_rnn_misc",
        "fit_weighted_sequence",
    ],
}


# ----------------------------------------------------------------------------------------------
# pytest side: spawn the checks, never import numba.cuda here
# ----------------------------------------------------------------------------------------------
def _child_env(simulate: bool) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    if simulate:
        env["NUMBA_ENABLE_CUDASIM"] = "1"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


def _run_child(args: list[str], simulate: bool, timeout: float = 600) -> dict:
    env = _child_env(simulate)
    env["EDGEMINE_CUDA_POISON"] = "1"  # arena arrays are NaN once their batch ends
    proc = subprocess.run(
        [sys.executable, str(HERE), *args],
        env=env,
        cwd=str(REPO),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise AssertionError(
            f"child {args} exited {proc.returncode}\nstdout:\n{proc.stdout[-4000:]}\n"
            f"stderr:\n{proc.stderr[-4000:]}"
        )
    return json.loads(lines[-1])


@pytest.mark.parametrize("group", sorted(GROUPS))
def test_cuda_ops_match_cpu(group):
    """Every CUDA op in ``group`` against the CPU backend (simulated unless EDGEMINE_CUDA_REAL)."""
    results = _run_child([group], simulate=not REAL_GPU)
    failed = {k: v for k, v in results.items() if v["status"] == "fail"}
    assert not failed, "\n\n".join(f"{k}: {v['error']}" for k, v in failed.items())
    missing = set(GROUPS[group]) - set(results)
    assert not missing, f"checks that did not report: {sorted(missing)}"


def test_cuda_unavailable_gives_a_clear_error():
    """Without the simulator and without a GPU: 'cuda' is not offered and asking for it says why."""
    info = _run_child(["--availability"], simulate=False, timeout=120)
    if info["reason"] is None:  # a machine with a working GPU: the device must then work
        assert info["devices"] == ["cpu", "cuda"]
        assert info["get_ops"] == "ok"
        return
    assert info["devices"] == ["cpu"]
    assert info["get_ops"].startswith("RuntimeError: device 'cuda' is not available: ")
    assert info["reason"] in info["get_ops"]
    assert any(
        s in info["reason"] for s in ("numba-cuda is not installed", "driver", "no NVIDIA GPU")
    ), info["reason"]
    assert info["compile"] == info["get_ops"]


@pytest.mark.skipif(
    os.environ.get("EDGEMINE_CUDA_PTX") != "1",
    reason="opt-in (EDGEMINE_CUDA_PTX=1; needs numba-cuda and its NVVM, no GPU)",
)
def test_every_kernel_compiles_for_a_real_gpu(tmp_path):
    """Run every check in the simulator recording each kernel's argument types, then compile
    each signature to sm_90 PTX with numba-cuda: typing errors show without a GPU."""
    sigs = tmp_path / "signatures.json"
    results = _run_child(["--record", str(sigs), "all"], simulate=True)
    failed = {k: v["error"] for k, v in results.items() if v["status"] == "fail"}
    assert not failed, "\n\n".join(f"{k}: {v}" for k, v in failed.items())
    report = _run_child(["--compile-ptx", str(sigs)], simulate=False)
    assert not report["failures"], "\n\n".join(report["failures"])
    assert report["compiled"] > 30


def _gpu_bench(*args: str) -> list[dict]:
    """The rows that ``tools/gpu_bench.py ARGS`` prints last, run in the simulator."""
    proc = subprocess.run(
        [sys.executable, str(REPO / "tools" / "gpu_bench.py"), *args],
        env=_child_env(True),
        cwd=str(REPO),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_step_profile_and_launch_budget():
    """tools/gpu_bench.py profile (simulated): it counts every kind of call, and a training
    step of each seed model stays within its kernel-launch budget (launches cost tens of
    microseconds each on a GPU): one optimizer update for all dense weights, activation
    backwards fused into the bias gradient or the max pooling's backward, no fill kernels.
    From the second batch on, a step allocates no device memory (the batch arena), makes no
    new array objects (views are kept with their arrays; an Embedding's gradient rows vary in
    number, so theirs may be new), uploads the batch (and the Embedding's gradient rows, once)
    and downloads only the losses."""
    rows = _gpu_bench("profile", "--tiny", "--steps", "2", "--batch-sizes", "2")
    rows = {r["model"]: r for r in rows}
    for model, budget, uploads, views in (("cnn", 33, 2, 0), ("lstm", 30, 3, 3)):
        r = rows[model]
        assert r["uploads_per_step"] == uploads and r["downloads_per_step"] == 1, r
        assert r["allocations_per_step"] == 0 and r["array_objects_per_step"] <= views, r
        assert r["launches_per_step"] <= budget, r["launches_by_kernel"]
        assert r["launches_by_kernel"]["_adam"] == 1
        assert not {"_fill", "_act_bwd"} & set(r["launches_by_kernel"]), r["launches_by_kernel"]


def test_call_overhead_bench_runs():
    """tools/gpu_bench.py overhead (simulated): one row per kind of numba.cuda call, each timed."""
    calls = {r["call"]: r["host_us"] for r in _gpu_bench("overhead", "--repeat", "3")}
    assert {"launch, 1 array", "launch, 8 arrays", "allocation (1 KiB)", "slice"} <= set(calls)
    assert all(us > 0 for us in calls.values()), calls


def test_simulated_reason_is_none_under_the_simulator():
    info = _run_child(["--availability"], simulate=True, timeout=120)
    assert info["reason"] is None
    assert info["devices"] == ["cpu", "cuda"]


# ----------------------------------------------------------------------------------------------
# child side
# ----------------------------------------------------------------------------------------------


def close(name: str, got, want, rtol: float) -> None:
    """Element-wise |got - want| <= rtol * |want| + rtol * max|want|."""
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    if got.shape != want.shape:
        raise AssertionError(f"{name}: shape {got.shape} != {want.shape}")
    scale = float(np.max(np.abs(want))) if want.size else 0.0
    np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * max(scale, 1e-30), err_msg=name)


def _ops():
    from edgemine.kernels import cpu, cuda

    return cpu, cuda


def _rand(rng, *shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


# ----- gemm_dense -----
def check_gemm(rng):
    from edgemine.kernels.cuda.gemm import gemm

    cpu, cu = _ops()
    a = _rand(rng, 5, 7)
    b = _rand(rng, 7, 6)
    bias = _rand(rng, 6)
    want = np.maximum(a @ b + bias, 0)
    for ta in (False, True):
        for tb in (False, True):
            da = cu.asarray(np.ascontiguousarray(a.T) if ta else a)
            db = cu.asarray(np.ascontiguousarray(b.T) if tb else b)
            got = gemm(da, db, trans_a=ta, trans_b=tb, bias=cu.asarray(bias), activation="relu")
            close(f"gemm ta={ta} tb={tb}", cu.to_numpy(got), want, FWD)
    for split in (2, 3):
        got = gemm(
            cu.asarray(a), cu.asarray(b), split_k=split, bias=cu.asarray(bias), activation="tanh"
        )
        close(f"gemm split_k={split}", cu.to_numpy(got), np.tanh(a @ b + bias), FWD)
    a2, b2 = _rand(rng, 19, 13), _rand(rng, 13, 11)  # several tiles in each direction
    for split in (None, 2):
        got = gemm(cu.asarray(a2), cu.asarray(b2), split_k=split)
        close(f"gemm multi-tile split_k={split}", cu.to_numpy(got), a2 @ b2, FWD)
    out = cu.asarray(np.ones((5, 6), np.float32))
    gemm(cu.asarray(a), cu.asarray(b), out, accumulate=True, split_k=2)
    close("gemm accumulate", cu.to_numpy(out), a @ b + 1, FWD)


def check_column_sums(rng):
    from edgemine.kernels.cuda.gemm import activation_grad_column_sums, column_sums

    cpu, cu = _ops()
    for rows in (37, 5):  # several row slices and a final pass; one slice finished in place
        x = _rand(rng, rows, 5)
        y = _rand(rng, rows, 5)
        close(f"colsum {rows}", cu.to_numpy(column_sums(cu.asarray(x))), x.sum(0), FWD)
        s, p = column_sums(cu.asarray(x), cu.asarray(y), mode=1)
        close(f"colsum x {rows}", cu.to_numpy(s), x.sum(0), FWD)
        close(f"colsum xy {rows}", cu.to_numpy(p), (x * y).sum(0), FWD)
        m, v = column_sums(cu.asarray(x), mode=2, scale=1 / rows)
        close(f"mean {rows}", cu.to_numpy(m), x.mean(0), FWD)
        close(f"var {rows}", cu.to_numpy(v), x.var(0), FWD)
        for act in ("relu", "sigmoid", "tanh"):  # an activation's backward and its column sums
            out = cpu.activation_forward(act, y)
            want = cpu.activation_backward(act, out, x)
            dz, sums = activation_grad_column_sums(act, cu.asarray(out), cu.asarray(x))
            close(f"act grad {act} {rows}", cu.to_numpy(dz), want, FWD)
            close(f"act grad sums {act} {rows}", cu.to_numpy(sums), want.sum(0), FWD)


def check_dense(rng):
    cpu, cu = _ops()
    for shape in ((4, 6), (2, 3, 6)):
        x = _rand(rng, *shape)
        k = _rand(rng, 6, 5)
        b = _rand(rng, 5)
        for act in ("linear", "relu", "sigmoid", "tanh", "softmax"):
            want = cpu.dense_forward(x, k, b, act)
            got = cu.dense_forward(cu.asarray(x), cu.asarray(k), cu.asarray(b), act)
            close(f"dense {shape} {act}", cu.to_numpy(got), want, FWD)
        got = cu.dense_forward(cu.asarray(x), cu.asarray(k), None)
        close("dense no bias", cu.to_numpy(got), cpu.dense_forward(x, k, None), FWD)
        dz = _rand(rng, *shape[:-1], 5)
        for act in ("linear", "relu", "sigmoid", "tanh", "softmax"):  # dy of the activation
            y = cpu.dense_forward(x, k, b, act)
            want = cpu.dense_backward(x, k, dz, True, activation=act, y=y)
            got = cu.dense_backward(
                cu.asarray(x), cu.asarray(k), cu.asarray(dz), True, activation=act, y=cu.asarray(y)
            )
            for nm, g, w in zip(("dx", "dkernel", "dbias"), got, want):
                close(f"dense_backward {shape} {act} {nm}", cu.to_numpy(g), w, GRAD)
        # the weight gradients written into given arrays (the optimizer's flat buffer)
        dk, db = cu.asarray(np.zeros((6, 5), np.float32)), cu.asarray(np.zeros(5, np.float32))
        y = cpu.dense_forward(x, k, b, "relu")
        got = cu.dense_backward(
            cu.asarray(x), cu.asarray(k), cu.asarray(dz), False, "relu", cu.asarray(y), (dk, db)
        )
        assert got[0] is None and got[1] is dk and got[2] is db
        want = cpu.dense_backward(x, k, dz, False, "relu", y)
        close(f"dense_backward {shape} into out", cu.to_numpy(dk), want[1], GRAD)
        close(f"dense_backward {shape} bias into out", cu.to_numpy(db), want[2], GRAD)


def check_activations(rng):
    cpu, cu = _ops()
    x = _rand(rng, 3, 4, 5, scale=3.0)
    dy = _rand(rng, 3, 4, 5)
    for act in ("linear", "relu", "sigmoid", "tanh", "softmax"):
        y = cpu.activation_forward(act, x)
        got = cu.activation_forward(act, cu.asarray(x))
        close(f"{act} forward", cu.to_numpy(got), y, FWD)
        got = cu.activation_backward(act, cu.asarray(y), cu.asarray(dy))
        close(f"{act} backward", cu.to_numpy(got), cpu.activation_backward(act, y, dy), GRAD)
    try:
        cu.activation_forward("swish", cu.asarray(x))
    except ValueError:
        pass
    else:
        raise AssertionError("unknown activation accepted")
    bias = _rand(rng, 5)
    for act in ("linear", "relu", "sigmoid", "tanh"):  # bias over the last axis, then act
        for b in (bias, None):
            want = cpu.bias_activation(x.copy(), b, act)
            got = cu.bias_activation(cu.asarray(x), None if b is None else cu.asarray(b), act)
            close(f"bias_activation {act} bias={b is not None}", cu.to_numpy(got), want, FWD)


def check_batchnorm(rng):
    cpu, cu = _ops()
    x = _rand(rng, 3, 2, 2, 4, scale=2.0) + 1.5
    mean, var = cpu.batch_moments(x)
    gm, gv = cu.batch_moments(cu.asarray(x))
    close("batch mean", cu.to_numpy(gm), mean, FWD)
    close("batch var", cu.to_numpy(gv), var, FWD)
    gamma, beta = _rand(rng, 4) + 1, _rand(rng, 4)
    for g_, b_ in ((gamma, beta), (None, None)):
        want = cpu.batchnorm_forward(x, g_, b_, mean, var, 1e-3)
        got = cu.batchnorm_forward(
            cu.asarray(x),
            None if g_ is None else cu.asarray(g_),
            None if b_ is None else cu.asarray(b_),
            cu.asarray(mean),
            cu.asarray(var),
            1e-3,
        )
        for nm, g, w in zip(("y", "xhat", "inv_std"), got, want):
            close(f"batchnorm_forward {nm}", cu.to_numpy(g), w, FWD)
        dy = _rand(rng, *x.shape)
        for training in (True, False):
            w = cpu.batchnorm_backward(want[1], want[2], g_, dy, training)
            g = cu.batchnorm_backward(
                got[1], got[2], None if g_ is None else cu.asarray(g_), cu.asarray(dy), training
            )
            for nm, gg, ww in zip(("dx", "dgamma", "dbeta"), g, w):
                close(f"batchnorm_backward training={training} {nm}", cu.to_numpy(gg), ww, GRAD)
    target = _rand(rng, 4)
    new = _rand(rng, 4)
    dev = cu.asarray(target)
    cu.ema_update(dev, cu.asarray(new), 0.99)
    host = target.copy()
    cpu.ema_update(host, new, 0.99)
    close("ema_update vs cpu", cu.to_numpy(dev), host, GRAD)
    close("ema_update", cu.to_numpy(dev), target * 0.99 + new * (1 - 0.99), GRAD)


def check_dropout(rng):
    cpu, cu = _ops()
    x = _rand(rng, 4, 3, 5)
    y, mask = cpu.dropout_forward(x, 0.3, np.random.default_rng(5))
    gy, gmask = cu.dropout_forward(cu.asarray(x), 0.3, np.random.default_rng(5))
    close("dropout y", cu.to_numpy(gy), y, FWD)
    close("dropout mask", cu.to_numpy(gmask), mask, FWD)
    dy = _rand(rng, *x.shape)
    want = cpu.dropout_backward(dy, mask)
    close("dropout backward", cu.to_numpy(cu.dropout_backward(cu.asarray(dy), gmask)), want, GRAD)


def check_memory(rng):
    """asarray / to_numpy / zeros_like round trips, and the interface's names."""
    cpu, cu = _ops()
    missing = sorted(set(cpu.__all__) - set(dir(cu)))
    if missing:
        raise AssertionError(f"CUDA backend lacks CPU ops: {missing}")
    x = _rand(rng, 3, 4)
    d = cu.asarray(x)
    assert cu.asarray(d) is d
    np.testing.assert_array_equal(cu.to_numpy(d), x)
    np.testing.assert_array_equal(cu.to_numpy(cu.zeros_like(d)), np.zeros_like(x))
    ids = cu.asarray(np.array([[1, 2], [3, 0]]), dtype=np.int32)
    assert cu.to_numpy(ids).dtype == np.int32
    flat = d.reshape(d.shape[0], -1)
    assert tuple(flat.shape) == (3, 4)


def check_batch_memory(rng):
    """The batch arena: the next batch gets the same device arrays in the same order; nested
    batches belong to the outer one; lasting_memory allocates outside it; an upload's host
    source is read back without a download; the arrays are poisoned (NaN, -1) when their batch
    ends (EDGEMINE_CUDA_POISON=1, set by the parent), and a batch keeps only what it took."""
    from edgemine.kernels.cuda import _device as dev

    _, cu = _ops()
    host = _rand(rng, 2, 3)

    def batch(extra=True):
        with cu.batch_memory():
            a, b = dev.empty((2, 3)), dev.empty((2, 3))
            ids = dev.empty((4,), np.int32)
            x = cu.asarray(host)
            assert dev.uploaded_host(x) is host  # no download
            with cu.batch_memory():
                inner = dev.empty((2, 3)) if extra else None
            with cu.lasting_memory():
                kept = cu.asarray(host)
            return [a, b, ids, x, inner], kept

    first, kept1 = batch()
    second, kept2 = batch()
    assert all(p is q for p, q in zip(first, second)), "the second batch allocated anew"
    assert len({id(a) for a in first}) == len(first), "two live temporaries share an array"
    assert kept1 is not kept2 and all(kept1 is not a for a in first)
    np.testing.assert_array_equal(cu.to_numpy(kept1), host)  # not poisoned
    np.testing.assert_array_equal(dev.uploaded_host(first[3]), cu.to_numpy(first[3]))
    assert np.isnan(cu.to_numpy(first[0])).all() and (cu.to_numpy(first[2]) == -1).all()
    third, _ = batch(extra=False)  # takes one (2, 3) array fewer ...
    fourth, _ = batch()  # ... so this batch allocates it again
    assert third[0] is first[0] and fourth[4] is not first[4]


# ----- conv_pool -----
def check_conv2d(rng):
    cpu, cu = _ops()
    cases = [
        ((2, 5, 5, 2), (3, 3, 2, 3), (1, 1), "valid", "relu"),
        ((2, 5, 6, 2), (3, 2, 2, 3), (2, 2), "same", "tanh"),
        ((1, 4, 4, 3), (1, 1, 3, 2), (1, 1), "valid", "linear"),
        ((1, 5, 5, 1), (2, 2, 1, 2), (2, 1), "same", "sigmoid"),
    ]
    for xs, ks, strides, padding, act in cases:
        x, k, b = _rand(rng, *xs), _rand(rng, *ks), _rand(rng, ks[-1])
        y, cols = cpu.conv2d_forward(x, k, b, strides, padding, act)
        gy, gcols = cu.conv2d_forward(
            cu.asarray(x), cu.asarray(k), cu.asarray(b), strides, padding, act
        )
        tag = f"conv {xs} {ks} {strides} {padding} {act}"
        close(f"{tag} y", cu.to_numpy(gy), y, FWD)
        # the cache is each backend's own business (im2col matrix or the input); gradients are not
        dy = _rand(rng, *y.shape)
        for need_dx in (True, False):
            for grad_act in ("linear", act):  # dy of the conv output, or of the activation's
                want = cpu.conv2d_backward(
                    x.shape, cols, k, dy, strides, padding, need_dx, activation=grad_act, y=y
                )
                got = cu.conv2d_backward(
                    x.shape,
                    gcols,
                    cu.asarray(k),
                    cu.asarray(dy),
                    strides,
                    padding,
                    need_dx,
                    activation=grad_act,
                    y=gy,
                )
                for nm, g, w in zip(("dx", "dkernel", "dbias"), got, want):
                    if w is None:
                        assert g is None, f"{tag} {nm}: expected None"
                        continue
                    close(f"{tag} {nm} {grad_act} need_dx={need_dx}", cu.to_numpy(g), w, GRAD)


def check_conv2d_corner(rng):
    """``corner=``: the CPU's corner is the full output's top-left part, its gradients those of
    a dy that is zero elsewhere; the CUDA twin matches the CPU."""
    cpu, cu = _ops()
    cases = [
        ((2, 6, 7, 2), (3, 3, 2, 3), (1, 1), "valid", (3, 4)),
        ((2, 5, 6, 2), (3, 2, 2, 3), (2, 2), "same", (2, 2)),
        ((1, 5, 5, 3), (1, 1, 3, 2), (1, 1), "valid", (4, 4)),  # 1x1: no im2col otherwise
    ]
    for xs, ks, strides, padding, corner in cases:
        x, k, b = _rand(rng, *xs), _rand(rng, *ks), _rand(rng, ks[-1])
        tag = f"conv corner {xs} {ks} {strides} {padding} {corner}"
        full, full_cols = cpu.conv2d_forward(x, k, b, strides, padding, "relu")
        y, cols = cpu.conv2d_forward(x, k, b, strides, padding, "relu", corner=corner)
        rows, cols_n = corner
        close(f"{tag} cpu y", y, full[:, :rows, :cols_n], FWD)
        dy = _rand(rng, *y.shape)
        dy_full = np.zeros_like(full)
        dy_full[:, :rows, :cols_n] = dy
        want = cpu.conv2d_backward(x.shape, full_cols, k, dy_full, strides, padding, True)
        got = cpu.conv2d_backward(x.shape, cols, k, dy, strides, padding, True, corner=corner)
        for nm, g, w in zip(("dx", "dkernel", "dbias"), got, want):
            close(f"{tag} cpu {nm}", g, w, GRAD)
        gy, gcols = cu.conv2d_forward(
            cu.asarray(x), cu.asarray(k), cu.asarray(b), strides, padding, "relu", corner=corner
        )
        close(f"{tag} y", cu.to_numpy(gy), y, FWD)
        args = (strides, padding, True)
        got = cu.conv2d_backward(
            x.shape, gcols, cu.asarray(k), cu.asarray(dy), *args, "relu", gy, corner=corner
        )
        want = cpu.conv2d_backward(x.shape, cols, k, dy, *args, "relu", y, corner=corner)
        for nm, g, w in zip(("dx", "dkernel", "dbias"), got, want):
            close(f"{tag} {nm}", cu.to_numpy(g), w, GRAD)


def check_pool2d(rng):
    cpu, cu = _ops()
    cases = [
        ("max", (2, 2), (2, 2), "valid"),
        ("max", (2, 2), (1, 1), "valid"),  # overlapping windows
        ("max", (3, 3), (2, 2), "same"),
        ("avg", (2, 2), (2, 2), "valid"),
        ("avg", (3, 2), (2, 1), "same"),
    ]
    x = _rand(rng, 2, 5, 5, 2)
    for mode, pool, strides, padding in cases:
        y, arg = cpu.pool2d_forward(mode, x, pool, strides, padding)
        gy, garg = cu.pool2d_forward(mode, cu.asarray(x), pool, strides, padding)
        tag = f"pool {mode} {pool} {strides} {padding}"
        close(f"{tag} y", cu.to_numpy(gy), y, FWD)
        # the winners' record is each backend's own (CPU: position in a tiling window)
        dy = _rand(rng, *y.shape)
        want = cpu.pool2d_backward(mode, x.shape, arg, dy, pool, strides, padding)
        got = cu.pool2d_backward(mode, x.shape, garg, cu.asarray(dy), pool, strides, padding)
        close(f"{tag} dx", cu.to_numpy(got), want, GRAD)
        if mode == "max":  # through the ReLU that fed the pooling (half of y is negative here)
            want = cpu.pool2d_backward(mode, x.shape, arg, dy, pool, strides, padding, relu_y=y)
            got = cu.pool2d_backward(
                mode, x.shape, garg, cu.asarray(dy), pool, strides, padding, relu_y=gy
            )
            close(f"{tag} dx through relu", cu.to_numpy(got), want, GRAD)


def check_global_pool(rng):
    cpu, cu = _ops()
    x = _rand(rng, 2, 3, 4, 3)
    for mode in ("avg", "max"):
        y, cache = cpu.global_pool_forward(mode, x)
        gy, gcache = cu.global_pool_forward(mode, cu.asarray(x))
        close(f"global {mode} y", cu.to_numpy(gy), y, FWD)
        dy = _rand(rng, *y.shape)
        want = cpu.global_pool_backward(mode, x.shape, cache, dy)
        got = cu.global_pool_backward(mode, x.shape, gcache, cu.asarray(dy))
        close(f"global {mode} dx", cu.to_numpy(got), want, GRAD)


def check_nan(rng):
    """A NaN is never dropped: ReLU keeps it, and a max pooling window that holds one yields it
    (the first NaN wins, as numpy's argmax), on both backends alike."""
    cpu, cu = _ops()
    x = _rand(rng, 2, 4, 6, 3)
    x[0, 1, 1, 0] = x[1, 2, 3, 2] = x[1, 0, 0, 1] = np.nan

    def same(name, got, want):
        got, want = cu.to_numpy(got), np.asarray(want)
        if not np.array_equal(np.isnan(got), np.isnan(want)) or not np.isnan(want).any():
            raise AssertionError(f"{name}: NaN positions differ or none survived")
        close(name, np.nan_to_num(got), np.nan_to_num(want), FWD)

    same("relu", cu.activation_forward("relu", cu.asarray(x)), cpu.activation_forward("relu", x))
    for pool, strides in (((2, 2), (2, 2)), ((3, 2), (1, 2))):
        y, _ = cpu.pool2d_forward("max", x, pool, strides, "valid")
        gy, _ = cu.pool2d_forward("max", cu.asarray(x), pool, strides, "valid")
        same(f"max pool {pool} {strides}", gy, y)
    y, _ = cpu.global_pool_forward("max", x)
    same("global max", cu.global_pool_forward("max", cu.asarray(x))[0], y)


# ----- loss_optim -----
def check_losses(rng):
    cpu, cu = _ops()
    n, k = 4, 5
    for name in (
        "categorical_crossentropy",
        "sparse_categorical_crossentropy",
        "binary_crossentropy",
        "mean_squared_error",
    ):
        if name == "sparse_categorical_crossentropy":
            y = rng.integers(0, k, (n, 1)).astype(np.int32)
        elif name == "categorical_crossentropy":
            y = np.eye(k, dtype=np.float32)[rng.integers(0, k, n)]
        else:
            y = rng.random((n, k), dtype=np.float32)
        for from_logits in (False, True):
            if name == "mean_squared_error" and from_logits:
                continue
            if from_logits or name == "mean_squared_error":
                p = _rand(rng, n, k, scale=2.0)
            elif "categorical" in name:
                p = cpu.activation_forward("softmax", _rand(rng, n, k, scale=2.0))
                p[0, 0] = 1e-9  # exercise the clipping
            else:
                p = rng.random((n, k), dtype=np.float32) * 0.9 + 0.05
                p[0, 0] = 1e-9
            tag = f"{name} logits={from_logits}"
            want = cpu.loss_forward(name, p, y, from_logits)
            got = cu.loss_forward(name, cu.asarray(p), cu.asarray(y), from_logits)
            close(f"{tag} forward", cu.to_numpy(got), want, FWD)
            fuses = [None]
            if not from_logits:
                fuses.append({"binary_crossentropy": "sigmoid"}.get(name, "softmax"))
            if name == "mean_squared_error":
                fuses = [None]
            for fused in fuses:
                want = cpu.loss_and_gradient(name, p, y, from_logits, fused)
                got = cu.loss_and_gradient(name, cu.asarray(p), cu.asarray(y), from_logits, fused)
                close(f"{tag} fused={fused} losses", cu.to_numpy(got[0]), want[0], FWD)
                close(f"{tag} fused={fused} gradient", cu.to_numpy(got[1]), want[1], GRAD)
            if fuses[-1] is not None:  # the loss applies the fused activation, in place
                act = fuses[-1]
                z = _rand(rng, n, k, scale=2.0)
                zc, zg = z.copy(), cu.asarray(z)
                want = cpu.loss_and_gradient(name, zc, y, False, act, apply_activation=True)
                got = cu.loss_and_gradient(name, zg, cu.asarray(y), False, act, True)
                close(f"{name} {act} applied in place", cu.to_numpy(zg), zc, FWD)
                close(f"{name} {act} applied: losses", cu.to_numpy(got[0]), want[0], FWD)
                close(f"{name} {act} applied: gradient", cu.to_numpy(got[1]), want[1], GRAD)
    # sequence outputs: (batch, time, classes)
    p = cpu.activation_forward("softmax", _rand(rng, 2, 3, 4))
    y = np.eye(4, dtype=np.float32)[rng.integers(0, 4, (2, 3))]
    want = cpu.loss_forward("categorical_crossentropy", p, y)
    got = cu.loss_forward("categorical_crossentropy", cu.asarray(p), cu.asarray(y))
    close("categorical 3-D forward", cu.to_numpy(got), want, FWD)
    labels = rng.integers(0, 4, (2, 3)).astype(np.int32)  # sparse labels per time step
    for name, t in (("categorical_crossentropy", y), ("sparse_categorical_crossentropy", labels)):
        for fused in (None, "softmax"):  # the gradient is averaged over batch and time
            want = cpu.loss_and_gradient(name, p, t, False, fused)
            got = cu.loss_and_gradient(name, cu.asarray(p), cu.asarray(t), False, fused)
            close(f"{name} 3-D fused={fused} losses", cu.to_numpy(got[0]), want[0], FWD)
            close(f"{name} 3-D fused={fused} gradient", cu.to_numpy(got[1]), want[1], GRAD)


def _opt_step(ops, kind, p, g, slots, **hp):
    if kind == "sgd":
        ops.sgd_update(p, g, slots[0], hp["lr"], hp["momentum"], hp["nesterov"])
    elif kind == "adam":
        ops.adam_update(p, g, slots[0], slots[1], hp["lr"], 0.9, 0.999, 1e-7)
    else:
        ops.rmsprop_update(
            p, g, slots[0], slots[1], slots[2], hp["lr"], 0.9, 1e-7, hp["momentum"], hp["centered"]
        )


def check_optimizers(rng):
    cpu, cu = _ops()
    configs = [
        ("sgd", {"lr": 0.1, "momentum": 0.0, "nesterov": False}),
        ("sgd", {"lr": 0.1, "momentum": 0.9, "nesterov": False}),
        ("sgd", {"lr": 0.1, "momentum": 0.9, "nesterov": True}),
        ("adam", {"lr": 0.01}),
        ("rmsprop", {"lr": 0.01, "momentum": 0.0, "centered": False}),
        ("rmsprop", {"lr": 0.01, "momentum": 0.5, "centered": True}),
    ]
    for kind, hp in configs:
        p = _rand(rng, 3, 4)
        host_p, host_slots = p.copy(), [np.zeros_like(p) for _ in range(3)]
        dev_p, dev_slots = cu.asarray(p), [cu.zeros_like(cu.asarray(p)) for _ in range(3)]
        for _ in range(3):
            g = _rand(rng, 3, 4)
            _opt_step(cpu, kind, host_p, g, host_slots, **hp)
            _opt_step(cu, kind, dev_p, cu.asarray(g), dev_slots, **hp)
        close(f"{kind} {hp} weights", cu.to_numpy(dev_p), host_p, GRAD)
        for i, (hs, ds) in enumerate(zip(host_slots, dev_slots)):
            close(f"{kind} {hp} slot {i}", cu.to_numpy(ds), hs, GRAD)
    p = _rand(rng, 5, 7)
    dev = cu.asarray(p)
    cu.scale_(dev, 0.97)
    cpu.scale_(p, 0.97)  # weight decay's in-place scaling
    close("scale_", cu.to_numpy(dev), p, FWD)


def check_sparse_rows(rng):
    cpu, cu = _ops()
    p = _rand(rng, 6, 3)
    host = [p.copy(), np.zeros_like(p), np.zeros_like(p)]
    dev = [cu.asarray(p), cu.zeros_like(cu.asarray(p)), cu.zeros_like(cu.asarray(p))]
    for step, rows in enumerate(([1, 4], [0, 4, 5], [2])):
        rows = np.array(rows, dtype=np.int32)
        g = _rand(rng, len(rows), 3)
        lr_t = 0.01 * (step + 1)
        cpu.adam_update_sparse(host[0], rows, g, host[1], host[2], lr_t, 0.9, 0.999, 1e-7)
        cu.adam_update_sparse(
            dev[0], cu.asarray(rows), cu.asarray(g), dev[1], dev[2], lr_t, 0.9, 0.999, 1e-7
        )
    for nm, h, d in zip(("p", "m", "v"), host, dev):
        close(f"adam_update_sparse {nm}", cu.to_numpy(d), h, GRAD)
    dense = np.zeros((6, 3), np.float32)
    ddense = cu.zeros_like(cu.asarray(dense))
    rows = np.array([3, 0], dtype=np.int32)
    vals = _rand(rng, 2, 3)
    cpu.scatter_rows(dense, rows, vals)
    cu.scatter_rows(ddense, cu.asarray(rows), cu.asarray(vals))
    close("scatter_rows", cu.to_numpy(ddense), dense, FWD)
    cpu.clear_rows(dense, rows)
    cu.clear_rows(ddense, cu.asarray(rows))
    close("clear_rows", cu.to_numpy(ddense), dense, FWD)


# ----- recurrent -----
def _need(cpu, *names):
    missing = [n for n in names if not hasattr(cpu, n)]
    assert not missing, f"the CPU backend has no {', '.join(missing)}"


def check_embedding(rng):
    cpu, cu = _ops()
    _need(cpu, "embedding_forward", "embedding_backward", "embedding_id_range", "embedding_mask")
    ids = np.array([[0, 3, 3, 7], [5, 0, 9, 3], [7, 7, 1, 2]], dtype=np.int32)
    for vocab in (10, 1000):  # the CPU's two orders: first appearance / sorted
        table = _rand(rng, vocab, 3)
        dids = cu.asarray(ids)
        assert cu.embedding_id_range(dids) == cpu.embedding_id_range(ids)
        y = cpu.embedding_forward(table, ids)
        close(
            f"embedding forward {vocab}",
            cu.to_numpy(cu.embedding_forward(cu.asarray(table), dids)),
            y,
            FWD,
        )
        dy = _rand(rng, *y.shape)
        rows, values = cpu.embedding_backward(ids, dy, vocab)
        grows, gvalues = cu.embedding_backward(dids, cu.asarray(dy), vocab)
        np.testing.assert_array_equal(cu.to_numpy(grows), rows, err_msg=f"embedding rows {vocab}")
        close(f"embedding values {vocab}", cu.to_numpy(gvalues), values, GRAD)
    np.testing.assert_array_equal(
        cu.to_numpy(cu.embedding_mask(cu.asarray(ids))), cpu.embedding_mask(ids)
    )


def _rnn_case(cpu, cu, rng, cell, **kw):
    gates = {"lstm": 4, "gru": 3, "simple_rnn": 1}[cell]
    nb, steps, nin, u = 3, 4, 3, 2
    x = _rand(rng, nb, steps, nin)
    k = _rand(rng, nin, gates * u, scale=0.7)
    rk = _rand(rng, u, gates * u, scale=0.7)
    bias = _rand(rng, *((2, gates * u) if cell == "gru" else (gates * u,)))
    if kw.pop("no_bias", False):
        bias = None
    mask = None
    if kw.pop("masked", False):
        mask = np.array([[0, 1, 1, 1], [1, 1, 1, 1], [0, 0, 1, 1]], dtype=bool)
    training = kw.pop("training", True)
    tag = f"{cell} {kw} mask={mask is not None} training={training} bias={bias is not None}"
    seed = int(rng.integers(1 << 30))
    y, cache = cpu.rnn_forward(
        cell, x, k, rk, bias, mask=mask, training=training, rng=np.random.default_rng(seed), **kw
    )
    gy, gcache = cu.rnn_forward(
        cell,
        cu.asarray(x),
        cu.asarray(k),
        cu.asarray(rk),
        None if bias is None else cu.asarray(bias),
        mask=None if mask is None else cu.asarray(mask),
        training=training,
        rng=np.random.default_rng(seed),
        **kw,
    )
    close(f"{tag} y", cu.to_numpy(gy), y, FWD)
    if not training:
        assert gcache is None
        return
    dy = _rand(rng, *y.shape)
    want = cpu.rnn_backward(cache, dy, True)
    got = cu.rnn_backward(gcache, cu.asarray(dy), True)
    for nm, g, w in zip(("dx", "dkernel", "drecurrent", "dbias"), got, want):
        close(f"{tag} {nm}", cu.to_numpy(g), w, GRAD)


_RNN_CASES = [  # every option at least once, in few runs (the simulator is slow)
    {},
    {
        "masked": True,
        "return_sequences": True,
        "zero_output_for_mask": True,
        "dropout": 0.3,
        "recurrent_dropout": 0.4,
    },
    {
        "masked": True,
        "go_backwards": True,
        "no_bias": True,
        "activation": "relu",
        "recurrent_activation": "tanh",
    },
    {"training": False, "masked": True, "return_sequences": True},
]


def _check_cell(cell, rng):
    cpu, cu = _ops()
    _need(cpu, "rnn_forward", "rnn_backward")
    for kw in _RNN_CASES:
        if cell == "simple_rnn" and "recurrent_activation" in kw:
            kw = {k: v for k, v in kw.items() if k != "recurrent_activation"}
        _rnn_case(cpu, cu, rng, cell, **dict(kw))


def check_lstm(rng):
    _check_cell("lstm", rng)


def check_gru(rng):
    _check_cell("gru", rng)


def check_simple_rnn(rng):
    _check_cell("simple_rnn", rng)


def check_bidirectional_ops(rng):
    cpu, cu = _ops()
    _need(cpu, "reverse_time", "merge_forward", "merge_backward")
    a, b, dy1 = _rand(rng, 2, 3, 4), _rand(rng, 2, 3, 4), _rand(rng, 2, 3, 4)
    close("reverse_time", cu.to_numpy(cu.reverse_time(cu.asarray(a))), cpu.reverse_time(a), FWD)
    for mode in ("concat", "sum", "ave", "mul", "sub", "max", "min"):
        want = cpu.merge_forward(mode, a, b)
        got = cu.merge_forward(mode, cu.asarray(a), cu.asarray(b))
        close(f"merge {mode}", cu.to_numpy(got), want, FWD)
        dy = _rand(rng, *want.shape) if mode == "concat" else dy1
        want = cpu.merge_backward(mode, a, b, dy)
        got = cu.merge_backward(mode, cu.asarray(a), cu.asarray(b), cu.asarray(dy))
        for i in range(2):
            close(f"merge {mode} backward {i}", cu.to_numpy(got[i]), want[i], GRAD)
    close("add", cu.to_numpy(cu.add(cu.asarray(a), cu.asarray(b))), cpu.add(a, b), FWD)
    c, dy = _rand(rng, 2, 3, 2), _rand(rng, 2, 3, 6)  # concatenation of unequal widths
    got = cu.merge_backward("concat", cu.asarray(a), cu.asarray(c), cu.asarray(dy))
    for i, want in enumerate(cpu.merge_backward("concat", a, c, dy)):
        close(f"unequal concat backward {i}", cu.to_numpy(got[i]), want, GRAD)
    got = cu.merge_forward("concat", cu.asarray(a), cu.asarray(c))
    close("unequal concat", cu.to_numpy(got), cpu.merge_forward("concat", a, c), FWD)


# ----- fit -----
def _fit_both(build, x, y, loss, optimizer, epochs=1, batch_size=4):
    from edgemine.models import Sequential
    from edgemine.utils import set_random_seed

    weights, losses, preds = {}, {}, {}
    for device in ("cpu", "cuda"):
        set_random_seed(3)
        built = build()
        model = Sequential(built) if isinstance(built, list) else built
        opt = optimizer() if callable(optimizer) else optimizer  # a fresh one per device
        model.compile(optimizer=opt, loss=loss, metrics=["accuracy"], device=device)
        hist = model.fit(
            x, y, batch_size=batch_size, epochs=epochs, verbose=0, validation_data=(x[:3], y[:3])
        )
        weights[device] = model.get_weights()
        losses[device] = hist.history["loss"] + hist.history["val_loss"]
        preds[device] = model.predict(x, batch_size=3)  # batches of 3, a shorter last one
    for i, (wc, wg) in enumerate(zip(weights["cpu"], weights["cuda"])):
        close(f"weight {i} after fit", wg, wc, GRAD)
    close("loss and validation loss history", losses["cuda"], losses["cpu"], GRAD)
    close("predictions", preds["cuda"], preds["cpu"], GRAD)


def check_fit_cnn(rng):
    from edgemine.layers import Conv2D, Dense, Flatten, MaxPooling2D
    from edgemine.utils import to_categorical

    x = rng.random((10, 7, 7, 1), dtype=np.float32)
    y = to_categorical(rng.integers(0, 3, 10), 3)

    def build():
        return [  # 5x5 convolution output: the pooling reads its 4x4 corner (Graph.corners)
            Conv2D(3, 3, activation="relu", input_shape=(7, 7, 1)),
            MaxPooling2D(),
            Flatten(),
            Dense(3, activation="softmax"),
        ]

    _fit_both(build, x, y, "categorical_crossentropy", "adam")


def check_fit_functional(rng):
    """A graph: a shared layer called twice, a tensor read three times, merges."""
    from edgemine.layers import Concatenate, Dense, Input, Maximum, Multiply
    from edgemine.models import Model

    x = rng.random((10, 4), dtype=np.float32)
    y = rng.integers(0, 3, 10)

    def build():
        inp = Input(shape=(4,))
        h = Dense(4, activation="tanh")(inp)
        shared = Dense(4, activation="relu")
        u, v = shared(h), shared(inp)
        joined = Concatenate()([Multiply()([u, h]), Maximum()([v, h])])
        return Model(inp, Dense(3, activation="softmax")(joined))

    _fit_both(build, x, y, "sparse_categorical_crossentropy", "adam")


def check_fit_multi_output(rng):
    """Three outputs, each with its loss and weight: a fused softmax, a fused sigmoid, a
    linear mse head; sample weights; y as a dict."""
    from edgemine.layers import Dense, Input
    from edgemine.models import Model
    from edgemine.utils import set_random_seed

    x = rng.random((10, 4), dtype=np.float32)
    y = {
        "kind": rng.integers(0, 3, 10),
        "flag": rng.integers(0, 2, (10, 1)).astype(np.float32),
        "size": rng.random((10, 2), dtype=np.float32),
    }
    w = rng.random(10, dtype=np.float32)
    got = {}
    for device in ("cpu", "cuda"):
        set_random_seed(3)
        inp = Input(shape=(4,))
        h = Dense(5, activation="tanh")(inp)
        outs = [
            Dense(3, activation="softmax", name="kind")(h),
            Dense(1, activation="sigmoid", name="flag")(h),
            Dense(2, name="size")(h),
        ]
        model = Model(inp, outs)
        model.compile(
            "adam",
            loss=["sparse_categorical_crossentropy", "binary_crossentropy", "mse"],
            loss_weights=[1.0, 0.5, 2.0],
            metrics={"kind": ["accuracy"], "flag": ["accuracy"]},
            device=device,
        )
        assert model._fused == [True, True, False], model._fused
        hist = model.fit(x, y, sample_weight=w, batch_size=4, verbose=0, validation_data=(x, y))
        got[device] = (model.get_weights(), hist.history)
    for i, (wc, wg) in enumerate(zip(got["cpu"][0], got["cuda"][0])):
        close(f"weight {i} after fit", wg, wc, GRAD)
    (hc, hg) = got["cpu"][1], got["cuda"][1]
    assert list(hc) == list(hg), (list(hc), list(hg))
    close("history", [v[0] for v in hg.values()], [v[0] for v in hc.values()], GRAD)


def check_fit_bn_dropout(rng):
    from edgemine.layers import BatchNormalization, Dense, Dropout

    x = rng.random((8, 5), dtype=np.float32)
    y = rng.integers(0, 2, (8, 1)).astype(np.float32)

    def build():
        return [
            Dense(4, activation="tanh", input_shape=(5,)),
            BatchNormalization(),
            Dropout(0.25),
            Dense(1, activation="sigmoid"),
        ]

    _fit_both(build, x, y, "binary_crossentropy", "rmsprop")


def _sequence_fit(build):
    from edgemine import layers

    rng = np.random.default_rng(1)
    x = rng.integers(0, 12, (8, 5)).astype(np.int32)
    x[:3, :2] = 0  # padding for mask_zero
    y = rng.integers(0, 3, (8, 1)).astype(np.int32)
    _fit_both(lambda: build(layers), x, y, "sparse_categorical_crossentropy", "adam")


def check_fit_lstm(rng):
    _sequence_fit(
        lambda L: [
            L.Embedding(12, 4, input_length=5, mask_zero=True),
            L.LSTM(3),
            L.Dense(3, activation="softmax"),
        ]
    )


def check_fit_stacked_lstm(rng):
    """The seed LSTM's layout: no mask, the second LSTM fed by the first's sequence."""
    _sequence_fit(
        lambda L: [
            L.Embedding(12, 4, input_length=5),
            L.LSTM(3, return_sequences=True),
            L.LSTM(3),
            L.Dense(4, activation="relu"),
            L.Dense(3, activation="softmax"),
        ]
    )


def check_fit_bidirectional(rng):
    _sequence_fit(
        lambda L: [
            L.Embedding(12, 4, input_length=5),
            L.Bidirectional(L.GRU(2, return_sequences=True)),
            L.Flatten(),
            L.Dense(3, activation="softmax"),
        ]
    )


def check_fit_conv_misc(rng):
    """Strided 'same' convolutions, BatchNormalization on images, average and global pooling,
    Reshape, a separate softmax Activation (the loss fuses it without taking it over), and SGD
    with Nesterov momentum."""
    from edgemine import layers as L
    from edgemine.optimizers import SGD
    from edgemine.utils import to_categorical

    x = rng.random((6, 7, 7, 2), dtype=np.float32)
    y = to_categorical(rng.integers(0, 3, 6), 3)

    def build():
        return [
            L.Conv2D(3, 3, strides=2, padding="same", activation="tanh", input_shape=(7, 7, 2)),
            L.BatchNormalization(),
            L.AveragePooling2D(padding="same"),
            L.Reshape((2, 2, 3)),
            L.Conv2D(4, 1, activation="relu"),
            L.GlobalMaxPooling2D(),
            L.Dense(3),
            L.Activation("softmax"),
        ]

    _fit_both(build, x, y, "categorical_crossentropy", lambda: SGD(0.05, 0.9, nesterov=True))


def check_fit_rnn_misc(rng):
    """SimpleRNN with input and recurrent dropout, a GRU over its sequence, global average
    pooling over time through Reshape, MSE and centered RMSprop."""
    from edgemine import layers as L
    from edgemine.optimizers import RMSprop

    x = rng.integers(0, 12, (8, 5)).astype(np.int32)
    y = rng.random((8, 2), dtype=np.float32)

    def build():
        return [
            L.Embedding(12, 3, input_length=5),
            L.SimpleRNN(3, return_sequences=True, dropout=0.2, recurrent_dropout=0.3),
            L.GRU(2, return_sequences=True),
            L.Reshape((5, 1, 2)),
            L.GlobalAveragePooling2D(),
            L.Dense(2),
        ]

    _fit_both(build, x, y, "mse", lambda: RMSprop(0.01, centered=True))


def check_fit_weighted_sequence(rng):
    """A softmax over (batch, time, classes) with per-step sparse labels and sample weights:
    the loss and gradient averaged over time, each sample's gradient scaled by its weight."""
    from edgemine import layers as L
    from edgemine.models import Sequential
    from edgemine.optimizers import SGD
    from edgemine.utils import set_random_seed

    x = rng.normal(size=(8, 4, 3)).astype(np.float32)
    y = rng.integers(0, 5, (8, 4)).astype(np.int32)
    w = rng.random(8).astype(np.float32) * 2
    weights, losses = {}, {}
    for device in ("cpu", "cuda"):
        set_random_seed(3)
        model = Sequential([L.Input((4, 3)), L.Dense(6, activation="tanh"), L.Dense(5, "softmax")])
        model.compile(
            SGD(0.1),
            "sparse_categorical_crossentropy",
            device=device,
            weighted_metrics=["accuracy"],
        )
        hist = model.fit(x, y, sample_weight=w, batch_size=4, epochs=2, verbose=0, shuffle=False)
        weights[device] = model.get_weights()
        losses[device] = hist.history["loss"] + hist.history["accuracy"]
    for i, (wc, wg) in enumerate(zip(weights["cpu"], weights["cuda"])):
        close(f"weight {i} after weighted fit", wg, wc, GRAD)
    close("weighted loss and accuracy history", losses["cuda"], losses["cpu"], GRAD)


# ----- availability -----
def availability() -> dict:
    from edgemine.backend import available_devices, cuda_unavailable_reason, get_ops
    from edgemine.models import Sequential

    out = {"reason": cuda_unavailable_reason(), "devices": available_devices()}
    for key, fn in (
        ("get_ops", lambda: get_ops("cuda")),
        ("compile", lambda: Sequential().compile(loss="mse", device="cuda")),
    ):
        try:
            fn()
            out[key] = "ok"
        except Exception as e:  # reported to the parent verbatim
            out[key] = f"{type(e).__name__}: {e}"
    return out


def _record_signatures() -> dict:
    """Record the argument types of every simulated kernel launch (for --compile-ptx)."""
    import numba
    from numba.cuda.simulator import kernel as sim_kernel

    seen: dict = {}
    original = sim_kernel.FakeCUDAKernel.__call__

    def typename(a):
        a = getattr(a, "_ary", a)
        t = numba.typeof(a)
        if isinstance(t, numba.types.Array):
            return ["array", str(a.dtype), t.ndim, t.layout]
        return ["scalar", str(t)]

    def call(self, *args):
        if not self._device:
            key = json.dumps([self.fn.__module__, self.fn.__name__, [typename(a) for a in args]])
            seen[key] = True
        return original(self, *args)

    sim_kernel.FakeCUDAKernel.__call__ = call
    return seen


def compile_ptx(path: str, cc: tuple[int, int] = (9, 0)) -> dict:
    """Compile every recorded kernel signature to PTX with the real CUDA target (numba-cuda and
    its NVVM, no GPU needed): catches typing errors that the simulator, running plain Python,
    cannot see. Returns {"compiled": n, "failures": [...]}."""
    import importlib

    import numba
    import numba.cuda.dispatcher as dispatcher
    from numba import cuda, types

    class _Device:  # device functions ask the current device for its compute capability
        compute_capability = cc

    dispatcher.get_current_device = lambda: _Device()

    def numba_type(t):
        if t[0] == "array":
            return types.Array(numba.from_dtype(np.dtype(t[1])), t[2], t[3])
        return getattr(types, {"bool": "boolean"}.get(t[1], t[1]))

    failures, count = [], 0
    for key in sorted(json.loads(Path(path).read_text())):
        module, name, argtypes = json.loads(key)
        fn = getattr(importlib.import_module(module), name).py_func
        sig = types.void(*[numba_type(t) for t in argtypes])
        try:
            cuda.compile_ptx(fn, sig, cc=cc)
            count += 1
        except Exception as e:  # reported to the parent
            failures.append(f"{module}.{name}{sig.args}: {type(e).__name__}: {e}"[:3000])
    return {"compiled": count, "failures": failures}


def main(argv: list[str]) -> None:
    if argv and argv[0] == "--availability":
        print(json.dumps(availability()))
        return
    if argv and argv[0] == "--compile-ptx":
        print(json.dumps(compile_ptx(argv[1])))
        return
    from numba import config

    record_to = None
    if argv and argv[0] == "--record":
        record_to, argv = argv[1], argv[2:]
    if config.ENABLE_CUDASIM:
        from strict_simulator import make_strict

        make_strict()
    seen = _record_signatures() if record_to else None
    if not argv or argv == ["all"]:
        names = [n for g in GROUPS.values() for n in g]
    elif argv[0] in GROUPS:
        names = GROUPS[argv[0]]
    else:
        names = argv
    results = {}
    for name in names:
        t0 = time.perf_counter()
        try:
            globals()[f"check_{name}"](np.random.default_rng(0))
            status, error = "pass", ""
        except Exception:
            status, error = "fail", traceback.format_exc(limit=6)
        results[name] = {
            "status": status,
            "error": error,
            "seconds": round(time.perf_counter() - t0, 2),
        }
        print(f"# {name}: {status} ({results[name]['seconds']} s)", file=sys.stderr)
    if record_to:
        Path(record_to).write_text(json.dumps(sorted(seen)))
    print(json.dumps(results))


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    main(sys.argv[1:])
