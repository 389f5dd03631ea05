"""The training loop that every model shares: compile, fit, evaluate, predict and the
single-batch steps (Keras's ``Trainer``). A model class supplies the structure: ``_check_x``,
``_check_y``, ``_to_device``, ``_forward``, ``_train_step``, ``_resolve_metrics`` and its
variables (see :class:`edgemine.models.Model`).
"""

from __future__ import annotations

import math
import sys

import numpy as np

from .. import losses as losses_mod
from .. import metrics as metrics_mod
from .. import optimizers as optimizers_mod
from ..backend import get_ops
from ..callbacks import Callback, History, record_epoch
from ..model_inputs import positive_int
from ..progress import ProgressBar
from ..utils import get_rng, using_rng


class Trainer:
    """compile / fit / evaluate / predict / train_on_batch for a model class."""

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

    def _require_compiled(self) -> None:
        if self.loss is None or self.optimizer is None:
            raise RuntimeError("the model must be compiled first: call model.compile(...)")

    def _fit_batch(self, x_host, y_host) -> tuple[np.ndarray, list[np.ndarray]]:
        """One training step on a host batch; returns its per-sample losses and metric values.
        On a GPU the batch's temporaries are the previous batch's device arrays again."""
        ops = self.ops
        with ops.batch_memory(), using_rng(self._training_rng()):
            xb = self._to_device(x_host)
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
            xb = self._to_device(x_host)
            yb = ops.asarray(y_host)
            return self._batch_logs(self._forward(xb, training=False), yb, y_host)

    def _predict_batch(self, x_host, training: bool = False):
        """The model's output for a host batch, as a host array (a list of them for a model
        with several outputs)."""
        ops = self.ops
        with ops.batch_memory():
            out = self._forward(self._to_device(x_host), training, several=True)
            host = [np.asarray(ops.to_numpy(o)) for o in out]
        return host if len(host) > 1 else host[0]

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
        if isinstance(outs[0], list):  # several outputs
            return [np.concatenate(parts) for parts in zip(*outs)]
        return np.concatenate(outs)

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
