"""The PyTorch twins of the seed models and the machine description, shared by the benchmarks
(tools/bench.py, tools/bench_onnx.py). PyTorch is a benchmark peer only: `pip install torch==2.13.0`.
"""

from __future__ import annotations

import platform
import subprocess


def machine() -> str:
    """The CPU model and core counts, from lscpu."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        info = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
        model = info.get("Model name", "?").strip()
        cpus = info.get("CPU(s)", "?").strip()
        cores = info.get("Core(s) per socket", "?").strip()
        sockets = info.get("Socket(s)", "?").strip()
        flags = set(info.get("Flags", "").split())
        simd = [f for f in ("avx2", "fma", "avx512f", "avx512_vnni", "asimd") if f in flags]
        return (
            f"{model}; {cpus} logical CPUs, {cores} core(s) per socket x {sockets} socket(s); "
            f"SIMD flags: {', '.join(simd) or 'none of avx2/avx512f/asimd'}"
        )
    except (OSError, subprocess.SubprocessError, ValueError):
        return platform.processor() or "unknown"


def torch_cnn(torch, softmax: bool = False):
    """The seed CNN in PyTorch (NCHW); logits unless ``softmax``."""
    nn = torch.nn
    layers = [
        nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(64, 64, 3), nn.ReLU(), nn.Flatten(),
        nn.Linear(576, 64), nn.ReLU(), nn.Linear(64, 10),
    ]  # fmt: skip
    return nn.Sequential(*layers, *([nn.Softmax(dim=1)] if softmax else []))


def torch_lstm(torch, softmax: bool = False):
    """The seed LSTM in PyTorch (Embedding, two LSTMs, two Linears); logits unless ``softmax``."""
    nn = torch.nn

    class SeedLSTM(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(10000, 64)
            self.lstm1 = nn.LSTM(64, 64, batch_first=True)
            self.lstm2 = nn.LSTM(64, 64, batch_first=True)
            self.fc1 = nn.Linear(64, 64)
            self.fc2 = nn.Linear(64, 10)

        def forward(self, x):
            h, _ = self.lstm1(self.emb(x))
            _, (h, _) = self.lstm2(h)
            out = self.fc2(torch.relu(self.fc1(h[-1])))
            return torch.softmax(out, dim=1) if softmax else out

    return SeedLSTM()


def copy_cnn_weights(torch, model, tmodel) -> None:
    """edgemine's seed CNN weights (Keras layouts) into ``torch_cnn``'s layers."""
    nn = torch.nn
    convs = [m for m in tmodel if isinstance(m, nn.Conv2d)]
    linears = [m for m in tmodel if isinstance(m, nn.Linear)]
    ems = [layer for layer in model.layers if type(layer).__name__ in ("Conv2D", "Dense")]
    with torch.no_grad():
        for conv, layer in zip(convs, ems[:3]):
            k, b = layer.get_weights()
            conv.weight.copy_(torch.from_numpy(k.transpose(3, 2, 0, 1).copy()))
            conv.bias.copy_(torch.from_numpy(b))
        k, b = ems[3].get_weights()  # Keras rows are (h, w, c); torch flattens (c, h, w)
        k = k.reshape(3, 3, 64, 64).transpose(2, 0, 1, 3).reshape(576, 64)
        linears[0].weight.copy_(torch.from_numpy(k.T.copy()))
        linears[0].bias.copy_(torch.from_numpy(b))
        k, b = ems[4].get_weights()
        linears[1].weight.copy_(torch.from_numpy(k.T.copy()))
        linears[1].bias.copy_(torch.from_numpy(b))


def copy_lstm_weights(torch, model, tmodel) -> None:
    """edgemine's seed LSTM weights into ``torch_lstm``: Keras gates i, f, c, o are torch's
    i, f, g, o; Keras has one bias per gate, so torch's second bias is zero."""
    emb, l1, l2, d1, d2 = model.layers
    with torch.no_grad():
        tmodel.emb.weight.copy_(torch.from_numpy(emb.get_weights()[0]))
        for lstm, layer in ((tmodel.lstm1, l1), (tmodel.lstm2, l2)):
            k, r, b = layer.get_weights()
            lstm.weight_ih_l0.copy_(torch.from_numpy(k.T.copy()))
            lstm.weight_hh_l0.copy_(torch.from_numpy(r.T.copy()))
            lstm.bias_ih_l0.copy_(torch.from_numpy(b))
            lstm.bias_hh_l0.zero_()
        for fc, layer in ((tmodel.fc1, d1), (tmodel.fc2, d2)):
            k, b = layer.get_weights()
            fc.weight.copy_(torch.from_numpy(k.T.copy()))
            fc.bias.copy_(torch.from_numpy(b))


__all__ = ["copy_cnn_weights", "copy_lstm_weights", "machine", "torch_cnn", "torch_lstm"]
