"""The training loop that every model shares: compile, fit, evaluate, predict and the
single-batch steps (Keras's ``Trainer``). A model class supplies the structure: ``_check_x``,
``_check_y``, ``_to_device``, ``_forward``, ``_train_step``, ``_resolve_metrics`` and its
variables (see :class:`edgemine.models.Model`).

Data come as arrays (sliced here, the fast path) or as an iterable of batches (see
:mod:`edgemine.data_adapters`). Weighted losses reduce as Keras 3's ``sum_over_batch_size``:
the sum of each sample's weighted loss over the number of samples; ``metrics`` ignore the
weights and ``weighted_metrics`` use them, as in Keras.
"""

from __future__ import annotations

import math
import sys

import numpy as np

from .. import metrics as metrics_mod
from .. import optimizers as optimizers_mod
from ..backend import get_ops
from ..callbacks import Callback, History, record_epoch
from ..data_adapters import (
    ArrayBatches,
    EpochIterator,
    check_class_weight,
    check_sample_weight,
    class_weights_of,
    is_batch_source,
)
from ..model_inputs import Inputs, positive_int
from ..progress import ProgressBar
from ..utils import get_rng, using_rng
from .heads import compile_heads, log_names, metric_keys


def _batch_size(batch_size, x) -> int:
    """The array batch size (32 by default); an iterable's batches are its own, and Keras
    ignores batch_size for them, as here."""
    if batch_size is None or is_batch_source(x):
        return 32
    return positive_int(batch_size, "batch_size")


class Trainer:
    """compile / fit / evaluate / predict / train_on_batch for a model class."""

    # ----- compile -----
    def compile(
        self,
        optimizer="rmsprop",
        loss=None,
        metrics=None,
        device: str = "cpu",
        weighted_metrics=None,
        loss_weights=None,
    ) -> None:
        """Choose optimizer, loss, metrics (names as in Keras, or metric objects), the
        ``weighted_metrics`` that sample and class weights weigh, and device ('cpu' or 'cuda').

        For a model with several outputs, as in Keras 3: ``loss`` is one loss for every output,
        a list in output order or a dict by output name; ``loss_weights`` (default 1 each) and
        ``metrics`` / ``weighted_metrics`` are lists with one entry per output or dicts by
        output name; the loss is the weighted sum of the outputs' losses."""
        if loss is None:
            raise ValueError("compile() needs a loss, e.g. loss='categorical_crossentropy'")
        heads = compile_heads(loss, loss_weights, metrics, weighted_metrics, self.output_names)
        self.optimizer = optimizers_mod.get(optimizer)
        self._heads = heads
        self.loss = heads[0].loss if len(heads) == 1 else [h.loss for h in heads]
        self.loss_weights = [h.weight for h in heads]
        self._requested_metrics = [kind for _, kind in heads[0].plain]  # one output's file
        self.metric_names = log_names(heads)  # evaluate's list after the loss
        self.set_device(device)
        if self.built:
            self._resolve_metrics()

    def _metric_order(self) -> list[tuple[int, str]]:
        """(output index, requested kind) of every metric, in the order of ``_tally_names``:
        the plain metrics output by output, then the weighted ones."""
        plain = [(i, kind) for i, h in enumerate(self._heads) for _, kind in h.plain]
        return plain + [(i, kind) for i, h in enumerate(self._heads) for _, kind in h.weighted]

    def _tally_names(self) -> tuple[list[str], list[bool], int]:
        """(log names besides ``loss``, which are weighted metrics, how many of the first
        names are the outputs' own losses) of this model's running logs."""
        heads = self._heads
        n_plain = sum(len(h.plain) for h in heads)
        n_weighted = sum(len(h.weighted) for h in heads)
        flags = [False] * n_plain + [True] * n_weighted
        if len(heads) == 1:
            return list(self.metric_names), flags, 0
        parts = [f"{h.name}_loss" for h in heads]
        return parts + metric_keys(heads), [False] * len(parts) + flags, len(parts)

    def _require_compiled(self) -> None:
        if self.loss is None or self.optimizer is None:
            raise RuntimeError("the model must be compiled first: call model.compile(...)")

    def _fit_batch(self, x_host, y_host, w=None) -> tuple[np.ndarray, list[np.ndarray]]:
        """One training step on a host batch (sample weights ``w`` or None); returns its
        per-sample losses and metric values. On a GPU the batch's temporaries are the previous
        batch's device arrays again."""
        ops = self.ops
        with ops.batch_memory(), using_rng(self._training_rng()):
            xb = self._to_device(x_host)
            yb = self._to_device(y_host)
            outs, pers = self._train_step(xb, yb, w)
            return self._batch_logs(outs, yb, y_host, pers)

    def _weighted_gradient(self, grad, w: np.ndarray):
        """The loss gradient with each sample's rows scaled by its weight. On the host: only
        weighted training pays for the round trip."""
        g = self.ops.to_numpy(grad)
        return self.ops.asarray(g * w.reshape((-1,) + (1,) * (g.ndim - 1)).astype(g.dtype))

    def _training_rng(self) -> np.random.Generator:
        if self.rng is None:
            self.rng = np.random.default_rng(int(get_rng().integers(2**63)))
        return self.rng

    def _test_batch(self, x_host, y_host) -> tuple[np.ndarray, list[np.ndarray]]:
        """Per-sample losses and metric values of the inference-mode model on a host batch."""
        ops = self.ops
        with ops.batch_memory():
            xb = self._to_device(x_host)
            yb = self._to_device(y_host)
            outs = self._forward(xb, training=False, several=True)
            return self._batch_logs(outs, yb, y_host)

    def _predict_batch(self, x_host, training: bool = False):
        """The model's output for a host batch, as a host array (a list of them for a model
        with several outputs)."""
        ops = self.ops
        with ops.batch_memory():
            out = self._forward(self._to_device(x_host), training, several=True)
            host = [np.asarray(ops.to_numpy(o)) for o in out]
        return host if len(host) > 1 else host[0]

    def _batch_logs(self, outs, yb, host_y, pers=None) -> tuple[np.ndarray, list[np.ndarray]]:
        """Per-sample losses and metric values of one batch, on the host, from the outputs
        ``outs``, targets ``yb`` (``host_y`` their host copies: the metrics run on the host,
        which on a GPU saves a download per step) and each output's per-sample losses ``pers``
        (computed here when None; a sequence output's averaged over time, as Keras does). The
        loss is the loss-weighted sum of the outputs'; with several outputs each output's loss
        comes first among the values."""
        ops, heads = self.ops, self._heads
        ys = _arrays(yb)
        if pers is None:
            pers = [
                ops.loss_forward(h.loss.name, out, y, h.loss.from_logits)
                for h, out, y in zip(heads, outs, ys)
            ]
        pers = [_per_sample(ops.to_numpy(p)) for p in pers]
        if len(heads) == 1 and heads[0].weight == 1.0:
            total, parts = pers[0], []
        else:
            total = sum(h.weight * p for h, p in zip(heads, pers))
            parts = pers if len(heads) > 1 else []
        preds: dict[int, np.ndarray] = {}
        host_ys = _arrays(host_y)
        values = [
            metrics_mod.batch_values(kind, host_ys[i], self._host_prediction(outs, i, preds))
            for i, kind in self._metrics
        ]
        return total, parts + values

    def _host_prediction(self, outs, i: int, cache: dict) -> np.ndarray:
        """Output ``i`` on the host, as probabilities where its loss takes logits."""
        if i not in cache:
            pred = self.ops.to_numpy(outs[i])
            loss = self._heads[i].loss
            if loss.from_logits:
                act = "sigmoid" if loss.name == "binary_crossentropy" else "softmax"
                pred = get_ops("cpu").activation_forward(act, pred.astype(np.float32))
            cache[i] = pred
        return cache[i]

    def _new_tally(self) -> metrics_mod.Tally:
        """Running logs for one pass (the metrics known from compile: an unbuilt model builds
        on its first batch)."""
        return metrics_mod.Tally(*self._tally_names())

    # ----- data -----
    def _data(
        self,
        x,
        y,
        batch_size,
        sample_weight=None,
        class_weight=None,
        steps=None,
        shuffle=False,
        what="x",
    ):
        """Arrays as ArrayBatches, anything else as a CheckedBatches over an EpochIterator."""
        self._check_output_weights(sample_weight, class_weight)
        if is_batch_source(x):
            if y is not None or sample_weight is not None:
                raise ValueError(
                    f"when {what} is an iterable of batches, y and sample_weight come in its "
                    "batches (x, y) or (x, y, sample_weight): leave y and sample_weight out"
                )
            return CheckedBatches(self, EpochIterator(x, steps, what), class_weight)
        if steps is not None:
            raise ValueError(
                "steps are for iterables of batches; with arrays, batch_size sets them"
            )
        x = self._check_x(x, what)
        self._resolve_metrics()
        y = self._check_y(y, len(x), "y" if what == "x" else what[:-1] + "y")
        w = check_sample_weight(sample_weight, len(x))
        if class_weight is not None:
            if w is not None:
                raise ValueError("give class_weight or sample_weight, not both (as in Keras)")
            w = class_weights_of(y, class_weight)
        size = len(x) if batch_size is None else batch_size  # None: one batch (train_on_batch)
        return ArrayBatches(x, y, w, size, shuffle, class_weight is not None)

    def _check_output_weights(self, sample_weight, class_weight, what="sample_weight") -> None:
        """Refuse what a model with several outputs does not take: class_weight (Keras 3
        refuses it too) and sample weights per output."""
        n = len(self._heads)
        if n == 1:
            return
        if class_weight is not None:
            raise ValueError(
                f"class_weight is only supported for models with a single output (as in Keras "
                f"3); this model has {n} outputs: give sample_weight instead"
            )
        if isinstance(sample_weight, dict) or (
            isinstance(sample_weight, (list, tuple)) and any(np.ndim(w) > 0 for w in sample_weight)
        ):
            raise ValueError(
                f"{what} holds one array per output: edgemine weighs all {n} outputs with one "
                "array of shape (n,); sample weights per output are not supported"
            )

    def _validation(self, train, validation_split, validation_data, batch_size, steps):
        """(training data, validation data or None). Keras takes a validation_split from the
        tail of the arrays, unshuffled; validation_data is a tuple (x, y[, sample_weight]) or an
        iterable of batches (``validation_steps`` of them per evaluation if given)."""
        if not isinstance(validation_split, (int, float, np.floating)) or isinstance(
            validation_split, bool
        ):
            raise ValueError(f"validation_split must be a number, got {validation_split!r}")
        if not 0.0 <= float(validation_split) < 1.0:
            raise ValueError(f"validation_split must be in [0, 1), got {validation_split}")
        if validation_data is not None:
            if is_batch_source(validation_data):
                return train, self._data(
                    validation_data, None, batch_size, steps=steps, what="validation_data"
                )
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
                raise ValueError(
                    "validation_data must be a tuple (x_val, y_val) or (x_val, y_val, "
                    "sample_weight_val), or an iterable of batches"
                )
            vx, vy, *vw = validation_data
            return train, self._data(
                vx, vy, batch_size, vw[0] if vw else None, steps=steps, what="validation x"
            )
        if validation_split > 0:
            if not isinstance(train, ArrayBatches):
                raise ValueError("validation_split needs arrays; give validation_data instead")
            return train.split(validation_split)
        return train, None

    # ----- public training API -----
    def fit(
        self,
        x=None,
        y=None,
        batch_size: int | None = None,
        epochs: int = 1,
        verbose="auto",
        callbacks: list[Callback] | None = None,
        validation_split: float = 0.0,
        validation_data=None,
        shuffle: bool = True,
        class_weight: dict | None = None,
        sample_weight=None,
        initial_epoch: int = 0,
        steps_per_epoch: int | None = None,
        validation_steps: int | None = None,
        validation_batch_size: int | None = None,
        validation_freq: int = 1,
    ) -> History:
        """Train for ``epochs`` epochs (from ``initial_epoch``) on arrays or an iterable of
        batches; returns a History whose keys are Keras's (``loss``, metrics, ``val_...``)."""
        self._require_compiled()
        batch_size = _batch_size(batch_size, x)
        self.fit_batch_size = batch_size
        epochs = positive_int(epochs, "epochs", minimum=0)
        initial_epoch = positive_int(initial_epoch, "initial_epoch", minimum=0)
        validation_freq = positive_int(validation_freq, "validation_freq")
        verbose = 1 if verbose == "auto" else int(verbose)
        train = self._data(
            x,
            y,
            batch_size,
            sample_weight,
            check_class_weight(class_weight),
            steps_per_epoch,
            shuffle,
        )
        val_batch = (
            batch_size
            if validation_batch_size is None
            else positive_int(validation_batch_size, "validation_batch_size")
        )
        train, val = self._validation(
            train, validation_split, validation_data, val_batch, validation_steps
        )
        history = History()
        cbs = [*(callbacks or []), history]
        for cb in cbs:
            if not isinstance(cb, Callback):
                raise TypeError(f"callbacks must be edgemine Callbacks, got {type(cb).__name__}")
            cb.set_model(self)
            cb.params = {"epochs": epochs, "steps": train.steps, "verbose": verbose}
        self.stop_training = False
        for cb in cbs:
            cb.on_train_begin()
        for epoch in range(initial_epoch, epochs):
            for cb in cbs:
                cb.on_epoch_begin(epoch)
            if verbose:
                print(f"Epoch {epoch + 1}/{epochs}")
                sys.stdout.flush()
            bar = ProgressBar(train.steps, verbose)
            logs = self._fit_epoch(train, cbs, bar)
            if train.exhausted and not logs:
                break  # a generator read to its end by the earlier epochs (warned)
            if val is not None and (epoch + 1) % validation_freq == 0:
                vlogs = self._evaluate_data(val)
                logs.update({f"val_{k}": v for k, v in vlogs.items()})
                logs = dict(sorted(logs.items()))  # Keras 3's order
            bar.finish(logs)
            self.epochs_trained = epoch + 1
            record_epoch(self.history_log, logs)
            for cb in cbs:
                cb.on_epoch_end(epoch, logs)
            if self.stop_training:
                break
        for cb in cbs:
            cb.on_train_end()
        self.history = history
        return history

    def _fit_epoch(self, train, cbs: list, bar: ProgressBar) -> dict:
        """One epoch of training steps; returns its logs (running means, as Keras reports)."""
        tally = self._new_tally()
        logs: dict = {}
        for step, (xb, yb, wb) in enumerate(train.epoch(self._training_rng())):
            if step == 0:
                self.optimizer.build(self.trainable_variables, self.ops)
            for cb in cbs:
                cb.on_train_batch_begin(step)
            tally.add(*self._fit_batch(xb, yb, wb), wb)
            logs = tally.logs()
            for cb in cbs:
                cb.on_train_batch_end(step, dict(logs))
            bar.update(step + 1, logs)
            if self.stop_training:
                break
        return logs

    def _evaluate_data(self, data, bar: ProgressBar | None = None) -> dict:
        tally = self._new_tally()
        logs: dict = {}
        for step, (xb, yb, wb) in enumerate(data.epoch(None)):
            tally.add(*self._test_batch(xb, yb), wb)
            logs = tally.logs()
            if bar is not None:
                bar.update(step + 1, logs)
        if bar is not None:
            bar.finish(logs)
        return logs or self._new_tally().logs()

    def evaluate(
        self,
        x=None,
        y=None,
        batch_size: int | None = None,
        verbose="auto",
        sample_weight=None,
        steps: int | None = None,
        return_dict: bool = False,
    ):
        """Loss (and metrics) on arrays (x, y) or an iterable of batches: a float, a list
        [loss, *metrics], or a dict with ``return_dict``."""
        self._require_compiled()
        batch_size = _batch_size(batch_size, x)
        verbose = 1 if verbose == "auto" else int(verbose)
        data = self._data(x, y, batch_size, sample_weight, steps=steps)
        bar = ProgressBar(data.steps, verbose) if verbose else None
        return self._result(self._evaluate_data(data, bar), return_dict)

    def predict(self, x, batch_size: int | None = None, verbose=0, steps: int | None = None):
        """Model outputs for arrays x (in batches, default 32) or for an iterable of batches
        (``x`` or ``(x, ...)`` each; targets in them are ignored)."""
        if is_batch_source(x):
            it = EpochIterator(x, steps, "x")
            parts = [self._predict_batch(self._check_x(bx, "x")) for bx, _, _ in it.epoch()]
            if not parts:
                raise ValueError("x gave no batches to predict")
            return _concatenate(parts)
        batch_size = 32 if batch_size is None else positive_int(batch_size, "batch_size")
        x = self._check_x(x)
        if len(x) <= batch_size:
            return self._predict_batch(x)
        steps = math.ceil(len(x) / batch_size)
        bar = ProgressBar(steps, 1 if verbose in ("auto", 1) else int(verbose)) if verbose else None
        outs = []
        for step in range(steps):
            outs.append(self._predict_batch(x[step * batch_size : (step + 1) * batch_size]))
            if bar is not None:
                bar.update(step + 1, {})
        if bar is not None:
            bar.finish({})
        return _concatenate(outs)

    def __call__(self, x, training: bool = False) -> np.ndarray:
        from .graph import symbolic

        if symbolic(x):
            raise TypeError(
                f"model {self.name!r} called on a KerasTensor: a model used as a layer of another "
                "model is not supported; call its layers on the tensor instead"
            )
        x = self._check_x(x)
        return self._predict_batch(x, training)

    def predict_on_batch(self, x) -> np.ndarray:
        x = self._check_x(x)
        return self._predict_batch(x)

    def train_on_batch(
        self, x, y, sample_weight=None, class_weight: dict | None = None, return_dict: bool = False
    ):
        """One gradient step on one batch; returns the loss (and metrics) of that batch."""
        self._require_compiled()
        data = self._data(x, y, None, sample_weight, check_class_weight(class_weight))
        self.optimizer.build(self.trainable_variables, self.ops)
        tally = self._new_tally()
        tally.add(*self._fit_batch(data.x, data.y, data.w), data.w)
        return self._result(tally.logs(), return_dict)

    def test_on_batch(self, x, y, sample_weight=None, return_dict: bool = False):
        """The loss (and metrics) of one batch, without training."""
        self._require_compiled()
        data = self._data(x, y, None, sample_weight)
        tally = self._new_tally()
        tally.add(*self._test_batch(data.x, data.y), data.w)
        return self._result(tally.logs(), return_dict)

    # ----- weights files -----
    def save_weights(self, filepath, overwrite: bool = True) -> None:
        """Write the weights to a Keras 3 ``.weights.h5`` file, atomically."""
        from ..saving.weights_h5 import save_weights

        save_weights(self, filepath, overwrite)

    def load_weights(self, filepath) -> None:
        """Read weights from a ``.weights.h5`` file (edgemine's or Keras's), ``.keras`` or
        legacy ``.h5``, checking every shape and naming the layer on a mismatch."""
        from ..saving.weights_h5 import load_weights

        load_weights(self, filepath)

    def _result(self, logs: dict, return_dict: bool):
        """Keras's return value: the dict, or [loss, *metrics] (compile order), or the loss
        alone."""
        if return_dict:
            return logs
        values = [logs["loss"], *(logs[name] for name in self.metric_names)]
        return values[0] if len(values) == 1 else values


class CheckedBatches:
    """The batches of an EpochIterator, each checked by the model as arrays would be (and
    weighted by ``class_weight`` if given)."""

    def __init__(self, model, source: EpochIterator, class_weight: dict | None):
        self.model, self.source, self.class_weight = model, source, class_weight
        self.steps = source.steps if source.steps is not None else _length(source.source)

    @property
    def exhausted(self) -> bool:
        return self.source.exhausted

    def epoch(self, rng=None):
        model, what = self.model, self.source.what
        for k, (bx, by, bw) in enumerate(self.source.epoch(), 1):
            label = f"{what} (batch {k})"
            x = model._check_x(bx, f"x of {label}")
            model._resolve_metrics()
            y = model._check_y(by, len(x), f"y of {label}")
            model._check_output_weights(bw, None, f"sample_weight of {label}")
            w = check_sample_weight(bw, len(x), f"sample_weight of {label}")
            if self.class_weight is not None:
                if w is not None:
                    raise ValueError("give class_weight or sample_weight, not both (as in Keras)")
                w = class_weights_of(y, self.class_weight)
            yield x, y, w


def _arrays(y) -> list:
    """The targets of each output: an Inputs' arrays, or the one array."""
    return y.arrays if isinstance(y, Inputs) else [y]


def _per_sample(per: np.ndarray) -> np.ndarray:
    """Per-sample losses, a sequence output's averaged over time (as Keras reduces them)."""
    return per.reshape(len(per), -1).mean(-1) if per.ndim > 1 else per


def _length(source) -> int | None:
    try:
        return len(source)
    except TypeError:
        return None


def _concatenate(parts: list):
    if isinstance(parts[0], list):  # several outputs
        return [np.concatenate(p) for p in zip(*parts)]
    return np.concatenate(parts)
