"""Fuzzing ``.edgemine`` loading with a seeded mutator: byte flips, truncation, huge declared
sizes, zip bombs, deep JSON, wrong field types, a big config.json, odd members and odd arrays.

Whatever the file, ``load_model`` either returns a model that predicts finite outputs or raises
``ModelFileError``; nothing else escapes. Hundreds of cases run in CI; the slow run takes
thousands and also checks that refusing any file under 10 MB costs under 1 s and 200 MB.
Case ``i`` is mutated by ``np.random.default_rng(i)``, so a failure names a reproducible case.
"""

from __future__ import annotations

import hashlib
import io
import json
import time
import tracemalloc
import zipfile

import numpy as np
import pytest
from test_resume import cnn as resume_cnn

from edgemine.layers import (
    LSTM,
    Bidirectional,
    Dense,
    Embedding,
    Flatten,
    Reshape,
)
from edgemine.models import Sequential, load_model
from edgemine.saving import ModelFileError
from edgemine.utils import set_random_seed

HOSTILE_VALUES = [
    None, True, False, 0, -1, 1, 3, 2**31, 2**40, 2**64, -(2**63), 10**400, 1e308, -1e-300,
    0.5, 1.0, float("nan"), float("inf"), "", "x", "relu", "../../etc/passwd", [], {}, [0],
    [1] * 9, [None], [-1, -1], {"class_name": "Dense", "config": {}}, {"a": [1, {"b": 2}]},
]  # fmt: skip
SIZE_FIELDS = ("units", "filters", "input_dim", "output_dim", "kernel_size", "input_shape")
HUGE = [10**8, 2**31 - 1, 2**40, 65536]


def _models() -> dict[str, Sequential]:
    set_random_seed(0)
    rng = np.random.default_rng(0)
    cnn = resume_cnn()  # Conv2D, BatchNormalization, pooling, Dropout, Dense; Adam
    cnn.fit(rng.random((8, 8, 8, 1), dtype=np.float32), np.arange(8) % 3, verbose=0)
    cnn.preprocessing = {"kind": "image", "height": 8, "width": 8, "channels": 1, "scale": 1.0}
    text = Sequential(
        [
            Embedding(40, 4, mask_zero=True, input_length=6),
            Bidirectional(LSTM(3, dropout=0.1, seed=2)),
            Dense(2, activation="softmax"),
        ]
    )
    text.compile({"class_name": "RMSprop", "centered": True}, "sparse_categorical_crossentropy")
    text.fit(rng.integers(0, 40, (8, 6)), np.arange(8) % 2, verbose=0)
    text.preprocessing = {"kind": "text", "num_words": 40, "maxlen": 6, "vocabulary": "a b c"}
    mlp = Sequential([Dense(6, input_shape=(4,)), Reshape((2, 3)), Flatten(), Dense(2)])
    mlp.compile({"class_name": "SGD", "momentum": 0.9}, "mse")
    mlp.fit(rng.random((8, 4), dtype=np.float32), rng.random((8, 2), dtype=np.float32), verbose=0)
    mlp.class_names = ["a", "b"]
    return {"cnn": cnn, "text": text, "mlp": mlp}


def _members(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return {i.filename: zf.read(i) for i in zf.infolist()}


def _zip(members: list[tuple[str, bytes]], fix_digests: bool) -> bytes:
    if fix_digests and "config.json" in dict(members):
        config = json.loads(dict(members)["config.json"])
        config["sha256"] = {
            n: hashlib.sha256(b).hexdigest() for n, b in members if n != "config.json"
        }
        members = [
            (n, json.dumps(config).encode() if n == "config.json" else b) for n, b in members
        ]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for name, blob in members:
            zf.writestr(name, blob)
    return buf.getvalue()


def _bomb(members: dict[str, bytes], victim: str, mib: int) -> bytes:
    """The file with ``victim`` replaced by ``mib`` MiB of zeros (a few KB compressed)."""
    buf = io.BytesIO()
    chunk = bytes(1 << 20)
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for name, blob in members.items():
            if name != victim:
                zf.writestr(name, blob)
                continue
            info = zipfile.ZipInfo(name)
            info.compress_type = zipfile.ZIP_DEFLATED
            with zf.open(info, "w", force_zip64=True) as f:
                for _ in range(mib):
                    f.write(chunk)
    return buf.getvalue()


@pytest.fixture(scope="module")
def corpus() -> dict:
    """The valid files, and zip bombs made once (making them is the slow part)."""
    files = {}
    for name, model in _models().items():
        buf = io.BytesIO()
        from edgemine.saving import model_to_bytes

        buf.write(model_to_bytes(model))
        files[name] = buf.getvalue()
    members = _members(files["cnn"])
    bombs = [_bomb(members, victim, 64) for victim in ("weights.npz", "optimizer.npz")]
    bombs.append(_bomb(members, "config.json", 64))
    big = [_big_config(files["mlp"], size) for size in ((4 << 20) + 1, 9 << 20)]
    return {"files": files, "bombs": bombs, "big_configs": big}


# ---------------------------------------------------------------- mutations


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, (*prefix, i))


def _set(config, path, value):
    node = config
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value


def _config_edit(rng, data: bytes, edit) -> bytes:
    members = _members(data)
    config = json.loads(members["config.json"])
    edit(config)
    members["config.json"] = json.dumps(config).encode()
    return _zip(list(members.items()), fix_digests=rng.random() < 0.9)


def flip_bytes(rng, data, corpus):
    blob = bytearray(data)
    for pos in rng.integers(0, len(blob), rng.integers(1, 9)):
        blob[pos] ^= int(rng.integers(1, 256))
    return bytes(blob)


def truncate(rng, data, corpus):
    return data[: int(rng.integers(0, len(data)))]


def wrong_field(rng, data, corpus):
    def edit(config):
        paths = [p for p in _paths(config) if p]
        path = paths[int(rng.integers(len(paths)))]
        if rng.random() < 0.15:
            node = config
            for key in path[:-1]:
                node = node[key]
            del node[path[-1]]
        else:
            _set(config, path, HOSTILE_VALUES[int(rng.integers(len(HOSTILE_VALUES)))])

    return _config_edit(rng, data, edit)


def huge_size(rng, data, corpus):
    def edit(config):
        paths = [p for p in _paths(config) if p and p[-1] in SIZE_FIELDS]
        path = paths[int(rng.integers(len(paths)))]
        huge = HUGE[int(rng.integers(len(HUGE)))]
        _set(config, path, [huge, huge] if path[-1] in ("kernel_size", "input_shape") else huge)

    return _config_edit(rng, data, edit)


def deep_json(rng, data, corpus):
    depth = int(rng.choice([33, 200, 5000, 200_000]))

    def edit(config):
        config["preprocessing"] = "@@DEEP@@"

    members = _members(_config_edit(rng, data, edit))
    text = members["config.json"].decode()
    members["config.json"] = text.replace('"@@DEEP@@"', "[" * depth + "]" * depth).encode()
    return _zip(list(members.items()), fix_digests=False)


def _big_config(data: bytes, size: int) -> bytes:
    members = _members(data)
    config = json.loads(members["config.json"])
    config["preprocessing"] = {"vocabulary": "w" * size}
    members["config.json"] = json.dumps(config).encode()
    return _zip(list(members.items()), fix_digests=True)


def big_config(rng, data, corpus):
    """A config.json over the 4 MiB cap (made once per size: compressing it is slow)."""
    blob = corpus["big_configs"][int(rng.integers(len(corpus["big_configs"])))]
    return flip_bytes(rng, blob, corpus) if rng.random() < 0.2 else blob


def zip_bomb(rng, data, corpus):
    bomb = corpus["bombs"][int(rng.integers(len(corpus["bombs"])))]
    return flip_bytes(rng, bomb, corpus) if rng.random() < 0.2 else bomb


def odd_members(rng, data, corpus):
    members = list(_members(data).items())
    kind = int(rng.integers(5))
    if kind == 0:
        members.append(("payload.pkl", b"cos\nsystem\n(S'echo hi'\ntR."))
    elif kind == 1:
        members.append(members[int(rng.integers(len(members)))])  # a duplicate entry (warns)
    elif kind == 2:
        del members[int(rng.integers(len(members)))]
    elif kind == 3:
        i = int(rng.integers(len(members)))
        members[i] = ("../" + members[i][0], members[i][1])
    else:
        members.reverse()
    return _zip(members, fix_digests=rng.random() < 0.5)


def odd_arrays(rng, data, corpus):
    members = _members(data)
    name = "optimizer.npz" if "optimizer.npz" in members and rng.random() < 0.4 else "weights.npz"
    with np.load(io.BytesIO(members[name])) as npz:
        arrays = {k: npz[k] for k in npz.files}
    key = list(arrays)[int(rng.integers(len(arrays)))]
    arr = arrays[key]
    kind = int(rng.integers(8))
    if kind == 0:
        arrays[key] = np.full(arr.shape, rng.choice([np.nan, np.inf, -1.0]), arr.dtype)
    elif kind == 1:
        arrays[key] = arr.astype(rng.choice([np.float64, np.float16, np.int32]))
    elif kind == 2:
        arrays[key] = arr.reshape(-1)[:-1] if arr.size > 1 else np.zeros(5, arr.dtype)
    elif kind == 3:
        arrays[key] = np.array([{"pickle": 1}], dtype=object)
    elif kind == 4:
        arrays[key + "x"] = arrays.pop(key)
    elif kind == 5:
        arrays[key] = np.asfortranarray(np.broadcast_to(arr, (2, *arr.shape)))
    elif kind == 6:
        arrays["iterations"] = np.array(int(rng.choice([-3, 2**62, 0])), np.int64)
    else:
        arrays[key] = np.zeros((1, 2**14), np.float32)  # another shape
    buf = io.BytesIO()
    np.savez(buf, **arrays, allow_pickle=True) if kind == 3 else np.savez(buf, **arrays)
    members[name] = buf.getvalue()
    return _zip(list(members.items()), fix_digests=True)


def inner_flips(rng, data, corpus):
    """Damage inside an .npz with the outer digests recomputed, so the npz parser meets it."""
    members = _members(data)
    name = (
        "weights.npz" if rng.random() < 0.6 or "optimizer.npz" not in members else "optimizer.npz"
    )
    members[name] = flip_bytes(rng, members[name], corpus)
    return _zip(list(members.items()), fix_digests=True)


MUTATORS = [
    flip_bytes, truncate, wrong_field, huge_size, deep_json, big_config, zip_bomb, odd_members,
    odd_arrays, inner_flips,
]  # fmt: skip


def _case(i: int, corpus) -> tuple[str, bytes]:
    rng = np.random.default_rng(i)
    base = list(corpus["files"].values())[i % len(corpus["files"])]
    mutate = MUTATORS[(i // len(corpus["files"])) % len(MUTATORS)]
    return mutate.__name__, mutate(rng, base, corpus)


def _probe(model: Sequential) -> None:
    """A loaded model must work: finite outputs for a valid input."""
    shape = [d or 4 for d in model.input_shape]
    if model.layers[0].input_dtype == "int":
        x = np.ones((2, *shape), np.int32)
    else:
        x = np.full((2, *shape), 0.5, np.float32)
    assert np.isfinite(model.predict(x)).all()


def _load_one(tmp_path, i: int, kind: str, blob: bytes) -> str:
    """'refused' or 'loaded' (a model that works); anything else raises."""
    path = tmp_path / f"case{i}.edgemine"
    path.write_bytes(blob)
    try:
        model = load_model(path)
    except ModelFileError as e:
        assert str(e).startswith(str(path)), (i, kind, str(e))
        return "refused"
    finally:
        path.unlink()
    _probe(model)
    return "loaded"


@pytest.mark.filterwarnings("ignore:Duplicate name")
def test_fuzzed_files_give_a_model_file_error_or_a_working_model(tmp_path, corpus):
    outcomes: dict[str, set[str]] = {}
    for i in range(300):
        kind, blob = _case(i, corpus)
        try:
            outcome = _load_one(tmp_path, i, kind, blob)
        except Exception as e:  # anything but ModelFileError, or a loaded model that fails
            pytest.fail(f"case {i} ({kind}): {type(e).__name__}: {e}"[:500])
        outcomes.setdefault(kind, set()).add(outcome)
    assert set(outcomes) == {m.__name__ for m in MUTATORS}
    assert all("refused" in o for o in outcomes.values())  # every kind was noticed


def test_the_valid_files_load(corpus, tmp_path):
    for name, blob in corpus["files"].items():
        path = tmp_path / f"{name}.edgemine"
        path.write_bytes(blob)
        _probe(load_model(path))


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:Duplicate name")
def test_thousands_of_fuzzed_files_are_cheap_to_refuse(tmp_path, corpus):
    """5,000 cases; each refusal of a file under 10 MB within 1 s and 200 MB (peak traced
    allocation, numpy's included)."""
    worst_s, worst_bytes, refused = 0.0, 0, 0
    for i in range(5000):
        kind, blob = _case(i, corpus)
        t0 = time.perf_counter()
        try:
            outcome = _load_one(tmp_path, i, kind, blob)
        except Exception as e:
            pytest.fail(f"case {i} ({kind}): {type(e).__name__}: {e}"[:500])
        seconds = time.perf_counter() - t0
        if outcome != "refused" or len(blob) >= 10 << 20:
            continue
        refused += 1
        tracemalloc.start()
        try:
            _load_one(tmp_path, i, kind, blob)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert seconds < 1.0, (i, kind, seconds)
        assert peak < 200 << 20, (i, kind, peak)
        worst_s, worst_bytes = max(worst_s, seconds), max(worst_bytes, peak)
    print(f"{refused} refused; slowest {worst_s:.3f} s, largest peak {worst_bytes / 2**20:.1f} MiB")
