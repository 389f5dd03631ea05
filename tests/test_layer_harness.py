"""Every registered layer through the layer harness (tests/layer_harness.py), and the meta-test
that fails when a registered layer has no harness case, no converter or no CUDA run."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import layer_harness as H
import pytest

from edgemine.layers import Layer, register
from edgemine.layers.base import LAYER_REGISTRY


def _params(check: str):
    return [pytest.param(name, case, id=f"{name}[{case.id}]") for name, case in H.all_cases(check)]


def test_every_registered_layer_is_covered():
    assert H.coverage_problems() == []


def test_a_layer_that_declares_absorbing_an_activation_implements_it():
    """The model hands an activation's backward to a layer that declares it in
    ``absorbs_activation_below``, so each such layer overrides ``backward_through_activation``."""
    declaring = {n: c for n, c in LAYER_REGISTRY.items() if c.absorbs_activation_below}
    assert declaring  # MaxPooling2D absorbs a ReLU
    for name, cls in declaring.items():
        assert cls.backward_through_activation is not Layer.backward_through_activation, name


def test_a_new_layer_without_harness_converter_or_cuda_fails_the_meta_test():
    """A layer registered without a harness entry, converter or CUDA case is reported by name;
    an EXEMPT entry with a reason silences each item, one without a reason does not."""

    @register
    class HarnessDummy(Layer):
        def forward(self, x, training=False):
            return x

        def backward(self, dy):
            return dy

    try:
        problems = H.coverage_problems()
        assert problems == [
            "HarnessDummy: no harness configuration in tests/layer_harness.py CASES",
            "HarnessDummy: no ONNX converter (edgemine/onnx/converters/)",
            "HarnessDummy: no case runs on the CUDA backend",
        ]
        H.EXEMPT["HarnessDummy"] = {"harness": "a test double", "converter": "", "cuda": "no ops"}
        assert H.coverage_problems() == [
            "HarnessDummy: EXEMPT['converter'] needs a known key and a reason"
        ]
    finally:
        del LAYER_REGISTRY["HarnessDummy"]
        H.EXEMPT.pop("HarnessDummy", None)
    assert H.coverage_problems() == []


@pytest.mark.parametrize("name,case", _params("config"))
def test_config_round_trip(name, case):
    H.check_config(name, case)


@pytest.mark.parametrize("name,case", _params("save_load"))
def test_save_load_round_trip(name, case, tmp_path):
    H.check_save_load(name, case, tmp_path)


@pytest.mark.parametrize("name,case", _params("gradients"))
def test_gradients_by_central_differences(name, case):
    H.check_gradients(name, case)


@pytest.mark.parametrize("name,case", _params("float32"))
def test_float32_matches_float64(name, case):
    H.check_float32(name, case)


@pytest.mark.parametrize("name,case", _params("masking"))
def test_masking_skips_masked_steps(name, case):
    H.check_masking(name, case)


@pytest.mark.parametrize("name,case", _params("onnx"))
def test_onnx_export_parity(name, case):
    H.check_onnx(name, case)


@pytest.mark.parametrize("shard", range(H.CUDA_SHARDS))
def test_cuda_matches_cpu_under_the_simulator(shard):
    """The CUDA cases in subprocesses (the simulator must not leak into this process)."""
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    env["NUMBA_ENABLE_CUDASIM"] = "1"
    env["EDGEMINE_CUDA_POISON"] = "1"  # arena arrays are NaN once their batch ends
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(H.HERE.parent), env.get("PYTHONPATH")]))
    proc = subprocess.run(
        [sys.executable, str(H.HERE / "layer_harness.py"), "cuda", str(shard)],
        env=env,
        cwd=str(H.HERE.parent),
        capture_output=True,
        text=True,
        timeout=600,
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    assert proc.returncode == 0 and lines, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = json.loads(lines[-1])
    assert set(results) == {f"{n}[{c.id}]" for n, c in H.cuda_shard(shard)}
    failed = {k: v["error"] for k, v in results.items() if v["status"] != "pass"}
    assert not failed, "\n\n".join(f"{k}: {v}" for k, v in failed.items())
