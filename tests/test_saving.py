"""The .edgemine loader refuses hostile files with a ModelFileError that names the file and the
field, before any large allocation; saves clean up after interrupted saves."""

from __future__ import annotations

import doctest
import hashlib
import importlib
import io
import json
import os
import signal
import subprocess
import sys
import time
import tracemalloc
import zipfile

import numpy as np
import pytest

from edgemine.layers import LSTM, BatchNormalization, Conv2D, Dense, Dropout, Embedding, Flatten
from edgemine.models import Sequential, load_model
from edgemine.saving import ModelFileError, remove_leftover_temp_files
from edgemine.utils import get_rng, set_random_seed, to_categorical


def _cnn() -> Sequential:
    set_random_seed(0)
    model = Sequential(
        [
            Conv2D(3, 3, activation="relu", input_shape=(6, 6, 1)),
            BatchNormalization(),
            Flatten(),
            Dropout(0.2),
            Dense(4, activation="softmax"),
        ]
    )
    model.compile("adam", "categorical_crossentropy", metrics=["accuracy"])
    x = np.random.default_rng(0).random((16, 6, 6, 1), dtype=np.float32)
    model.fit(x, to_categorical(np.arange(16) % 4, 4), epochs=1, verbose=0)
    return model


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    path = tmp_path_factory.mktemp("good") / "good.edgemine"
    _cnn().save(path)
    return path.read_bytes()


def members_of(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return {n: zf.read(n) for n in zf.namelist()}


def rezip(members: dict[str, bytes], digests: bool = True) -> bytes:
    """A zip of ``members``; with ``digests`` config.json's sha256 entries are recomputed, so
    that the file reaches the checks behind them."""
    members = dict(members)
    if digests:
        config = json.loads(members["config.json"])
        config["sha256"] = {
            n: hashlib.sha256(b).hexdigest() for n, b in members.items() if n != "config.json"
        }
        members["config.json"] = json.dumps(config).encode()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, blob in members.items():
            zf.writestr(name, blob)
    return buf.getvalue()


def edit_config(data: bytes, edit) -> bytes:
    members = members_of(data)
    config = json.loads(members["config.json"])
    edit(config)
    members["config.json"] = json.dumps(config).encode()
    return rezip(members)


def refuse(tmp_path, blob: bytes, match: str) -> str:
    path = tmp_path / "bad.edgemine"
    path.write_bytes(blob)
    with pytest.raises(ModelFileError, match=match) as info:
        load_model(path)
    message = str(info.value)
    assert message.startswith(str(path)), message  # every refusal names the file
    return message


def layer_config(config, i):
    return config["model"]["config"]["layers"][i]["config"]


@pytest.mark.parametrize(
    "module",
    [
        "edgemine.saving",
        "edgemine.saving.loader",
        "edgemine.saving.files",
        "edgemine.saving.writer",
    ],
)
def test_docstring_examples(module):
    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


def test_loading_draws_no_random_numbers(tmp_path, good):
    path = tmp_path / "m.edgemine"
    path.write_bytes(good)
    set_random_seed(3)
    before = get_rng().bit_generator.state
    model = load_model(path)
    assert get_rng().bit_generator.state == before
    reference = _cnn()
    for a, b in zip(model.get_weights(), reference.get_weights()):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("units", [100_000_000, 2**40])
def test_huge_declared_sizes_are_refused_before_allocating(tmp_path, good, units):
    def edit(config):
        layer_config(config, 4)["units"] = units

    tracemalloc.start()
    try:
        message = refuse(tmp_path, edit_config(good, edit), "layers|weights.npz")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20 << 20, peak  # the old loader built 3.6 GB of random weights first
    assert "units" in message or "needs float32" in message, message


def test_zip_bomb_in_weights_is_refused_before_decompressing(tmp_path, good):
    members = members_of(good)
    chunk = bytes(1 << 20)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("config.json", members["config.json"])
        zf.writestr("optimizer.npz", members["optimizer.npz"])
        # a member whose header declares its true 256 MiB, stored as 256 KB of deflate
        info = zipfile.ZipInfo("weights.npz")
        info.compress_type = zipfile.ZIP_DEFLATED
        with zf.open(info, "w", force_zip64=True) as f:
            for _ in range(256):
                f.write(chunk)
    assert len(buf.getvalue()) < 2 << 20
    tracemalloc.start()
    try:
        message = refuse(tmp_path, buf.getvalue(), "weights.npz declares 268,435,456 bytes")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20 << 20 and "zip bomb" in message


def test_big_config_json_is_refused_before_parsing(tmp_path, good):
    members = members_of(good)
    config = json.loads(members["config.json"])
    config["preprocessing"] = {"junk": [[]] * 3_000_000}  # 12 MB of JSON, ~200 MB of lists
    members["config.json"] = json.dumps(config).encode()
    refuse(tmp_path, rezip(members, digests=False), "config.json declares")


@pytest.mark.parametrize("depth", [40, 100_000])
def test_deep_json_is_refused(tmp_path, good, depth):
    members = members_of(good)
    text = members["config.json"].decode()
    members["config.json"] = (text[:-1] + ', "x": ' + "[" * depth + "]" * depth + "}").encode()
    refuse(tmp_path, rezip(members, digests=False), "nests")


def test_a_flipped_byte_in_compressed_data_is_a_model_file_error(tmp_path, good):
    """One flipped byte anywhere gives a ModelFileError (zlib.error leaked before)."""
    kinds = set()
    for offset in range(40, len(good) - 30, max(1, len(good) // 300)):
        blob = bytearray(good)
        blob[offset] ^= 0x5A
        path = tmp_path / "flip.edgemine"
        path.write_bytes(bytes(blob))
        try:
            load_model(path)
        except ModelFileError as e:
            assert str(e).startswith(str(path))
            kinds.add(str(e).split(": ")[1][:20])
    assert len(kinds) > 2  # several different stages noticed the damage


@pytest.mark.parametrize(
    "layer,field,value,match",
    [
        (4, "units", "4", r"layers\[4\]\.config\.units must be an integer"),
        (4, "units", 4.0, r"layers\[4\]\.config\.units must be an integer"),
        (4, "units", True, r"layers\[4\]\.config\.units must be an integer"),
        (4, "units", 2**40, r"layers\[4\]\.config\.units must be an integer"),
        (4, "activation", ["relu"], r"config\.activation must be a short string"),
        (4, "activation", "os.system", "unknown activation"),
        (4, "use_bias", "yes", r"config\.use_bias must be true or false"),
        (3, "rate", 1.5, r"config\.rate must be a number in \[0.0, 1.0\)"),
        (3, "rate", None, r"config\.rate must be a number"),
        (1, "epsilon", -1.0, r"config\.epsilon must be a finite positive number"),
        (1, "epsilon", 0, r"config\.epsilon must be a finite positive number"),
        (1, "momentum", 7, r"config\.momentum must be a number"),
        (0, "kernel_size", [0, 3], r"config\.kernel_size\[0\] must be an integer"),
        (0, "kernel_size", {"a": 1}, r"config\.kernel_size must be a list"),
        (0, "strides", [1, 1, 1, 1, 1, 1, 1, 1, 1], r"config\.strides must be a list of 1-8"),
        (0, "input_shape", [6, 6, -1], r"input_shape\[2\] must be an integer"),
        (0, "__class__", "x", "unknown field '__class__'"),
        (0, "padding", "circular", "padding must be 'valid' or 'same'"),
    ],
)
def test_wrong_field_types_and_ranges_name_the_field(tmp_path, good, layer, field, value, match):
    def edit(config):
        layer_config(config, layer)[field] = value

    refuse(tmp_path, edit_config(good, edit), match)


def test_reshape_target_of_zero_is_refused(tmp_path):
    from edgemine.layers import Reshape

    model = Sequential([Dense(4, input_shape=(3,)), Reshape((2, 2))])
    path = tmp_path / "r.edgemine"
    model.save(path)

    def edit(config):
        layer_config(config, 1)["target_shape"] = [0, -1]

    refuse(tmp_path, edit_config(path.read_bytes(), edit), r"target_shape\[0\] must be an integer")


@pytest.mark.parametrize(
    "where,value,match",
    [
        (("model", "config", "layers", 1, "config", "epsilon"), float("nan"), "epsilon is nan"),
        (("compile", "optimizer", "epsilon"), float("nan"), "epsilon is nan"),
        (("compile", "optimizer", "epsilon"), 0.0, "epsilon must be a finite positive"),
        (("compile", "optimizer", "beta_1"), "0.9", "beta_1 must be a finite number"),
        (("compile", "optimizer", "learning_rate"), float("inf"), "learning_rate is inf"),
        (("compile", "optimizer", "class_name"), "Evil", "unknown optimizer class"),
        (("compile", "loss"), {"name": "mse", "from_logits": "no"}, "from_logits"),
        (("compile", "metrics"), "accuracy", "metrics must be a list"),
        (("training", "epoch"), -1, r"training\.epoch must be an integer"),
        (("training", "epoch"), 1.5, r"training\.epoch must be an integer"),
        (("training", "rng", "state", "inc"), -5, r"training\.rng: state\.inc"),
        (("training", "rng", "bit_generator"), "MT19937", r"training\.rng: bit_generator"),
        (("format_version",), True, "format version True"),
        (("class_names",), "abc", "class_names must be a list"),
    ],
)
def test_values_that_would_break_later_are_refused(tmp_path, good, where, value, match):
    def edit(config):
        node = config
        for key in where[:-1]:
            node = node[key]
        node[where[-1]] = value

    refuse(tmp_path, edit_config(good, edit), match)


def _edit_arrays(data: bytes, member: str, edit) -> bytes:
    members = members_of(data)
    with np.load(io.BytesIO(members[member])) as npz:
        arrays = {k: npz[k] for k in npz.files}
    edit(arrays)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    members[member] = buf.getvalue()
    return rezip(members)


@pytest.mark.parametrize(
    "member,key,value,match",
    [
        ("weights.npz", "001/moving_variance", -1.0, "moving_variance holds negative values"),
        ("weights.npz", "004/kernel", np.nan, "weight 004/kernel holds NaN"),
        ("optimizer.npz", "0/m", np.nan, "slot 0/m holds NaN"),
        ("optimizer.npz", "0/v", -1.0, "slot 0/v holds negative values"),
        ("optimizer.npz", "iterations", -3, "iterations is -3"),
    ],
)
def test_bad_stored_values_are_refused(tmp_path, good, member, key, value, match):
    def edit(arrays):
        arr = arrays[key].copy()
        arr.reshape(-1)[0] = value
        arrays[key] = arr

    refuse(tmp_path, _edit_arrays(good, member, edit), match)


@pytest.mark.parametrize(
    "edit,match",
    [
        (lambda a: a.update({"004/kernel": a["004/kernel"].astype(np.float64)}), "declares 1,664"),
        (lambda a: a.update({"004/kernel": np.zeros((24, 4))}), r"stored as float64 \(24, 4\)"),
        (lambda a: a.update({"004/kernel": a["004/kernel"][:-1]}), r"stored as float32 \(47, 4\)"),
        (lambda a: a.update({"004/kernel": np.asfortranarray(a["004/kernel"])}), "Fortran order"),
        (lambda a: a.pop("004/bias"), "do not match the model"),
        (lambda a: a.update({"extra": np.zeros(3, np.float32)}), "more than the 8 expected"),
    ],
)
def test_arrays_must_match_the_architecture(tmp_path, good, edit, match):
    refuse(tmp_path, _edit_arrays(good, "weights.npz", edit), match)


def test_malformed_digests_are_refused(tmp_path, good):
    members = members_of(good)
    config = json.loads(members["config.json"])
    config["sha256"]["weights.npz"] = 5
    members["config.json"] = json.dumps(config).encode()
    refuse(tmp_path, rezip(members, digests=False), "sha256.weights.npz is missing or malformed")


def test_compile_false_still_checks_and_skips_the_optimizer(tmp_path, good):
    path = tmp_path / "m.edgemine"
    path.write_bytes(good)
    model = load_model(path, compile=False)
    assert model.optimizer is None and model.epochs_trained == 1


def test_digests_are_described_as_corruption_checks(tmp_path, good):
    members = members_of(good)
    blob = bytearray(members["weights.npz"])
    blob[-100] ^= 0xFF
    members["weights.npz"] = bytes(blob)
    message = refuse(tmp_path, rezip(members, digests=False), "sha256")
    assert "corrupted" in message and "tamper" not in message
    assert "not a signature" in ModelFileError.__doc__


def test_save_refuses_what_loading_would_refuse(tmp_path):
    model = Sequential([Dense(2, input_shape=(3,))])
    model.preprocessing = {"scale": float("nan")}
    with pytest.raises(ValueError, match="NaN or infinity"):
        model.save(tmp_path / "m.edgemine")
    model.preprocessing = {"vocabulary": "w" * (5 << 20)}
    with pytest.raises(ValueError, match="config.json would take"):
        model.save(tmp_path / "m.edgemine")
    assert not list(tmp_path.iterdir())


def test_text_model_with_seeded_layers_round_trips(tmp_path):
    set_random_seed(1)
    model = Sequential(
        [
            Embedding(20, 4, mask_zero=True, input_length=5),
            LSTM(3, dropout=0.2, seed=4),
            Dropout(0.3, seed=9),
            Dense(2, activation="softmax"),
        ]
    )
    model.compile("rmsprop", "sparse_categorical_crossentropy")
    x = np.random.default_rng(0).integers(0, 20, (8, 5))
    model.fit(x, np.arange(8) % 2, epochs=1, verbose=0)
    path = tmp_path / "t.edgemine"
    model.save(path)
    loaded = load_model(path)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    assert loaded.layers[2]._rng.bit_generator.state == model.layers[2]._rng.bit_generator.state
    assert loaded.rng.bit_generator.state == model.rng.bit_generator.state


# ---------------------------------------------------------------- leftover temporary files


def test_saves_remove_leftovers_of_interrupted_saves_only(tmp_path):
    target = tmp_path / "m.edgemine"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    dead_pid = int(dead.stdout)
    leftovers = [
        tmp_path / f".m.edgemine.{dead_pid}.abcd1234.tmp",  # its writer is gone
        tmp_path / ".m.edgemine.old_name.tmp",  # edgemine 0.1.0's naming, an hour old
    ]
    keep = [
        tmp_path / f".m.edgemine.{os.getppid()}.abcd1234.tmp",  # a save in progress
        tmp_path / ".m.edgemine.fresh123.tmp",  # old naming, but recent: maybe in progress
        tmp_path / f".other.edgemine.{dead_pid}.abcd1234.tmp",  # another target's
        tmp_path / ".m.edgemine.notes",  # not a temporary file name
        tmp_path / f".m.edgemine.{dead_pid}.ABCD1234.tmp",  # mkstemp never writes capitals
    ]
    for p in leftovers + keep:
        p.write_bytes(b"partial")
    hour_ago = time.time() - 7200
    os.utime(leftovers[1], (hour_ago, hour_ago))
    Sequential([Dense(2, input_shape=(3,))]).save(target)
    assert not any(p.exists() for p in leftovers)
    assert all(p.exists() for p in keep)
    assert load_model(target).count_params() == 8


def test_a_save_killed_before_its_rename_is_cleaned_up_by_the_next(tmp_path):
    """A process killed (SIGKILL) between writing its temporary file and renaming it leaves the
    file behind; the next save of the same target removes it and writes the target."""
    target = tmp_path / "ckpt.edgemine"
    script = f"""
import os, sys, time
from edgemine.layers import Dense
from edgemine.models import Sequential
os.replace = lambda *a: (print("written", flush=True), time.sleep(600))
Sequential([Dense(2, input_shape=(3,))]).save({str(target)!r})
"""
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "written"
        temps = [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
        assert len(temps) == 1 and not target.exists()
        assert remove_leftover_temp_files(target) == []  # its writer still runs: not touched
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    Sequential([Dense(2, input_shape=(3,))]).save(target)
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.edgemine"]


@pytest.mark.slow
def test_random_kills_during_saves_lose_nothing_and_leave_nothing(tmp_path):
    """kill -9 at random moments of a process that saves in a loop: the target always loads,
    and one more save leaves no temporary file behind."""
    target = tmp_path / "loop.edgemine"
    script = f"""
import numpy as np
from edgemine.layers import Dense
from edgemine.models import Sequential
model = Sequential([Dense(512, input_shape=(512,)), Dense(2)])
print("ready", flush=True)
while True:
    model.save({str(target)!r})
"""
    rng = np.random.default_rng(0)
    left = 0
    for _ in range(40):
        proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(float(rng.uniform(0.0, 0.3)))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        temps = [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
        assert len(temps) <= 1  # each save removed the one its killed predecessor left
        left += len(temps)
        if target.exists():
            assert load_model(target).count_params() == 512 * 512 + 512 + 512 * 2 + 2
    assert left > 0  # some kills did land inside a save
    Sequential([Dense(2, input_shape=(3,))]).save(target)
    assert [p.name for p in tmp_path.iterdir()] == ["loop.edgemine"]


def test_loading_and_predicting_imports_only_what_it_uses(tmp_path):
    """A program that loads a model and predicts (issue 13's warm start) imports neither the
    exporter's libraries (onnx, onnxruntime) nor the CLI's (click) nor h5py (Keras files)."""
    model = Sequential([Conv2D(2, 3, activation="relu", input_shape=(6, 6, 1)), Flatten()])
    model.add(Dense(3, activation="softmax"))
    model.save(tmp_path / "m.edgemine")
    code = (
        "import sys\nimport numpy as np\nfrom edgemine.models import load_model\n"
        f"m = load_model({str(tmp_path / 'm.edgemine')!r})\n"
        "print(m.predict(np.zeros((1, 6, 6, 1), np.float32), verbose=0).shape)\n"
        "heavy = ('onnx', 'onnxruntime', 'click', 'h5py', 'PIL', 'edgemine.cli', 'edgemine.onnx')\n"
        "print('IMPORTED', [m for m in heavy if m in sys.modules])\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert "(1, 3)" in res.stdout and "IMPORTED []" in res.stdout, res.stdout
