"""Bundles that fine-tune on the device (``edgemine bundle --engine``): finetune.py as a
subprocess, from another folder, on PNG class folders and .npz files; the tuned model must load,
differ from the original, be repeatable with a seed, and give run.py (onnxruntime, re-exported
model.onnx) the engine's answers; Numba's cache must make the second run compile nothing."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from test_bundle import png_bytes

from edgemine import layers
from edgemine.engine_bundle import ENGINE_BUNDLE_FILES, write_engine_bundle
from edgemine.models import Sequential, load_model
from edgemine.utils import set_random_seed, to_categorical

CLASSES = ["cat", "dog", "owl"]
SIZE = 12
PRE = {"kind": "image", "height": SIZE, "width": SIZE, "channels": 1, "scale": 1 / 255}


def _tiny_cnn(path: Path) -> Path:
    """A small CNN trained for two steps: fast to compile and to train."""
    set_random_seed(0)
    model = Sequential(
        [
            layers.Conv2D(4, 3, activation="relu", input_shape=(SIZE, SIZE, 1)),
            layers.MaxPooling2D(2),
            layers.Flatten(),
            layers.Dense(len(CLASSES), activation="softmax"),
        ]
    )
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    x = np.random.default_rng(0).random((16, SIZE, SIZE, 1)).astype(np.float32)
    model.fit(x, to_categorical(np.arange(16) % 3, 3), batch_size=8, epochs=1, verbose=0)
    model.class_names = list(CLASSES)
    model.preprocessing = dict(PRE)
    model.save(path)
    return path


def _images(n: int, seed: int) -> np.ndarray:
    """uint8 (n, SIZE, SIZE) images whose class shows in the brightness of a quarter."""
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 120, size=(n, SIZE, SIZE), dtype=np.uint8)
    for i in range(n):
        k = i % 3
        img[i, : SIZE // 2 * (k != 2) + SIZE // 2, k * 4 : k * 4 + 4] += 120
    return img


def _class_folders(root: Path, images: np.ndarray) -> Path:
    for i, img in enumerate(images):
        folder = root / CLASSES[i % 3]
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{i:03d}.png").write_bytes(png_bytes(img))
    return root


def _env(**extra) -> dict:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("PYTHON") and k not in ("NUMBA_CACHE_DIR", "NUMBA_DEBUG_CACHE")
    }
    env.update(extra)
    return env


def _script(bundle, name, *args, cwd, **env):
    return subprocess.run(
        [sys.executable, str(Path(bundle) / name), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=600,
        env=_env(**env),
        cwd=str(cwd),
    )


def _refused(res, *words, code=2):
    assert res.returncode == code, (res.returncode, res.stdout, res.stderr)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    for w in words:
        assert w in lines[0], lines[0]


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    d = tmp_path_factory.mktemp("engine_bundle")
    model = _tiny_cnn(d / "tiny.edgemine")
    images = _images(12, seed=1)
    elsewhere = d / "elsewhere"  # finetune.py and run.py must not need the bundle as cwd
    elsewhere.mkdir()
    return {
        "dir": d,
        "model": model,
        "bundle": write_engine_bundle(model, d / "bundle", target="rpi"),
        "images": images,
        "folders": _class_folders(d / "new", images),
        "elsewhere": elsewhere,
    }


@pytest.fixture(scope="module")
def tuned(work):
    """The bundle after two finetune.py runs (the first fills Numba's cache, the second loads
    it): the model after the first run, the reports of both and the second run's output."""
    b = work["dir"] / "tuned"
    shutil.copytree(work["bundle"], b)
    args = (work["folders"], "--epochs", "2", "--batch-size", "4", "--export-onnx")
    first = _script(b, "finetune.py", *args, "--json", cwd=work["elsewhere"])
    assert first.returncode == 0, first.stderr
    after_first = work["dir"] / "after_first.edgemine"
    shutil.copyfile(b / "model.edgemine", after_first)
    second = _script(b, "finetune.py", *args, cwd=work["elsewhere"], NUMBA_DEBUG_CACHE="1")
    assert second.returncode == 0, second.stderr
    return {
        "bundle": b,
        "report": json.loads(first.stdout),
        "after_first": after_first,
        "second": second,
    }


# --------------------------------------------------------------------------------------------
# the folder
# --------------------------------------------------------------------------------------------


def test_engine_bundle_files(work):
    b = work["bundle"]
    files = sorted(p.name for p in b.iterdir() if p.name != ".numba_cache")  # runs make it
    assert files == sorted(ENGINE_BUNDLE_FILES)
    assert (b / "model.edgemine").read_bytes() == work["model"].read_bytes()
    run_req = [
        line for line in (b / "requirements.txt").read_text().splitlines() if line[:1].isalpha()
    ]
    assert [r.split(">")[0] for r in run_req] == [
        "pillow",
        "numpy",
        "onnxruntime",
    ]  # run.py: no edgemine
    assert "\nedgemine==0.1.0\n" in (b / "requirements-finetune.txt").read_text()
    readme = (b / "README.md").read_text()
    assert "finetune.py" in readme and ".numba_cache" in readme and "240 s" in readme
    spec = json.loads((b / "preprocessing.json").read_text())
    assert spec["bundle"]["engine"]["model"] == "model.edgemine"
    assert json.loads((b / "labels.json").read_text()) == CLASSES


def test_cli_bundle_engine(work, tmp_path):
    from edgemine.cli.deploy import bundle

    out = tmp_path / "cli"
    res = CliRunner().invoke(bundle, [str(work["model"]), "-o", str(out), "--engine"])
    assert res.exit_code == 0, res.output
    assert "finetune.py" in res.output
    assert sorted(p.name for p in out.iterdir()) == sorted(ENGINE_BUNDLE_FILES)
    res = CliRunner().invoke(bundle, [str(work["model"]), "-o", str(out), "--engine", "--int8"])
    assert res.exit_code == 2 and "do not mix" in res.output
    onnx_file = work["bundle"] / "model.onnx"
    res = CliRunner().invoke(bundle, [str(onnx_file), "-o", str(tmp_path / "x"), "--engine"])
    assert res.exit_code == 2 and ".edgemine" in res.output


def test_write_engine_bundle_refuses_non_classifiers(tmp_path):
    model = Sequential([layers.Dense(1, input_shape=(4,))])
    model.save(tmp_path / "reg.edgemine")
    with pytest.raises(ValueError, match="one output per class"):
        write_engine_bundle(tmp_path / "reg.edgemine", tmp_path / "b")
    onnx_file = tmp_path / "m.onnx"
    onnx_file.write_bytes(b"not used")
    with pytest.raises(ValueError, match=r"\.edgemine"):
        write_engine_bundle(onnx_file, tmp_path / "c")


# --------------------------------------------------------------------------------------------
# fine-tuning
# --------------------------------------------------------------------------------------------


def test_finetune_changes_weights_and_saves_a_loadable_model(work, tuned):
    report = tuned["report"]
    assert report["examples"] == 12 and report["per_class"] == {"cat": 4, "dog": 4, "owl": 4}
    assert len(report["loss"]) == 2 and all(np.isfinite(report["loss"]))
    assert report["numba_cache"] == str(tuned["bundle"] / ".numba_cache")
    before = load_model(work["model"]).get_weights()
    after = load_model(tuned["after_first"]).get_weights()
    assert len(before) == len(after)
    assert all(a.shape == b.shape for a, b in zip(before, after))
    assert any(not np.array_equal(a, b) for a, b in zip(before, after))
    final = load_model(tuned["bundle"] / "model.edgemine")
    assert final.class_names == CLASSES and final.preprocessing["height"] == SIZE
    assert any(
        not np.array_equal(a, b) for a, b in zip(after, final.get_weights())
    )  # the second run tuned further


def test_run_py_uses_the_reexported_model(work, tuned, tmp_path):
    b = tuned["bundle"]
    spec = json.loads((b / "preprocessing.json").read_text())
    data = (b / "model.onnx").read_bytes()
    assert spec["bundle"]["model_sha256"] == hashlib.sha256(data).hexdigest()
    assert spec["bundle"]["model_bytes"] == len(data)
    pngs = sorted(work["folders"].rglob("*.png"))
    res = _script(b, "run.py", *pngs, "--output", tmp_path / "out.npy", cwd=work["elsewhere"])
    assert res.returncode == 0, res.stderr
    # the engine on the same pixels, prepared as run.py prepares them
    raw = np.stack([work["images"][int(p.stem)] for p in pngs])[..., None]
    x = raw.astype(np.float32) * np.float32(1 / 255)
    engine = load_model(b / "model.edgemine").predict(x)
    np.testing.assert_allclose(np.load(tmp_path / "out.npy"), engine, atol=1e-5)


def test_second_run_loads_numba_cache_and_compiles_nothing(tuned):
    cache = tuned["bundle"] / ".numba_cache"
    assert list(cache.rglob("*.nbi")) and list(cache.rglob("*.nbc"))
    out = tuned["second"].stdout
    assert "[cache] data loaded from" in out and str(cache) in out
    assert "[cache] data saved to" not in out, "the second run compiled a kernel again"


def test_seed_repeats_and_npz_equals_folder(work, tuned, tmp_path):
    """The same examples (as an .npz with class names) and seed give the same weights."""
    b = tmp_path / "b"
    shutil.copytree(work["bundle"], b)
    order = sorted(work["folders"].rglob("*.png"), key=lambda p: (p.parent.name, p.name))
    x = np.stack([work["images"][int(p.stem)] for p in order])
    np.savez(tmp_path / "new.npz", x=x, y=np.array([p.parent.name for p in order]))
    cache = str(tuned["bundle"] / ".numba_cache")  # warm: keeps this test fast
    res = _script(
        b,
        "finetune.py",
        tmp_path / "new.npz",
        "--epochs",
        "2",
        "--batch-size",
        "4",
        "--output",
        tmp_path / "tuned.edgemine",
        cwd=work["elsewhere"],
        NUMBA_CACHE_DIR=cache,
    )
    assert res.returncode == 0, res.stderr
    assert "Numba cache: " + cache in res.stdout
    assert (b / "model.edgemine").read_bytes() == work["model"].read_bytes()  # --output elsewhere
    want = load_model(tuned["after_first"]).get_weights()
    got = load_model(tmp_path / "tuned.edgemine").get_weights()
    for a, g in zip(want, got):
        np.testing.assert_array_equal(a, g)


# --------------------------------------------------------------------------------------------
# refusals: one line, non-zero exit, no traceback
# --------------------------------------------------------------------------------------------


def _unknown_class(d: Path) -> Path:
    _class_folders(d / "z", _images(3, 0))
    (d / "z" / "cat").rename(d / "z" / "zebra")
    return d / "z"


def _wrong_size(d: Path) -> Path:
    (d / "s" / "dog").mkdir(parents=True)
    (d / "s" / "dog" / "a.png").write_bytes(png_bytes(np.zeros((10, 9), np.uint8)))
    return d / "s"


def _empty_class_folder(d: Path) -> Path:
    (d / "e" / "cat").mkdir(parents=True)
    (d / "e" / "cat" / "notes.txt").write_text("not an image")
    return d / "e"


def _npz(**arrays):
    def make(d: Path) -> Path:
        np.savez(d / "examples.npz", **arrays)
        return d / "examples.npz"

    return make


def _file(name: str, text: str):
    def make(d: Path) -> Path:
        (d / name).write_text(text)
        return d / name

    return make


NAN_IMAGES = np.full((2, SIZE, SIZE, 1), np.nan, np.float32)
BAD_EXAMPLES = {
    "missing": (lambda d: d / "missing", ["not found"]),
    "no class folders": (lambda d: d, ["no class folders"]),
    "no images": (_empty_class_folder, ["no image examples"]),
    "unknown class": (_unknown_class, ["'zebra'", "cat, dog, owl"]),
    "wrong size": (_wrong_size, ["9x10", "12x12"]),
    "NaN": (_npz(x=NAN_IMAGES, y=np.array([0, 1])), ["NaN"]),
    "no y": (_npz(x=_images(2, 0)), ["no array 'y'"]),
    "lengths": (_npz(x=_images(3, 0), y=np.array([0, 1])), ["3 examples", "2 labels"]),
    "unknown name": (_npz(x=_images(2, 0), y=np.array(["cat", "yak"])), ["'yak'"]),
    "out of range": (_npz(x=_images(2, 0), y=np.array([0, 3])), ["0..2"]),
    "csv": (_file("x.csv", "1,2\n"), ["expected a folder"]),
}


@pytest.mark.parametrize("case", sorted(BAD_EXAMPLES))
def test_finetune_refuses_bad_examples(work, tmp_path, case):
    make, words = BAD_EXAMPLES[case]
    res = _script(work["bundle"], "finetune.py", make(tmp_path), cwd=work["elsewhere"])
    _refused(res, *words)
    assert (work["bundle"] / "model.edgemine").read_bytes() == work["model"].read_bytes()


def test_finetune_refuses_bad_options_and_a_corrupt_model(work, tmp_path):
    res = _script(work["bundle"], "finetune.py", work["folders"], "--lr", "-1", cwd=tmp_path)
    assert res.returncode == 2 and "positive" in res.stderr
    b = tmp_path / "b"
    shutil.copytree(work["bundle"], b)
    (b / "model.edgemine").write_bytes(b"PK\x03\x04 not really a zip")
    res = _script(b, "finetune.py", work["folders"], cwd=tmp_path)
    _refused(res, "ModelFileError", "model.edgemine", code=1)
    (b / "model.edgemine").unlink()
    _refused(_script(b, "finetune.py", work["folders"], cwd=tmp_path), "--engine")


# --------------------------------------------------------------------------------------------
# a text model: class folders of .txt files, read with run.py's tokenizer
# --------------------------------------------------------------------------------------------


def test_text_bundle_finetunes_from_txt_folders(tmp_path):
    set_random_seed(0)
    model = Sequential(
        [
            layers.Embedding(50, 8, input_length=6),
            layers.Flatten(),  # not an LSTM: the test is about reading texts, and this compiles fast
            layers.Dense(2, activation="softmax"),
        ]
    )
    model.compile(optimizer="adam", loss="categorical_crossentropy")
    x = np.random.default_rng(0).integers(0, 50, (8, 6))
    model.fit(x, to_categorical(np.arange(8) % 2, 2), batch_size=8, verbose=0)
    model.class_names = ["negative", "positive"]
    words = {f"w{i}": i for i in range(1, 50)}
    model.preprocessing = {"kind": "text", "maxlen": 6, "word_index": words, "num_words": 50}
    model.save(tmp_path / "text.edgemine")
    b = write_engine_bundle(tmp_path / "text.edgemine", tmp_path / "b", target="generic")
    assert "one text per line" in (b / "README.md").read_text()
    for name, text in (("negative", "w1 w2 w3\nW4, w5!\n\n"), ("positive", "w10 w11\nw12\n")):
        (tmp_path / "new" / name).mkdir(parents=True)
        (tmp_path / "new" / name / "a.txt").write_text(text)
    res = _script(b, "finetune.py", tmp_path / "new", "--export-onnx", "--json", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["per_class"] == {"negative": 2, "positive": 2}
    res = _script(b, "run.py", "--text", "w1 w2", "--output", tmp_path / "o.npy", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    tokens = np.array([[0, 0, 0, 0, 1, 2]])  # pre-padded, as run.py pads
    engine = load_model(b / "model.edgemine").predict(tokens)
    np.testing.assert_allclose(np.load(tmp_path / "o.npy"), engine, atol=1e-5)
    (tmp_path / "long" / "positive").mkdir(parents=True)
    (tmp_path / "long" / "positive" / "a.txt").write_text("w1 w2 w3 w4 w5 w6 w7\n")
    _refused(_script(b, "finetune.py", tmp_path / "long", cwd=tmp_path), "7 tokens", "maxlen=6")


def test_numba_cache_falls_back_to_the_user_cache(work, tmp_path):
    """A bundle folder where .numba_cache cannot be made (read-only card): the user's cache."""
    b = tmp_path / "b"
    shutil.copytree(work["bundle"], b, ignore=shutil.ignore_patterns(".numba_cache"))
    (b / ".numba_cache").write_text("a file where the folder would go")
    code = "import finetune, os; print(finetune.CACHE_DIR, os.environ['NUMBA_CACHE_DIR'])"
    res = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env=_env(XDG_CACHE_HOME=str(tmp_path / "user"), PYTHONPATH=str(b)),
        cwd=str(tmp_path),
    )
    assert res.returncode == 0, res.stderr
    want = str(tmp_path / "user" / "edgemine" / "numba")
    assert res.stdout.split() == [want, want]
