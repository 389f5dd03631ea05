"""Optimizers with Keras 3's defaults and update rules, applied by fused in-place kernels.

>>> opt = get("adam")
>>> opt.learning_rate
0.001
"""

from __future__ import annotations

import inspect
import math

import numpy as np

from .layers.base import SparseGradient, Variable


class _FlatPack:
    """Variables with dense gradients, packed into one flat buffer each for their values, their
    gradients and every optimizer slot: each variable's ``value``, ``grad_out`` and slots become
    views into these buffers. The layers' backward ops write the gradients into place, and one
    update kernel then covers every variable (as PyTorch's fused optimizers do): on a GPU each
    kernel launch costs tens of microseconds of host time, and the seed models have 10 weights.
    """

    def __init__(self, ops, variables: list[Variable], indices: list[int], slots: list[dict]):
        self.indices = indices
        self.variables = [variables[i] for i in indices]
        shapes = [v.shape for v in self.variables]
        ends = np.cumsum([math.prod(s) for s in shapes]).tolist()
        starts = [0, *ends[:-1]]

        def pack(arrays):
            host = np.concatenate([np.ravel(ops.to_numpy(a)).astype(np.float32) for a in arrays])
            flat = ops.asarray(host)
            return flat, [flat[a:b].reshape(s) for a, b, s in zip(starts, ends, shapes)]

        self.value, self.value_views = pack([v.value for v in self.variables])
        self.grad, self.grad_views = pack([np.zeros(s, np.float32) for s in shapes])
        self.slots = {}
        for name in slots[indices[0]]:
            self.slots[name], views = pack([slots[i][name] for i in indices])
            for i, view in zip(indices, views):
                slots[i][name] = view
        for v, value, grad in zip(self.variables, self.value_views, self.grad_views):
            v.value, v.grad_out = value, grad

    def intact(self) -> bool:
        """Every value is still its view (``set_weights`` rebinds values)."""
        return all(v.value is view for v, view in zip(self.variables, self.value_views))

    def ready(self) -> bool:
        """Intact, and every gradient of this step was written into its place."""
        return self.intact() and all(
            v.grad is view for v, view in zip(self.variables, self.grad_views)
        )

    def release(self) -> None:
        for v in self.variables:
            v.grad_out = None


class Optimizer:
    """Base class: keeps per-variable slots (keyed by position) and the step counter.

    After the first step, the variables with dense gradients are packed into flat buffers
    (``_FlatPack``) and updated by one kernel call per step; a step where any of their
    gradients is missing or was not written into place updates them one by one instead."""

    slot_names: tuple[str, ...] = ()
    #: slots that hold squares (Adam's v, RMSprop's ms): a negative value in a file is corrupt
    nonnegative_slots: tuple[str, ...] = ()

    def __init__(
        self,
        learning_rate: float = 0.001,
        name: str | None = None,
        weight_decay: float | None = None,
    ):
        self.learning_rate = learning_rate
        if weight_decay is not None and (not _finite_number(weight_decay) or weight_decay < 0):
            raise ValueError(f"weight_decay must be a non-negative number, got {weight_decay!r}")
        #: Keras 3's decoupled weight decay: each step first does p -= p * weight_decay * lr
        self.weight_decay = None if weight_decay is None else float(weight_decay)
        self.name = name or type(self).__name__.lower()
        self.iterations = 0
        self.slots: list[dict[str, object]] = []
        self._scratch: dict[int, object] = {}
        self._pack: _FlatPack | None = None

    @property
    def learning_rate(self) -> float:
        return self._lr

    @learning_rate.setter
    def learning_rate(self, value: float) -> None:
        value = float(value)
        if not np.isfinite(value) or value < 0:
            raise ValueError(f"learning_rate must be a non-negative number, got {value}")
        self._lr = value

    # Keras 2 name
    lr = learning_rate

    def build(self, variables: list[Variable], ops) -> None:
        if getattr(self, "ops", None) is not ops:
            self._scratch.clear()  # scratch tables live on the previous device
            self._unpack()
        self.ops = ops
        if len(self.slots) == len(variables):
            return
        self._unpack()
        self.slots = [{n: ops.zeros_like(v.value) for n in self.slot_names} for v in variables]

    def _unpack(self) -> None:
        if self._pack is not None:
            self._pack.release()
            self._pack = None

    def apply_gradients(self, variables: list[Variable]) -> None:
        """One update of every variable from its ``.grad``."""
        if len(self.slots) != len(variables):
            raise RuntimeError("optimizer was built for a different set of variables")
        self.iterations += 1
        pack = self._pack
        fused = pack is not None and pack.ready()
        decay = 1.0 - self.learning_rate * self.weight_decay if self.weight_decay else None
        if fused:
            if decay is not None:
                self.ops.scale_(pack.value, decay)
            self._apply_dense(pack.value, pack.grad, pack.slots)
        packed = set(pack.indices) if fused else ()
        for i, var in enumerate(variables):
            g = var.grad
            if g is None or i in packed:
                continue
            if decay is not None:
                self.ops.scale_(var.value, decay)
            if isinstance(g, SparseGradient):
                self._apply_sparse(i, var, g)
            else:
                self._apply_dense(var.value, g, self.slots[i])
        if not fused:
            self._repack(variables)

    def _repack(self, variables: list[Variable]) -> None:
        """Pack the variables that had dense gradients this step, unless the pack in place
        already holds them (a gradient that was not written into place does not repack)."""
        dense = [
            i
            for i, v in enumerate(variables)
            if v.grad is not None and not isinstance(v.grad, SparseGradient)
        ]
        pack = self._pack
        if not dense or (pack is not None and pack.indices == dense and pack.intact()):
            return
        self._unpack()
        self._pack = _FlatPack(self.ops, variables, dense, self.slots)

    def _apply_sparse(self, i: int, var: Variable, g: SparseGradient) -> None:
        # The dense-equivalent update through a persistent scratch table (allocated once).
        dense = self._scratch.get(i)
        if dense is None:
            dense = self._scratch[i] = self.ops.zeros_like(var.value)
        self.ops.scatter_rows(dense, g.rows, g.values)
        self._apply_dense(var.value, dense, self.slots[i])
        self.ops.clear_rows(dense, g.rows)

    def _apply_dense(self, p, g, slots) -> None:
        raise NotImplementedError  # abstract

    def get_config(self) -> dict:
        config = {"class_name": type(self).__name__, "learning_rate": self.learning_rate}
        if self.weight_decay is not None:
            config["weight_decay"] = self.weight_decay
        return config

    @classmethod
    def from_config(cls, config: dict) -> Optimizer:
        """The optimizer of a ``get_config()`` dict (without ``class_name``), every field
        checked: numbers are finite ints or floats, flags are booleans, unknown fields refused.

        >>> Adam.from_config({"learning_rate": 0.01, "epsilon": 1e-6}).epsilon
        1e-06
        """
        params = inspect.signature(cls.__init__).parameters
        for key, value in config.items():
            if key == "self" or key not in params:
                raise ValueError(f"{cls.__name__}: unknown field {key!r}")
            default = params[key].default
            if key == "name":
                ok, want = value is None or isinstance(value, str), "a string"
            elif isinstance(default, bool):
                ok, want = isinstance(value, bool), "true or false"
            else:
                ok, want = _finite_number(value), "a finite number"
            if not ok:
                raise ValueError(f"{cls.__name__}: {key} must be {want}, got {value!r:.60}")
        return cls(**config)

    def get_state(self) -> dict[str, np.ndarray]:
        """Slots and step counter as host arrays (for checkpoints)."""
        state = {"iterations": np.array(self.iterations, dtype=np.int64)}
        for i, slot in enumerate(self.slots):
            for name, arr in slot.items():
                state[f"{i}/{name}"] = np.asarray(self.ops.to_numpy(arr))
        return state

    def set_state(self, state: dict[str, np.ndarray], variables: list[Variable], ops) -> None:
        self.build(variables, ops)
        self._unpack()  # the slots below replace the packed ones
        self.iterations = int(state["iterations"])
        for i, slot in enumerate(self.slots):
            for name in slot:
                arr = state.get(f"{i}/{name}")
                if arr is None or tuple(arr.shape) != tuple(variables[i].shape):
                    raise ValueError(
                        f"optimizer state is missing or mis-shaped for slot {i}/{name}"
                    )
                slot[name] = ops.asarray(arr.astype(np.float32))


def _finite_number(value) -> bool:
    if type(value) not in (int, float):  # bools and strings are not numbers here
        return False
    try:
        return math.isfinite(float(value))
    except OverflowError:  # an int beyond float's range
        return False


def _check_epsilon(kind: str, epsilon) -> float:
    if not _finite_number(epsilon) or epsilon <= 0:
        raise ValueError(f"{kind} epsilon must be a finite positive number, got {epsilon!r}")
    return float(epsilon)


class SGD(Optimizer):
    """Gradient descent with optional (Nesterov) momentum: v = m*v - lr*g; p += v."""

    slot_names = ("velocity",)

    def __init__(
        self, learning_rate=0.01, momentum=0.0, nesterov=False, name=None, weight_decay=None
    ):
        super().__init__(learning_rate, name, weight_decay)
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"SGD momentum must be in [0, 1], got {momentum}")
        self.momentum = float(momentum)
        self.nesterov = bool(nesterov)

    def _apply_dense(self, p, g, slots):
        self.ops.sgd_update(
            p, g, slots["velocity"], self.learning_rate, self.momentum, self.nesterov
        )

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum, "nesterov": self.nesterov}


class Adam(Optimizer):
    """Adam (Kingma & Ba) as Keras writes it: lr_t = lr*sqrt(1-b2^t)/(1-b1^t),
    p -= lr_t * m / (sqrt(v) + epsilon)."""

    slot_names = ("m", "v")
    nonnegative_slots = ("v",)

    def __init__(
        self,
        learning_rate=0.001,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-7,
        name=None,
        weight_decay=None,
    ):
        super().__init__(learning_rate, name, weight_decay)
        for what, b in (("beta_1", beta_1), ("beta_2", beta_2)):
            if not 0.0 <= b < 1.0:
                raise ValueError(f"Adam {what} must be in [0, 1), got {b}")
        self.beta_1, self.beta_2 = float(beta_1), float(beta_2)
        self.epsilon = _check_epsilon("Adam", epsilon)

    def _lr_t(self):
        t = self.iterations
        return self.learning_rate * np.sqrt(1 - self.beta_2**t) / (1 - self.beta_1**t)

    def _apply_dense(self, p, g, slots):
        self.ops.adam_update(
            p, g, slots["m"], slots["v"], self._lr_t(), self.beta_1, self.beta_2, self.epsilon
        )

    def _apply_sparse(self, i, var, g):
        s = self.slots[i]
        self.ops.adam_update_sparse(
            var.value,
            g.rows,
            g.values,
            s["m"],
            s["v"],
            self._lr_t(),
            self.beta_1,
            self.beta_2,
            self.epsilon,
        )

    def get_config(self):
        return {
            **super().get_config(),
            "beta_1": self.beta_1,
            "beta_2": self.beta_2,
            "epsilon": self.epsilon,
        }


class AdamW(Adam):
    """Adam with decoupled weight decay, Keras 3's ``AdamW`` (default ``weight_decay=0.004``):
    each step p -= p * weight_decay * lr, then Adam's update.

    >>> AdamW().get_config()["weight_decay"]
    0.004
    """

    def __init__(
        self,
        learning_rate=0.001,
        weight_decay=0.004,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-7,
        name=None,
    ):
        super().__init__(learning_rate, beta_1, beta_2, epsilon, name, weight_decay)


class RMSprop(Optimizer):
    """RMSprop as Keras 3 writes it: ms = rho*ms + (1-rho)*g^2; p -= lr*g/sqrt(ms + eps)."""

    slot_names = ("ms", "mg", "momentum")
    nonnegative_slots = ("ms",)

    def __init__(
        self,
        learning_rate=0.001,
        rho=0.9,
        momentum=0.0,
        epsilon=1e-7,
        centered=False,
        name=None,
        weight_decay=None,
    ):
        super().__init__(learning_rate, name, weight_decay)
        if not 0.0 <= rho < 1.0:
            raise ValueError(f"RMSprop rho must be in [0, 1), got {rho}")
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"RMSprop momentum must be in [0, 1], got {momentum}")
        self.rho, self.momentum = float(rho), float(momentum)
        self.epsilon = _check_epsilon("RMSprop", epsilon)
        self.centered = bool(centered)

    def _apply_dense(self, p, g, slots):
        self.ops.rmsprop_update(
            p,
            g,
            slots["ms"],
            slots["mg"],
            slots["momentum"],
            self.learning_rate,
            self.rho,
            self.epsilon,
            self.momentum,
            self.centered,
        )

    def get_config(self):
        return {
            **super().get_config(),
            "rho": self.rho,
            "momentum": self.momentum,
            "epsilon": self.epsilon,
            "centered": self.centered,
        }


OPTIMIZERS = {"sgd": SGD, "adam": Adam, "adamw": AdamW, "rmsprop": RMSprop}


def get(identifier) -> Optimizer:
    """An optimizer from a name ('adam', 'sgd', 'rmsprop'), a config dict, or an instance."""
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, str):
        cls = OPTIMIZERS.get(identifier.lower())
        if cls is None:
            raise ValueError(
                f"unknown optimizer {identifier!r}; known: {', '.join(sorted(OPTIMIZERS))}"
            )
        return cls()
    if isinstance(identifier, dict):
        config = dict(identifier)
        name = str(config.pop("class_name", "")).lower()
        if name not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer class {name!r}")
        try:
            return OPTIMIZERS[name].from_config(config)
        except TypeError as e:
            raise ValueError(f"bad optimizer config: {e}") from None
    raise TypeError(f"optimizer must be a name or an edgemine Optimizer, got {identifier!r}")
