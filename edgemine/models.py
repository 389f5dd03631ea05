"""The Keras-style Sequential model: build, compile, fit, evaluate, predict, save.

>>> import numpy as np
>>> from edgemine.layers import Dense
>>> model = Sequential([Dense(4, activation="relu", input_shape=(3,)), Dense(2, activation="softmax")])
>>> model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
>>> model.predict(np.zeros((5, 3), dtype="float32")).shape
(5, 2)
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Iterable

import numpy as np

from . import losses as losses_mod
from . import metrics as metrics_mod
from . import optimizers as optimizers_mod
from .backend import get_ops
from .callbacks import Callback, History, record_epoch
from .layers.base import Layer, Variable
from .model_inputs import model_inputs, model_targets, numeric_array, positive_int
from .progress import ProgressBar
from .utils import get_rng, using_rng

_FUSABLE = {
    "categorical_crossentropy": "softmax",
    "sparse_categorical_crossentropy": "softmax",
    "binary_crossentropy": "sigmoid",
}


def _absorbs_below(layers: list[Layer], i: int) -> bool:
    """Does layers[i] apply the backward of the activation of the layer below it (a fusion the
    layer declares in ``absorbs_activation_below``)?"""
    if i == 0:
        return False
    below = layers[i - 1]
    return (
        below.fuses_activation_backward and below.activation in layers[i].absorbs_activation_below
    )


class Sequential:
    """A linear stack of layers with Keras's training API."""

    def __init__(self, layers: Iterable[Layer] | None = None, name: str | None = None):
        self.name = name or "sequential"
        self.layers: list[Layer] = []
        self.built = False
        self.input_shape: tuple | None = None
        self.optimizer: optimizers_mod.Optimizer | None = None
        self.loss: losses_mod.Loss | None = None
        self.metric_names: list[str] = []
        self.device = "cpu"
        self.ops = get_ops("cpu")
        self.stop_training = False
        self.history: History | None = None
        self.preprocessing: dict | None = None
        self.class_names: list[str] | None = None
        self.epochs_trained = 0
        #: every epoch's logs (loss, metrics, val_*) over all fits, kept in the model file
        self.history_log: dict[str, list[float | None]] = {}
        #: the generator of this model's shuffles and dropout masks: made from edgemine's on the
        #: first training step, and carried by checkpoints (a resumed run draws the same)
        self.rng: np.random.Generator | None = None
        self.fit_batch_size: int | None = None  # the last fit's, which checkpoints record
        for layer in layers or []:
            self.add(layer)

    # ----- structure -----
    def add(self, layer: Layer) -> None:
        """Append a layer; the model builds as soon as the input shape is known."""
        if not isinstance(layer, Layer):
            raise TypeError(f"Sequential.add expects an edgemine layer, got {type(layer).__name__}")
        if any(existing is layer for existing in self.layers):
            raise ValueError(f"layer {layer.name!r} is already in the model")
        if layer.name in {existing.name for existing in self.layers}:
            raise ValueError(f"duplicate layer name {layer.name!r}")
        self.layers.append(layer)
        if len(self.layers) == 1 and layer.input_spec_shape is not None:
            self.build((None, *layer.input_spec_shape))
        elif self.built:
            self._build_layer(layer, self.layers[-2].output_shape)

    def pop(self) -> Layer:
        if not self.layers:
            raise ValueError("pop from an empty model")
        layer = self.layers.pop()
        return layer

    def _build_layer(self, layer: Layer, input_shape: tuple) -> None:
        if layer.ops is not self.ops:
            layer.ops = self.ops
        if not layer.built:
            layer.build(tuple(input_shape))
        elif tuple(layer.input_shape) != tuple(input_shape):
            raise ValueError(
                f"layer {layer.name!r} was built for input {layer.input_shape}, "
                f"but receives {tuple(input_shape)}"
            )
        if layer.ops is not self.ops:
            layer.to_backend(self.ops)

    def build(self, input_shape: tuple | None = None) -> None:
        """Build every layer for ``input_shape`` (with the batch axis first, as in Keras)."""
        if not self.layers:
            raise ValueError("the model has no layers")
        if input_shape is None:
            if self.layers[0].input_spec_shape is None:
                raise ValueError(
                    "the model's input shape is unknown: give the first layer input_shape=... "
                    "or call build((None, ...))"
                )
            input_shape = (None, *self.layers[0].input_spec_shape)
        shape = tuple(input_shape)[1:]
        self.input_shape = shape
        for i, layer in enumerate(self.layers):
            layer.need_input_grad = i > 0
            self._build_layer(layer, shape)
            shape = layer.output_shape
        self.built = True

    @property
    def output_shape(self) -> tuple:
        self._require_built()
        return self.layers[-1].output_shape

    def _require_built(self) -> None:
        if not self.built:
            raise ValueError(
                "the model is not built yet: give the first layer input_shape=..., call "
                "build(), or call fit/predict first"
            )

    @property
    def variables(self) -> list[Variable]:
        return [v for layer in self.layers for v in layer.variables]

    @property
    def trainable_variables(self) -> list[Variable]:
        return [v for layer in self.layers for v in layer.trainable_variables]

    def count_params(self) -> int:
        self._require_built()
        return sum(layer.count_params() for layer in self.layers)

    def get_weights(self) -> list[np.ndarray]:
        """Every layer's weights, host copies, in Keras's order."""
        return [w for layer in self.layers for w in layer.get_weights()]

    def set_weights(self, weights: list) -> None:
        self._require_built()
        weights = list(weights)
        expected = sum(len(layer.variables) for layer in self.layers)
        if len(weights) != expected:
            raise ValueError(f"model expects {expected} weight arrays, got {len(weights)}")
        i = 0
        for layer in self.layers:
            n = len(layer.variables)
            layer.set_weights(weights[i : i + n])
            i += n

    def get_layer(self, name: str | None = None, index: int | None = None) -> Layer:
        if index is not None:
            return self.layers[index]
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise ValueError(f"no layer named {name!r}")

    # ----- compile -----
    def compile(self, optimizer="rmsprop", loss=None, metrics=None, device: str = "cpu") -> None:
        """Choose optimizer, loss, metrics and device ('cpu' or 'cuda')."""
        if loss is None:
            raise ValueError("compile() needs a loss, e.g. loss='categorical_crossentropy'")
        self.optimizer = optimizers_mod.get(optimizer)
        self.loss = losses_mod.get(loss)
        if metrics is None:
            metrics = []
        if isinstance(metrics, str):
            metrics = [metrics]
        self._requested_metrics = [str(m) if isinstance(m, str) else m for m in metrics]
        for m in self._requested_metrics:
            metrics_mod.resolve(m, self.loss.name, 2)  # validates the name early
        self.metric_names = [metrics_mod.display_name(m) for m in self._requested_metrics]
        self.set_device(device)
        if self.built:
            self._resolve_metrics()

    def set_device(self, device: str) -> None:
        ops = get_ops(device)
        self.device = device.lower()
        self.ops = ops
        for layer in self.layers:
            if layer.built:
                layer.to_backend(ops)
            else:
                layer.ops = ops
        if self.optimizer is not None and self.optimizer.slots:
            state = self.optimizer.get_state()
            self.optimizer.set_state(state, self.trainable_variables, ops)

    def _resolve_metrics(self) -> None:
        out_dim = self.output_shape[-1] if self.output_shape else 1
        self._metrics = [
            (display, metrics_mod.resolve(req, self.loss.name, out_dim))
            for display, req in zip(self.metric_names, self._requested_metrics)
        ]
        last = self.layers[-1]
        want = _FUSABLE.get(self.loss.name)
        self._fused = (
            not self.loss.from_logits
            and want is not None
            and last.fuses_activation_backward
            and last.activation == want
        )

    def _require_compiled(self) -> None:
        if self.loss is None or self.optimizer is None:
            raise RuntimeError("the model must be compiled first: call model.compile(...)")

    # ----- input checking -----
    def _check_x(self, x, what: str = "x") -> np.ndarray:
        arr = numeric_array(x, what)
        if not self.built:
            if arr.ndim < 2:
                raise ValueError(f"{what} must have a batch axis, got shape {arr.shape}")
            self.build((None, *arr.shape[1:]))
            if self.loss is not None:
                self._resolve_metrics()
        return model_inputs(arr, self.input_shape, self.layers[0], what)

    def _check_y(self, y, n: int, what: str = "y") -> np.ndarray:
        return model_targets(y, n, self.output_shape, self.loss.name, what)

    # ----- the core steps -----
    def _forward(self, xb, training: bool, last_linear: bool = False):
        """The model's output; with ``last_linear``, the last layer's output before its
        activation (the training step's loss then applies it, fused with itself)."""
        out, mask = xb, None
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            forward = layer.forward_linear if last_linear and i == last else layer.forward
            # Keras-style masks (Embedding(mask_zero=True) -> RNN): a layer with
            # ``supports_masking`` receives the mask; ``compute_mask`` gives the next one's.
            if mask is not None and layer.supports_masking:
                y = forward(out, training=training, mask=mask)
            else:
                y = forward(out, training=training)
            mask = layer.compute_mask(out, mask)
            out = y
        return out

    def _train_step(self, xb, yb):
        """One forward/backward/update; returns (the model's output, per-sample losses), both
        on the device. The loss applies a fused softmax or sigmoid itself where the last layer
        can leave it out (``forward_linear``): one GPU launch for softmax, losses and gradient."""
        ops = self.ops
        layers = self.layers
        fused = layers[-1].activation if self._fused else None
        defer = fused is not None and layers[-1].fuses_activation_forward
        out = self._forward(xb, training=True, last_linear=defer)
        per, grad = ops.loss_and_gradient(
            self.loss.name, out, yb, self.loss.from_logits, fused, apply_activation=defer
        )
        d = layers[-1].backward_linear(grad) if fused else layers[-1].backward(grad)
        absorbed = False  # the layer above applied this layer's activation backward already
        for i in range(len(layers) - 2, -1, -1):
            layer = layers[i]
            if absorbed:
                d, absorbed = layer.backward_linear(d), False
            elif _absorbs_below(layers, i):
                d = layer.backward_through_activation(layers[i - 1].activation, d)
                absorbed = True
            else:
                d = layer.backward(d)
        with ops.lasting_memory():  # optimizer slots and packed weights outlive the batch
            self.optimizer.apply_gradients(self.trainable_variables)
        return out, per

    def _fit_batch(self, x_host, y_host) -> tuple[np.ndarray, list[np.ndarray]]:
        """One training step on a host batch; returns its per-sample losses and metric values.
        On a GPU the batch's temporaries are the previous batch's device arrays again."""
        ops = self.ops
        with ops.batch_memory(), using_rng(self._training_rng()):
            xb = ops.asarray(x_host)
            yb = ops.asarray(y_host)
            out, per = self._train_step(xb, yb)
            return self._batch_logs(out, yb, y_host, per)

    def _training_rng(self) -> np.random.Generator:
        if self.rng is None:
            self.rng = np.random.default_rng(int(get_rng().integers(2**63)))
        return self.rng

    def _test_batch(self, x_host, y_host) -> tuple[np.ndarray, list[np.ndarray]]:
        """Per-sample losses and metric values of the inference-mode model on a host batch."""
        ops = self.ops
        with ops.batch_memory():
            xb = ops.asarray(x_host)
            yb = ops.asarray(y_host)
            return self._batch_logs(self._forward(xb, training=False), yb, y_host)

    def _predict_batch(self, x_host, training: bool = False) -> np.ndarray:
        """The model's output for a host batch, as a host array."""
        ops = self.ops
        with ops.batch_memory():
            return np.asarray(ops.to_numpy(self._forward(ops.asarray(x_host), training)))

    def _batch_logs(self, out, yb, host_y, per=None) -> tuple[np.ndarray, list[np.ndarray]]:
        """Per-sample losses (``per``, computed here when None) and metric values of one batch,
        on the host; ``host_y`` is yb's host copy (the metrics run on the host: on a GPU this
        saves a download per step)."""
        ops = self.ops
        if per is None:
            per = ops.loss_forward(self.loss.name, out, yb, self.loss.from_logits)
        per = ops.to_numpy(per)
        if not self._metrics:
            return per, []
        host_out = ops.to_numpy(out)
        pred = host_out
        if self.loss.from_logits:
            act = "sigmoid" if self.loss.name == "binary_crossentropy" else "softmax"
            pred = get_ops("cpu").activation_forward(act, host_out.astype(np.float32))
        return per, [metrics_mod.batch_values(m, host_y, pred) for _, m in self._metrics]

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
        initial_epoch: int = 0,
    ) -> History:
        """Train for ``epochs`` epochs (from ``initial_epoch``); returns a History."""
        self._require_compiled()
        batch_size = 32 if batch_size is None else positive_int(batch_size, "batch_size")
        self.fit_batch_size = batch_size
        epochs = positive_int(epochs, "epochs", minimum=0)
        initial_epoch = positive_int(initial_epoch, "initial_epoch", minimum=0)
        verbose = 1 if verbose == "auto" else int(verbose)
        x = self._check_x(x)
        self._resolve_metrics()
        y = self._check_y(y, len(x))
        x, y, val = self._validation_arrays(x, y, validation_split, validation_data)

        history = History()
        cbs = [*(callbacks or []), history]
        for cb in cbs:
            if not isinstance(cb, Callback):
                raise TypeError(f"callbacks must be edgemine Callbacks, got {type(cb).__name__}")
            cb.set_model(self)
            cb.params = {"epochs": epochs, "steps": math.ceil(len(x) / batch_size)}
        self.optimizer.build(self.trainable_variables, self.ops)
        self.stop_training = False
        n = len(x)
        steps = math.ceil(n / batch_size)
        for cb in cbs:
            cb.on_train_begin()
        for epoch in range(initial_epoch, epochs):
            for cb in cbs:
                cb.on_epoch_begin(epoch)
            if verbose:
                print(f"Epoch {epoch + 1}/{epochs}")
                sys.stdout.flush()
            bar = ProgressBar(steps, verbose)
            order = self._training_rng().permutation(n) if shuffle else np.arange(n)
            logs = self._fit_epoch(x, y, order, batch_size, cbs, bar)
            if val is not None:
                vlogs = self._evaluate_arrays(val[0], val[1], batch_size)
                logs.update({f"val_{k}": v for k, v in vlogs.items()})
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

    def _validation_arrays(self, x, y, validation_split, validation_data):
        """(x, y, (x_val, y_val) or None): Keras takes a validation_split from the tail of x and
        y, unshuffled."""
        if not isinstance(validation_split, (int, float, np.floating)) or isinstance(
            validation_split, bool
        ):
            raise ValueError(f"validation_split must be a number, got {validation_split!r}")
        if not 0.0 <= float(validation_split) < 1.0:
            raise ValueError(f"validation_split must be in [0, 1), got {validation_split}")
        val = None
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
                raise ValueError("validation_data must be a tuple (x_val, y_val)")
            vx = self._check_x(validation_data[0], "validation x")
            val = (vx, self._check_y(validation_data[1], len(vx), "validation y"))
        elif validation_split > 0:
            split = int(len(x) * (1.0 - validation_split))  # Keras takes the tail, unshuffled
            if split == 0 or split == len(x):
                raise ValueError("validation_split leaves no training or no validation samples")
            val = (x[split:], y[split:])
            x, y = x[:split], y[:split]
        return x, y, val

    def _fit_epoch(self, x, y, order, batch_size: int, cbs: list, bar: ProgressBar) -> dict:
        """Train on x[order] batch by batch; returns the epoch's running logs."""
        n = len(x)
        steps = math.ceil(n / batch_size)
        loss_sum = 0.0
        metric_sums = [0.0] * len(self._metrics)
        seen = 0
        logs: dict = {}
        for step in range(steps):
            idx = order[step * batch_size : (step + 1) * batch_size]
            for cb in cbs:
                cb.on_train_batch_begin(step)
            per, mvals = self._fit_batch(x[idx], y[idx])
            loss_sum += float(per.sum())
            seen += len(idx)
            for k, mv in enumerate(mvals):
                metric_sums[k] += float(mv.sum())
            logs = {"loss": loss_sum / seen}
            for k, (disp, _) in enumerate(self._metrics):
                logs[disp] = metric_sums[k] / seen
            for cb in cbs:
                cb.on_train_batch_end(step, {"loss": float(per.mean())})
            bar.update(step + 1, logs)
            if self.stop_training:
                break
        return logs

    def _evaluate_arrays(self, x, y, batch_size, bar: ProgressBar | None = None) -> dict:
        loss_sum = 0.0
        metric_sums = [0.0] * len(self._metrics)
        steps = math.ceil(len(x) / batch_size)
        logs: dict = {}
        for step in range(steps):
            sl = slice(step * batch_size, (step + 1) * batch_size)
            per, mvals = self._test_batch(x[sl], y[sl])
            loss_sum += float(per.sum())
            for k, mv in enumerate(mvals):
                metric_sums[k] += float(mv.sum())
            done = min((step + 1) * batch_size, len(x))
            logs = {"loss": loss_sum / done}
            for k, (disp, _) in enumerate(self._metrics):
                logs[disp] = metric_sums[k] / done
            if bar is not None:
                bar.update(step + 1, logs)
        if bar is not None:
            bar.finish(logs)
        return logs

    def evaluate(
        self,
        x=None,
        y=None,
        batch_size: int | None = None,
        verbose="auto",
        return_dict: bool = False,
    ):
        """Loss (and metrics) on (x, y): a float, a list [loss, *metrics], or a dict."""
        self._require_compiled()
        batch_size = 32 if batch_size is None else positive_int(batch_size, "batch_size")
        verbose = 1 if verbose == "auto" else int(verbose)
        x = self._check_x(x)
        self._resolve_metrics()
        y = self._check_y(y, len(x))
        bar = ProgressBar(math.ceil(len(x) / batch_size), verbose) if verbose else None
        logs = self._evaluate_arrays(x, y, batch_size, bar)
        if return_dict:
            return logs
        values = list(logs.values())
        return values[0] if len(values) == 1 else values

    def predict(self, x, batch_size: int | None = None, verbose=0) -> np.ndarray:
        """Model outputs for x, computed in batches (default 32)."""
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
        return np.concatenate(outs)

    def __call__(self, x, training: bool = False) -> np.ndarray:
        x = self._check_x(x)
        return self._predict_batch(x, training)

    def predict_on_batch(self, x) -> np.ndarray:
        x = self._check_x(x)
        return self._predict_batch(x)

    def train_on_batch(self, x, y, return_dict: bool = False):
        """One gradient step on one batch; returns the loss (and metrics) of that batch."""
        self._require_compiled()
        x = self._check_x(x)
        self._resolve_metrics()
        y = self._check_y(y, len(x))
        self.optimizer.build(self.trainable_variables, self.ops)
        return self._single_batch_result(*self._fit_batch(x, y), return_dict)

    def test_on_batch(self, x, y, return_dict: bool = False):
        self._require_compiled()
        x = self._check_x(x)
        self._resolve_metrics()
        y = self._check_y(y, len(x))
        return self._single_batch_result(*self._test_batch(x, y), return_dict)

    def _single_batch_result(self, per, mvals, return_dict):
        logs = {"loss": float(per.mean())}
        for (disp, _), mv in zip(self._metrics, mvals):
            logs[disp] = float(mv.mean())
        if return_dict:
            return logs
        values = list(logs.values())
        return values[0] if len(values) == 1 else values

    # ----- reporting and files -----
    def flops(self) -> int:
        """Forward FLOPs (2 per multiply-add) for one sample."""
        self._require_built()
        return int(sum(layer.flops() for layer in self.layers))

    def summary(self, print_fn=print) -> None:
        """Print a Keras-like table of layers, output shapes and parameter counts."""
        self._require_built()
        rows = [("Layer (type)", "Output Shape", "Param #")]
        for layer in self.layers:
            shape = "(None, " + ", ".join(str(d) for d in layer.output_shape) + ")"
            rows.append(
                (f"{layer.name} ({type(layer).__name__})", shape, f"{layer.count_params():,}")
            )
        w0 = max(len(r[0]) for r in rows) + 2
        w1 = max(len(r[1]) for r in rows) + 2
        width = w0 + w1 + 12
        print_fn(f'Model: "{self.name}"')
        print_fn("_" * width)
        print_fn(f"{rows[0][0]:<{w0}}{rows[0][1]:<{w1}}{rows[0][2]:>10}")
        print_fn("=" * width)
        for r in rows[1:]:
            print_fn(f"{r[0]:<{w0}}{r[1]:<{w1}}{r[2]:>10}")
        print_fn("=" * width)
        total = self.count_params()
        trainable = sum(math.prod(v.shape) for v in self.trainable_variables)
        print_fn(f"Total params: {total:,} ({total * 4 / 1024:.2f} KB)")
        print_fn(f"Trainable params: {trainable:,}")
        print_fn(f"Non-trainable params: {total - trainable:,}")
        print_fn(f"Forward FLOPs per sample: {self.flops():,}")
        print_fn("_" * width)

    def get_config(self) -> dict:
        return {
            "name": self.name,
            "layers": [
                {"class_name": type(layer).__name__, "config": layer.get_config()}
                for layer in self.layers
            ],
            "input_shape": None if self.input_shape is None else list(self.input_shape),
        }

    def save(self, filepath: str | os.PathLike, epoch: int | None = None) -> None:
        """Write a ``.edgemine`` file atomically: config, weights and optimizer state."""
        from .saving import save_model

        save_model(self, filepath, epoch=epoch)


def load_model(filepath: str | os.PathLike, compile: bool = True) -> Sequential:  # noqa: A002
    """Load a ``.edgemine`` file written by ``Sequential.save``."""
    from .saving import load_model as _load

    return _load(filepath, compile=compile)


__all__ = ["Sequential", "load_model"]
