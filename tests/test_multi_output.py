"""Training models with several outputs as Keras 3 does: a loss, loss weight and metrics per
output, targets as a list or a dict by output name, Keras 3's log names and orders, and the
compile settings kept by model files.

The KERAS_* numbers were computed once with Keras 3.15.1 (torch backend, CPU) by the same model
with the same weights (tests/keras_reference_data.py), by tools/keras_training_reference.py;
Keras is not a test dependency.
"""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest
from keras_reference_data import (
    TWO_COMPILE,
    TWO_COMPILE_WEIGHTED,
    TWO_WEIGHTS,
    YC,
    YR,
    W,
    X,
    Y,
    two_output_model,
)

import edgemine as keras
from edgemine.callbacks import EarlyStopping, ModelCheckpoint, ReduceLROnPlateau
from edgemine.layers import Dense, Input
from edgemine.models import Model, load_model

KERAS_EVALUATE = {  # evaluate(X, [YR, YC]) under TWO_COMPILE, before training
    "cls_accuracy": 0.1666666716337204,
    "cls_loss": 1.438118577003479,
    "loss": 3.837449073791504,  # 0.5 * reg_loss + 2 * cls_loss
    "reg_loss": 1.9224239587783813,
    "reg_mae": 1.233540415763855,
}
# evaluate's list: the loss, each output's loss in output order, then the metrics sorted
KERAS_EVALUATE_ORDER = ["loss", "reg_loss", "cls_loss", "cls_accuracy", "reg_mae"]
KERAS_WEIGHTS_AFTER_STEP = [  # after train_on_batch(X, [YR, YC]) with SGD(0.1)
    [
        [0.22607143, 0.57446504, 0.14428267, -0.8833127],
        [0.64024067, 0.30966264, -0.3240962, 0.41827694],
        [0.23212984, 0.21577881, 0.09521931, 0.38346609],
    ],
    [0.0933051, 0.1964943, 0.14359234, 0.36800754],
    [[-0.49795499], [-0.07312096], [-0.29944414], [0.42387185]],
    [0.12207009],
    [
        [0.02671325, -0.19477351, -0.55618989],
        [-0.21062455, 0.03155653, -0.18818906],
        [0.88186884, 0.70280343, -1.87193441],
        [-1.29359925, -0.16085863, -0.28572512],
    ],
    [0.08346316, -0.12467889, 0.04121573],
]
KERAS_FIT_SAMPLE_WEIGHT = {  # fit(sample_weight=W, batch_size=4, shuffle=False, validation_data)
    "cls_accuracy": 0.1666666716337204,
    "cls_loss": 1.9252452850341797,
    "loss": 4.8194260597229,
    "reg_loss": 1.9378713369369507,
    "reg_mae": 1.243153691291809,
    "val_cls_accuracy": 0.3333333432674408,
    "val_cls_loss": 1.1031678915023804,
    "val_loss": 2.7774693965911865,
    "val_reg_loss": 1.1422673463821411,
    "val_reg_mae": 1.020318627357483,
}
KERAS_WEIGHTED_EVALUATE = {  # evaluate(sample_weight=W) under TWO_COMPILE_WEIGHTED
    "cls_accuracy": 0.1666666716337204,
    "cls_loss": 1.8079023361206055,
    "cls_weighted_accuracy": 0.13333334028720856,
    "loss": 3.237245798110962,
    "reg_loss": 1.856846809387207,
    "reg_mae": 1.233540415763855,
    "reg_mse": 1.9224239587783813,
}
KERAS_WEIGHTED_ORDER = [
    "loss",
    "reg_loss",
    "cls_loss",
    "cls_accuracy",
    "cls_weighted_accuracy",
    "reg_mae",
    "reg_mse",
]


def _model(**overrides):
    return two_output_model(keras, **{**TWO_COMPILE, **overrides})


def test_evaluate_and_one_sgd_step_match_keras():
    model = _model()
    assert model.output_names == ["reg", "cls"]
    logs = model.evaluate(X, [YR, YC], verbose=0, return_dict=True)
    assert list(logs) == sorted(KERAS_EVALUATE)
    assert logs == pytest.approx(KERAS_EVALUATE, rel=1e-6)
    values = model.evaluate(X, [YR, YC], verbose=0)
    assert values == pytest.approx([KERAS_EVALUATE[k] for k in KERAS_EVALUATE_ORDER], rel=1e-6)
    assert model.metric_names == KERAS_EVALUATE_ORDER[1:]
    # train_on_batch reports the batch's logs before the step, then updates every weight
    step = model.train_on_batch(X, [YR, YC])
    assert step == pytest.approx(values, rel=1e-6)
    for got, want in zip(model.get_weights(), KERAS_WEIGHTS_AFTER_STEP):
        np.testing.assert_allclose(got, np.array(want, np.float32), atol=1e-6)


def test_fit_with_sample_weight_and_validation_matches_keras():
    model = _model()
    hist = model.fit(
        X,
        [YR, YC],
        sample_weight=W,
        batch_size=4,
        shuffle=False,
        verbose=0,
        validation_data=(X, [YR, YC], W),
    )
    assert list(hist.history) == sorted(KERAS_FIT_SAMPLE_WEIGHT)
    assert {k: v[0] for k, v in hist.history.items()} == pytest.approx(
        KERAS_FIT_SAMPLE_WEIGHT, rel=1e-6
    )


def test_dicts_by_output_name_and_weighted_metric_names_match_keras():
    model = two_output_model(keras, **TWO_COMPILE_WEIGHTED)
    y = {"cls": YC, "reg": YR}
    logs = model.evaluate(X, y, sample_weight=W, verbose=0, return_dict=True)
    assert list(logs) == sorted(KERAS_WEIGHTED_EVALUATE)
    assert logs == pytest.approx(KERAS_WEIGHTED_EVALUATE, rel=1e-6)
    values = model.evaluate(X, y, sample_weight=W, verbose=0)
    assert values == pytest.approx(
        [KERAS_WEIGHTED_EVALUATE[k] for k in KERAS_WEIGHTED_ORDER], rel=1e-6
    )
    assert model.test_on_batch(X, [YR, YC], sample_weight=W, return_dict=True) == logs


def test_list_dict_tuple_and_batch_forms_agree():
    by_list = _model()
    by_dict = _model(
        loss={"cls": "categorical_crossentropy", "reg": "mse"},
        loss_weights={"cls": 2.0, "reg": 0.5},
        metrics={"reg": "mae", "cls": ["accuracy"]},
    )
    a = by_list.fit(X, [YR, YC], batch_size=4, epochs=2, shuffle=False, verbose=0).history
    b = by_dict.fit(X, {"cls": YC, "reg": YR}, batch_size=4, epochs=2, shuffle=False, verbose=0)
    assert a == b.history
    for p, q in zip(by_list.get_weights(), by_dict.get_weights()):
        np.testing.assert_array_equal(p, q)
    batches = [(X[:4], (YR[:4], YC[:4])), (X[4:], {"reg": YR[4:], "cls": YC[4:]})]
    gen = _model().fit(iter(batches), epochs=1, verbose=0).history
    arrays = _model().fit(X, (YR, YC), batch_size=4, shuffle=False, verbose=0).history
    assert gen == arrays
    # one loss for every output, as Keras 3 takes it
    same = two_output_model(keras, loss="mse").evaluate(X, [YR, YC], verbose=0, return_dict=True)
    assert same["loss"] == pytest.approx(same["reg_loss"] + same["cls_loss"], rel=1e-6)


def test_the_gradient_is_the_loss_weighted_sum_of_the_outputs():
    def step(weights):
        model = _model(loss_weights=weights)
        model.train_on_batch(X, [YR, YC])
        return [w - w0 for w, w0 in zip(model.get_weights(), TWO_WEIGHTS)]

    reg_only, cls_only, both = step([1.0, 0.0]), step([0.0, 1.0]), step([0.5, 2.0])
    assert not reg_only[4].any() and not cls_only[2].any()  # each head trains alone
    for d_reg, d_cls, d_both in zip(reg_only, cls_only, both):
        np.testing.assert_allclose(d_both, 0.5 * d_reg + 2.0 * d_cls, atol=1e-6)


def _classifier_heads():
    x = Input((3,), name="x")
    h = Dense(4, activation="tanh", name="h")(x)
    probs = Dense(3, activation="softmax", name="probs")(h)
    flag = Dense(1, activation="sigmoid", name="flag")(h)
    return x, h, probs, flag


def test_each_output_is_fused_on_its_own():
    x, h, probs, flag = _classifier_heads()
    reread = Dense(1, activation="sigmoid", name="reread")(probs)  # reads the softmax output
    loss = ["sparse_categorical_crossentropy", "binary_crossentropy"]
    model = Model(x, [probs, flag])
    model.compile("sgd", loss)
    assert model._fused == [True, True]
    model.compile("sgd", ["mse", "binary_crossentropy"])
    assert model._fused == [False, True]
    read = Model(x, [probs, reread])
    read.compile("sgd", loss)
    assert read._fused == [False, True]  # an output another layer reads keeps its softmax
    # the fused step equals the unfused one
    model.compile("sgd", loss)
    start = model.get_weights()
    y = [Y, (Y == 1).astype("float32")]
    model.train_on_batch(X, y)
    fused = model.get_weights()
    model.set_weights(start)
    model._fused = [False, False]
    model._fit_batch(model._check_x(X), model._check_y(y, len(X)))
    for p, q in zip(fused, model.get_weights()):
        np.testing.assert_allclose(p, q, atol=1e-6)


@pytest.mark.parametrize(
    "args,match",
    [
        ({"loss": {"reg": "mse", "other": "mse"}}, r"keys \['other', 'reg'\].*\['reg', 'cls'\]"),
        ({"loss": {"reg": "mse"}}, r"outputs are \['reg', 'cls'\]"),
        ({"loss": ["mse"] * 3}, "list of 3 entries, but the model has 2 outputs"),
        ({"loss": ["mse", None]}, "loss for output 'cls' is None"),
        ({"loss_weights": [1.0]}, "loss_weights is a list of 1 entries"),
        ({"loss_weights": {"reg": 1.0}}, "loss_weights is a dict"),
        ({"loss_weights": [1.0, "2"]}, "loss_weights for output 'cls' must be a finite number"),
        ({"loss_weights": 2.0}, "loss_weights must be a list"),
        ({"metrics": ["mae"]}, r"metrics for a model with 2 outputs \(reg, cls\) must be a list"),
        ({"metrics": "mae"}, "metrics for a model with 2 outputs"),
        ({"metrics": {"nope": "mae"}}, "give some of the output names"),
        ({"weighted_metrics": ["mae", "mae", "mae"]}, "weighted_metrics for a model"),
        ({"metrics": [["mae"], ["bogus"]]}, "unknown metric 'bogus'"),
    ],
)
def test_bad_compile_forms_are_refused_clearly(args, match):
    with pytest.raises(ValueError, match=match):
        _model(**args)


def test_bad_targets_and_weights_are_refused_clearly():
    model = _model()
    with pytest.raises(ValueError, match=r"2 outputs \(reg, cls\): give y as a list of 2"):
        model.fit(X, YR, verbose=0)
    with pytest.raises(ValueError, match="y is a list of 1 entries"):
        model.fit(X, [YR], verbose=0)
    with pytest.raises(ValueError, match=r"y is a dict with keys \['cls', 'oops'\]"):
        model.evaluate(X, {"cls": YC, "oops": YR}, verbose=0)
    with pytest.raises(ValueError, match=r"y\['cls'\] has shape \(6,\)"):
        model.evaluate(X, [YR, Y], verbose=0)
    with pytest.raises(ValueError, match="class_weight is only supported for models with a single"):
        model.fit(X, [YR, YC], class_weight={0: 1.0, 1: 2.0}, verbose=0)
    with pytest.raises(ValueError, match="sample weights per output are not supported"):
        model.fit(X, [YR, YC], sample_weight=[W, W], verbose=0)
    with pytest.raises(ValueError, match="sample weights per output"):
        model.fit(iter([(X, [YR, YC], {"reg": W, "cls": W})]), verbose=0)
    with pytest.raises(ValueError, match=r"validation y\['reg'\]"):
        model.fit(X, [YR, YC], validation_data=(X, [YR[:3], YC]), verbose=0)


def test_save_and_load_resume_bit_for_bit(tmp_path):
    model = two_output_model(keras, **{**TWO_COMPILE_WEIGHTED, "loss_weights": [0.5, 2.0]})
    model.compile(
        keras.optimizers.Adam(0.01),
        loss=["mse", "categorical_crossentropy"],
        loss_weights=[0.5, 2.0],
        metrics=[["mae"], ["accuracy"]],
        weighted_metrics={"cls": "accuracy"},
    )
    model.fit(X, [YR, YC], batch_size=4, epochs=1, verbose=0)
    model.save(tmp_path / "m.edgemine")
    loaded = load_model(tmp_path / "m.edgemine")
    assert loaded.loss_weights == [0.5, 2.0]
    assert [loss.name for loss in loaded.loss] == ["mean_squared_error", "categorical_crossentropy"]
    assert loaded.metric_names == model.metric_names
    a = model.fit(X, [YR, YC], batch_size=4, epochs=2, verbose=0, sample_weight=W).history
    b = loaded.fit(X, [YR, YC], batch_size=4, epochs=2, verbose=0, sample_weight=W).history
    assert a == b and "cls_weighted_accuracy" in a
    for p, q in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(p, q)
    assert loaded.history_log["reg_loss"][:1] == model.history_log["reg_loss"][:1]


def test_a_single_output_takes_a_loss_weight_and_keeps_its_file_layout(tmp_path):
    model = keras.Sequential([keras.Input((3,)), Dense(3, activation="softmax")])
    model.set_weights([TWO_WEIGHTS[0][:, :3], np.zeros(3, "float32")])
    model.compile("sgd", "sparse_categorical_crossentropy", metrics=["accuracy"])
    base = model.evaluate(X, Y, verbose=0)[0]
    model.save(tmp_path / "plain.edgemine")
    assert set(_compile_section(tmp_path / "plain.edgemine")) == {"optimizer", "loss", "metrics"}
    model.compile("sgd", ["sparse_categorical_crossentropy"], loss_weights=3.0)
    assert model.evaluate(X, Y, verbose=0) == pytest.approx(3 * base, rel=1e-6)
    model.save(tmp_path / "w.edgemine")
    assert _compile_section(tmp_path / "w.edgemine")["loss_weights"] == [3.0]
    assert load_model(tmp_path / "w.edgemine").evaluate(X, Y, verbose=0) == pytest.approx(3 * base)


def _compile_section(path) -> dict:
    with zipfile.ZipFile(path) as zf:
        return json.loads(zf.read("config.json"))["compile"]


@pytest.mark.parametrize(
    "field,value,match",
    [
        ("loss", [], "one loss per output"),
        ("loss", [{"name": "mse", "from_logits": "no"}, "mse"], r"compile\.loss\[0\]\.from_logits"),
        ("loss", ["mse"], "one list of names per output"),
        ("loss_weights", [1.0], "one number per output"),
        ("loss_weights", [1.0, "2"], r"compile\.loss_weights\[1\] must be a number"),
        ("loss_weights", [1.0, 1e301], r"compile\.loss_weights\[1\] must be a number"),
        ("metrics", ["mae", "accuracy"], r"compile\.metrics\[0\] must be a list of names"),
        ("metrics", [["mae"]], "one list of names per output"),
        ("weighted_metrics", [["x" * 300], []], r"weighted_metrics\[0\]\[0\] must be a short"),
        ("metrics", [["mae"], ["bogus"]], "unknown metric 'bogus'"),
        ("extra", 1, "compile has unknown fields"),
    ],
)
def test_hostile_compile_sections_are_refused(tmp_path, field, value, match):
    from test_saving import edit_config, refuse

    path = tmp_path / "m.edgemine"
    _model().save(path)

    def edit(config):
        config["compile"][field] = value

    refuse(tmp_path, edit_config(path.read_bytes(), edit), match)


@pytest.mark.parametrize("make", [EarlyStopping, ReduceLROnPlateau, "checkpoint"])
def test_callbacks_watch_an_outputs_validation_loss(tmp_path, make, capsys):
    if make == "checkpoint":
        callback = ModelCheckpoint(tmp_path / "best.edgemine", "val_cls_loss", save_best_only=True)
    else:
        callback = make(monitor="val_cls_loss", patience=1)
    assert callback.mode == "min"  # a loss, whatever its output's name holds
    model = _model()
    model.fit(X, [YR, YC], epochs=2, verbose=0, validation_data=(X, [YR, YC]), callbacks=[callback])
    assert "not available" not in capsys.readouterr().err
    assert callback.best == pytest.approx(min(model.history.history["val_cls_loss"]))
    if make == "checkpoint":
        assert load_model(tmp_path / "best.edgemine").metric_names == model.metric_names


def test_the_command_line_shows_and_refuses_several_outputs_by_name(tmp_path):
    from click.testing import CliRunner

    from edgemine.cli import main

    path = tmp_path / "two.edgemine"
    _model().save(path)
    shown = CliRunner().invoke(main, ["inspect", str(path)])
    assert shown.exit_code == 0, shown.output
    assert "reg: mean_squared_error x 0.5, cls: categorical_crossentropy x 2" in shown.output
    refused = CliRunner().invoke(main, ["evaluate", str(path), "--data", "iris"])
    assert refused.exit_code == 2
    assert "the model has 2 outputs (reg, cls)" in refused.output


@pytest.mark.parametrize(
    "args,keras_order",
    [  # evaluate's list order in Keras 3.15 for these compile arguments
        (
            {"loss": "mse", "metrics": [["mae", "mae"], None], "weighted_metrics": [["mae"], ["mse", "mse"]]},
            ["loss", "reg_loss", "cls_loss", "cls_mse", "cls_weighted_mse", "reg_mae", "reg_mae_1", "reg_weighted_mae"],
        ),
        (
            {"metrics": {"cls": ["acc", "accuracy"]}, "weighted_metrics": {"reg": "mse", "cls": "acc"}},
            ["loss", "reg_loss", "cls_loss", "cls_acc", "cls_accuracy", "cls_weighted_acc", "reg_mse"],
        ),
    ],
)  # fmt: skip
def test_repeated_metric_names_are_made_unique_as_keras_does(args, keras_order):
    model = _model(**args)
    logs = model.evaluate(X, [YR, YC], sample_weight=W, verbose=0, return_dict=True)
    assert list(logs) == sorted(keras_order)
    assert model.evaluate(X, [YR, YC], verbose=0, sample_weight=W) == [logs[k] for k in keras_order]


def test_an_output_that_another_layer_reads_gets_both_gradients():
    """h is an output and the input of the next layer: its gradient is its own loss's plus
    what flows back from the last output. Each loss alone (the other weighted 0) trains as
    the one-output model of that output does, and both train as their weighted sum."""

    def build(outputs: str):
        x = Input((3,), name="x")
        h = Dense(4, activation="relu", name="h")(x)
        out = Dense(3, activation="softmax", name="out")(h)
        model = Model(x, {"h": [h], "out": [out], "both": [h, out]}[outputs])
        model.set_weights([*TWO_WEIGHTS[:2], TWO_WEIGHTS[4], TWO_WEIGHTS[5]][: len(model.weights)])
        return model

    targets = {"h": np.abs(YR) * np.ones((1, 4), "float32"), "out": Y}
    losses = {"h": "mse", "out": "sparse_categorical_crossentropy"}

    def step(outputs, loss_weights=None):
        model = build(outputs)
        names = ["h", "out"] if outputs == "both" else [outputs]
        model.compile("sgd", [losses[n] for n in names], loss_weights=loss_weights)
        model.train_on_batch(X, [targets[n] for n in names])
        return model.get_weights()

    alone_h, alone_out = step("h"), step("out")
    for got, want in zip(step("both", [1.0, 0.0]), alone_h):
        np.testing.assert_allclose(got, want, atol=1e-7)
    for got, want in zip(step("both", [0.0, 1.0]), alone_out):
        np.testing.assert_allclose(got, want, atol=1e-7)
    start = [*TWO_WEIGHTS[:2]]
    both = step("both", [2.0, 0.5])
    for k in range(2):  # h's weights: 2 * (its own loss's step) + 0.5 * (the last output's)
        want = start[k] + 2.0 * (alone_h[k] - start[k]) + 0.5 * (alone_out[k] - start[k])
        np.testing.assert_allclose(both[k], want, atol=1e-6)
