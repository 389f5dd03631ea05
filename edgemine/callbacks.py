"""Keras-style callbacks: EarlyStopping, ModelCheckpoint, ReduceLROnPlateau,
LearningRateScheduler, TerminateOnNaN, CSVLogger, and the History that fit returns."""

from __future__ import annotations

import csv
import math
import os
import sys
import warnings
from pathlib import Path

import numpy as np

from .saving._format import MAX_HISTORY_EPOCHS, MAX_HISTORY_KEYS


class Callback:
    """Base class; ``self.model`` is set by fit before training starts."""

    def __init__(self):
        self.model = None
        self.params: dict = {}

    def set_model(self, model) -> None:
        self.model = model

    def on_train_begin(self, logs=None): ...
    def on_train_end(self, logs=None): ...
    def on_epoch_begin(self, epoch, logs=None): ...
    def on_epoch_end(self, epoch, logs=None): ...
    def on_train_batch_begin(self, batch, logs=None): ...
    def on_train_batch_end(self, batch, logs=None): ...


class History(Callback):
    """Records each epoch's logs: ``history.history['loss']``."""

    def __init__(self):
        super().__init__()
        self.history: dict[str, list[float]] = {}
        self.epoch: list[int] = []

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for k, v in (logs or {}).items():
            self.history.setdefault(k, []).append(v)


def record_epoch(log: dict[str, list], logs: dict) -> None:
    """Append one epoch's ``logs`` to a model's stored history ``log`` (``model.history_log``),
    keeping every list the same length: a log new to the history gets None for the earlier
    epochs, a log this epoch lacks gets None, and so does a NaN or infinite value (a diverged
    loss: model files hold finite numbers only). Only the last MAX_HISTORY_EPOCHS epochs and
    the first MAX_HISTORY_KEYS logs are kept, so that the model file stays small.

    >>> log = {}
    >>> record_epoch(log, {"loss": 0.5})
    >>> record_epoch(log, {"loss": float("nan"), "val_loss": 0.7})
    >>> log
    {'loss': [0.5, None], 'val_loss': [None, 0.7]}
    """
    n = len(next(iter(log.values()))) if log else 0
    for key in logs:
        if key not in log and len(log) < MAX_HISTORY_KEYS:
            log[key] = [None] * n
    for key, values in log.items():
        value = logs.get(key)
        finite = value is not None and math.isfinite(float(value))
        values.append(float(value) if finite else None)
        del values[:-MAX_HISTORY_EPOCHS]


def _monitor_mode(monitor: str, mode: str) -> str:
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"mode must be 'auto', 'min' or 'max', got {mode!r}")
    if mode != "auto":
        return mode
    if monitor.endswith("loss"):  # an output's loss too ("val_accuracy_head_loss")
        return "min"
    return "max" if ("acc" in monitor or monitor.endswith("auc")) else "min"


class _Monitor(Callback):
    def __init__(self, monitor: str, mode: str, min_delta: float = 0.0):
        super().__init__()
        self.monitor = monitor
        self.mode = _monitor_mode(monitor, mode)
        self.min_delta = abs(min_delta)
        self.best = math.inf if self.mode == "min" else -math.inf

    def _improved(self, value: float) -> bool:
        return self._beats(value, self.best)

    def _beats(self, value: float, reference: float | None) -> bool:
        """Whether ``value`` improves on ``reference`` by more than min_delta (None: yes)."""
        if reference is None:
            return True
        if self.mode == "min":
            return value < reference - self.min_delta
        return value > reference + self.min_delta

    def _value(self, logs) -> float | None:
        value = (logs or {}).get(self.monitor)
        if value is None:
            known = ", ".join(sorted(logs or {}))
            print(
                f"{type(self).__name__}: metric {self.monitor!r} is not available "
                f"(available: {known})",
                file=sys.stderr,
            )
        return value


class EarlyStopping(_Monitor):
    """Stop when ``monitor`` has not improved for ``patience`` epochs, as Keras 3 does:
    epochs before ``start_from_epoch`` are not watched; with a ``baseline``, only an epoch
    that beats it restarts the wait; with ``restore_best_weights`` the best epoch's weights
    are put back when training ends (stopped early or not)."""

    def __init__(
        self,
        monitor="val_loss",
        min_delta=0.0,
        patience=0,
        verbose=0,
        mode="auto",
        baseline=None,
        restore_best_weights=False,
        start_from_epoch=0,
    ):
        super().__init__(monitor, mode, min_delta)
        self.patience = int(patience)
        self.verbose = verbose
        self.baseline = baseline
        self.restore_best_weights = restore_best_weights
        self.start_from_epoch = int(start_from_epoch)

    def on_train_begin(self, logs=None):
        self.wait = 0
        self.stopped_epoch = 0
        self.best = None
        self.best_weights = None
        self.best_epoch = 0

    def on_epoch_end(self, epoch, logs=None):
        value = self._value(logs)
        if value is None or epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights, self.best_epoch = self.model.get_weights(), epoch
        self.wait += 1
        if self._beats(value, self.best):
            self.best, self.best_epoch = value, epoch
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            if self.baseline is None or self._beats(value, self.baseline):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.stopped_epoch > 0 and self.verbose:
            print(f"Epoch {self.stopped_epoch + 1}: early stopping")
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose:
                print(
                    f"Restoring model weights from the end of the best epoch: {self.best_epoch + 1}."
                )
            self.model.set_weights(self.best_weights)


class ModelCheckpoint(_Monitor):
    """Save the model, or with ``save_weights_only`` its weights (a Keras 3 ``.weights.h5``
    file), after each epoch; atomically either way.

    ``filepath`` may hold format fields, as in Keras: ``"ckpt-{epoch:02d}-{val_loss:.2f}.edgemine"``.
    With ``save_best_only``, only an epoch whose ``monitor`` beats the best so far (or
    ``initial_value_threshold``) saves; a missing ``monitor`` saves with a warning, as in Keras.
    A whole-model checkpoint records the epoch, the optimizer state and the model's random
    generators, so ``edgemine train --resume`` / ``fit(initial_epoch=...)`` continues where it
    stopped and draws the shuffles and dropout masks the uninterrupted run would have drawn.
    Each save removes the temporary file an interrupted earlier save of the same path left.
    """

    def __init__(
        self,
        filepath,
        monitor="val_loss",
        verbose=0,
        save_best_only=False,
        save_weights_only=False,
        mode="auto",
        save_freq="epoch",
        initial_value_threshold=None,
    ):
        super().__init__(monitor, mode)
        if save_freq != "epoch":
            raise ValueError("ModelCheckpoint supports save_freq='epoch' only")
        self.filepath = os.fspath(filepath)
        if save_weights_only and not self.filepath.endswith(".weights.h5"):
            raise ValueError(
                "When using save_weights_only=True in ModelCheckpoint, the filepath must end "
                f"in .weights.h5 (Keras's weights format); got {self.filepath!r}"
            )
        self.verbose = verbose
        self.save_best_only = save_best_only
        self.save_weights_only = save_weights_only
        self.initial_value_threshold = initial_value_threshold
        self.best = initial_value_threshold

    def _path(self, epoch: int, logs: dict) -> str:
        try:
            return self.filepath.format(epoch=epoch + 1, **logs)
        except (KeyError, IndexError, ValueError) as e:
            raise KeyError(
                f'Failed to format this callback filepath: "{self.filepath}". Reason: {e!r} '
                f"(the logs hold {sorted(logs)})"
            ) from None

    def _should_save(self, epoch: int, logs: dict) -> bool:
        if not self.save_best_only:
            return True
        value = logs.get(self.monitor)
        if value is None:
            warnings.warn(f"Can save best model only with {self.monitor} available.", stacklevel=3)
            return True
        if self.best is not None and not self._improved(value):
            if self.verbose:
                print(f"Epoch {epoch + 1}: {self.monitor} did not improve from {self.best:.5f}")
            return False
        self.best = value
        return True

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        path = self._path(epoch, logs)
        if not self._should_save(epoch, logs):
            return
        if self.save_weights_only:
            self.model.save_weights(path)
        else:
            self.model.save(path, epoch=epoch + 1)
        if self.verbose:
            print(f"Epoch {epoch + 1}: finished saving model to {path}")


class ReduceLROnPlateau(_Monitor):
    """Multiply the learning rate by ``factor`` after ``patience`` epochs without improvement."""

    def __init__(
        self,
        monitor="val_loss",
        factor=0.1,
        patience=10,
        verbose=0,
        mode="auto",
        min_delta=1e-4,
        cooldown=0,
        min_lr=0.0,
    ):
        super().__init__(monitor, mode, min_delta)
        if not 0.0 < factor < 1.0:
            raise ValueError(f"ReduceLROnPlateau factor must be in (0, 1), got {factor}")
        self.factor, self.patience, self.verbose = factor, patience, verbose
        self.cooldown, self.min_lr = cooldown, min_lr
        self.wait = self.cooldown_counter = 0

    def on_epoch_end(self, epoch, logs=None):
        value = self._value(logs)
        if logs is not None:
            logs["learning_rate"] = self.model.optimizer.learning_rate
        if value is None:
            return
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.wait = 0
        if self._improved(value):
            self.best = value
            self.wait = 0
            return
        if self.cooldown_counter > 0:
            return
        self.wait += 1
        if self.wait >= self.patience:
            old = self.model.optimizer.learning_rate
            new = max(old * self.factor, self.min_lr)
            if new < old:
                self.model.optimizer.learning_rate = new
                if self.verbose:
                    print(f"Epoch {epoch + 1}: ReduceLROnPlateau reducing learning rate to {new:g}")
            self.cooldown_counter = self.cooldown
            self.wait = 0


class LearningRateScheduler(Callback):
    """Set the learning rate at each epoch start from ``schedule(epoch, lr)``."""

    def __init__(self, schedule, verbose=0):
        super().__init__()
        self.schedule = schedule
        self.verbose = verbose

    def on_epoch_begin(self, epoch, logs=None):
        lr = self.schedule(epoch, self.model.optimizer.learning_rate)
        if not isinstance(lr, (float, int, np.floating, np.integer)) or not np.isfinite(lr):
            raise ValueError(f"LearningRateScheduler: schedule returned {lr!r}, not a number")
        self.model.optimizer.learning_rate = float(lr)
        if self.verbose:
            print(f"Epoch {epoch + 1}: LearningRateScheduler setting learning rate to {lr:g}")


class TerminateOnNaN(Callback):
    """Stop training as soon as a batch loss is NaN or infinite."""

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not np.isfinite(loss):
            print(f"Batch {batch}: invalid loss, terminating training")
            self.model.stop_training = True


class CSVLogger(Callback):
    """Append each epoch's logs as a CSV row (flushed per epoch, so a crash loses nothing)."""

    def __init__(self, filename, separator=",", append=False):
        super().__init__()
        self.filename = Path(filename)
        self.sep = separator
        self.append = append
        self._file = None
        self._writer = None

    def on_train_begin(self, logs=None):
        exists = self.filename.exists() and self.filename.stat().st_size > 0
        self._has_header = self.append and exists
        self._file = open(self.filename, "a" if self.append else "w", newline="")  # noqa: SIM115
        self._writer = None

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self._writer is None:
            self._keys = sorted(logs)
            self._writer = csv.writer(self._file, delimiter=self.sep)
            if not self._has_header:
                self._writer.writerow(["epoch", *self._keys])
        self._writer.writerow([epoch, *(logs.get(k, "NA") for k in self._keys)])
        self._file.flush()

    def on_train_end(self, logs=None):
        if self._file is not None:
            self._file.close()
            self._file = None
