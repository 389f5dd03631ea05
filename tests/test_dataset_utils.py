"""keras.utils' dataset helpers without TensorFlow: the same files, order, subsets and windows.

KERAS_* below were computed once with Keras 3.15.1's own index_directory and
get_training_or_validation_split (keras/src/utils/dataset_utils.py) on the folder this file
builds, by tools/keras_training_reference.py (Keras is not a test dependency).
"""

from __future__ import annotations

import os

import numpy as np
import pytest

import edgemine as keras
from edgemine.layers import Dense, Flatten

PIL = pytest.importorskip("PIL.Image")

KERAS_CLASSES = ["C10", "a_dog", "b_cat", "c2"]  # sorted(), not natural order
KERAS_SHUFFLED_TRAIN = [  # shuffle=True, seed=1337, validation_split=0.25, subset="training"
    "a_dog/img3.png", "a_dog/img1.png", "C10/img1.png", "C10/img0.png", "a_dog/img2.png",
    "a_dog/img4.png", "b_cat/img3.png", "a_dog/img0.png", "b_cat/img2.png", "b_cat/img1.png",
    "c2/img2.png", "b_cat/img0.png",
]  # fmt: skip
KERAS_SHUFFLED_VAL = ["c2/img0.png", "c2/img1.png", "a_dog/sub/deep.png"]
KERAS_UNSHUFFLED_VAL = ["c2/img0.png", "c2/img1.png", "c2/img2.png"]


@pytest.fixture
def image_dir(tmp_path):
    rng = np.random.default_rng(0)
    for cls, n in (("b_cat", 4), ("a_dog", 5), ("C10", 2), ("c2", 3)):
        (tmp_path / cls).mkdir()
        for i in range(n):
            pixels = rng.integers(0, 255, (6, 8, 3), dtype=np.uint8)
            PIL.fromarray(pixels).save(tmp_path / cls / f"img{i}.png")
    (tmp_path / "a_dog" / "sub").mkdir()
    PIL.fromarray(rng.integers(0, 255, (6, 8), dtype=np.uint8)).save(
        tmp_path / "a_dog/sub/deep.png"
    )
    (tmp_path / "a_dog" / "notes.txt").write_text("not an image")
    return tmp_path


def _relative(ds, root):
    return [os.path.relpath(p, root) for p in ds.file_paths]


def test_image_folders_split_as_keras_does(image_dir):
    train, val = keras.utils.image_dataset_from_directory(
        image_dir, image_size=(6, 8), batch_size=5, seed=1337, validation_split=0.25, subset="both"
    )
    assert train.class_names == KERAS_CLASSES
    assert _relative(train, image_dir) == KERAS_SHUFFLED_TRAIN
    assert _relative(val, image_dir) == KERAS_SHUFFLED_VAL
    val = keras.utils.image_dataset_from_directory(
        image_dir, shuffle=False, validation_split=0.25, subset="validation", image_size=(3, 4)
    )
    assert _relative(val, image_dir) == KERAS_UNSHUFFLED_VAL
    x, y = val.arrays()
    assert x.shape == (3, 3, 4, 3) and x.dtype == np.float32 and x.max() > 1  # 0..255, as Keras
    assert y.tolist() == [3, 3, 3] and y.dtype == np.int32
    first = np.asarray(PIL.open(image_dir / "c2/img0.png"), dtype=np.float32)
    whole = keras.utils.image_dataset_from_directory(image_dir, shuffle=False, image_size=(6, 8))
    assert len(whole) == 1 and [len(b[0]) for b in whole] == [15]
    np.testing.assert_array_equal(whole.arrays()[0][-3], first)  # no resize: the pixels


def test_image_batches_train_a_model_each_epoch(image_dir):
    ds = keras.utils.image_dataset_from_directory(
        image_dir,
        image_size=(6, 8),
        batch_size=4,
        seed=1,
        color_mode="grayscale",
        label_mode="categorical",
    )
    x, y = next(iter(ds))
    assert x.shape == (4, 6, 8, 1) and y.shape == (4, 4)
    model = keras.Sequential([keras.Input((6, 8, 1)), Flatten(), Dense(4, activation="softmax")])
    model.compile("adam", "categorical_crossentropy", metrics=["accuracy"])
    hist = model.fit(ds, epochs=2, verbose=0, validation_data=ds)
    assert len(hist.history["val_accuracy"]) == 2
    assert model.predict(ds).shape == (15, 4)
    assert set(model.evaluate(ds, verbose=0, return_dict=True)) == {"loss", "accuracy"}
    orders = [np.concatenate([b[1].argmax(1) for b in ds]) for _ in range(2)]
    assert sorted(orders[0]) == sorted(orders[1])  # each pass holds every sample once


def test_directory_helpers_refuse_what_keras_refuses(image_dir):
    with pytest.raises(ValueError, match="must provide a seed"):
        keras.utils.image_dataset_from_directory(image_dir, validation_split=0.2, subset="training")
    with pytest.raises(ValueError, match="validation_split must be set"):
        keras.utils.image_dataset_from_directory(image_dir, subset="training", seed=1)
    with pytest.raises(ValueError, match="exactly 2 classes"):
        keras.utils.image_dataset_from_directory(image_dir, label_mode="binary")
    with pytest.raises(ValueError, match="class_names .* do not match"):
        keras.utils.image_dataset_from_directory(image_dir, class_names=["zebra"])


def test_text_folders(tmp_path):
    for cls, texts in (("pos", ["good film", "great"]), ("neg", ["bad", "awful film", "meh"])):
        (tmp_path / cls).mkdir()
        for i, text in enumerate(texts):
            (tmp_path / cls / f"{i}.txt").write_text(text)
    ds = keras.utils.text_dataset_from_directory(
        tmp_path, shuffle=False, max_length=4, batch_size=2, label_mode="binary"
    )
    assert ds.class_names == ["neg", "pos"] and len(ds) == 3
    x, y = ds.arrays()
    assert x.tolist() == ["bad", "awfu", "meh", "good", "grea"]
    assert y[:, 0].tolist() == [0, 0, 0, 1, 1] and y.dtype == np.float32


def test_timeseries_windows_follow_keras():
    # Keras's docstring example: indices 0..98, sequence_length=10, sampling_rate=2, stride=3
    data = np.arange(100)
    ds = keras.utils.timeseries_dataset_from_array(
        data[:99], None, sequence_length=10, sampling_rate=2, sequence_stride=3, batch_size=4
    )
    windows = np.concatenate(list(ds))
    assert windows[0].tolist() == list(range(0, 20, 2))
    assert windows[1].tolist() == list(range(3, 23, 2))
    assert windows[-1].tolist() == list(range(78, 98, 2))
    # Keras's other example: targets are data[i + 10] for windows of 10 (start_index too)
    ds = keras.utils.timeseries_dataset_from_array(
        data[:-10], data[10:], sequence_length=10, batch_size=200, start_index=5
    )
    x, y = next(iter(ds))
    assert x[0].tolist() == list(range(5, 15)) and y[0] == 15 and len(x) == 76
    shuffled = keras.utils.timeseries_dataset_from_array(
        data[:-10], data[10:], sequence_length=10, shuffle=True, seed=3, batch_size=200
    )
    starts = np.arange(81)
    np.random.RandomState(3).shuffle(starts)  # Keras's first shuffle of the window starts
    x, y = shuffled.arrays()
    assert x[:, 0].tolist() == starts.tolist() and (y == x[:, 0] + 10).all()
    model = keras.Sequential([keras.Input((10,)), Dense(1)])
    model.compile("sgd", "mse")
    assert len(model.fit(ds, epochs=2, verbose=0).history["loss"]) == 2
