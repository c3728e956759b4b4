#!/usr/bin/env python3
"""PyTorch CPU throughput of the Nodulens classifiers, the reference for
`cargo bench -p nodulens-model` (crates/model/benches/throughput.rs).

The network is the same architecture as `nodulens_model::Net` (crates/model/src/lib.rs), built
from the sizes in models/manifest.json and loaded with the shipped weights (read straight from
the burnpack files), so both sides compute the same function on the same input:

  input [batch, views*channels, S, S] -> [batch*views, channels, S, S]
  3 stages of (3x3 conv 'same', no bias -> batch-norm -> ReLU) x 2 -> 2x2 max-pool, stride 2
  mean over the remaining grid -> [batch, views*width] -> dropout -> Linear -> ReLU
  -> dropout -> Linear -> one logit; sigmoid

Timed as on the Rust side: a batch of fixed pseudo-random patches in [0, 1] (the same
xorshift stream), warm-up first, then the whole call (a copy of the flat f32 input tensor,
forward, sigmoid, the probabilities back as a list) until the time is up. Threads: PyTorch's
default (one per core), as burn's rayon pool.

Two variants of the same network are timed: "eager" (plain nn.Module calls, PyTorch's default)
and "compile" (torch.compile with the inductor backend, which fuses batch-norm, ReLU and
pooling and generates C++ for them: the fastest PyTorch CPU path found on this machine; it
needs a C compiler and compiles for ~30 s first). --eager-only skips the second.

Usage: python3 scripts/bench_models_pytorch.py [--batch 64] [--seconds 5] [--eager-only]
       [--expect MODEL=p0,p1,...]   (Rust's first probabilities; exits 1 if they differ > 1e-4)
Needs `pip install torch` (the default PyPI wheel; only its CPU path is used).
"""

import argparse
import json
import struct
import sys
import time
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "models"


# --- burnpack reader: 10-byte header, CBOR metadata, 256-byte aligned tensor data ---------


def _cbor(buf, i=0):
    """Minimal CBOR decoder (the subset burnpack metadata uses)."""
    ib = buf[i]
    i += 1
    major, info = ib >> 5, ib & 31
    if major == 7:
        simple = {20: False, 21: True, 22: None}
        if info in simple:
            return simple[info], i
        size, fmt = {25: (2, ">e"), 26: (4, ">f"), 27: (8, ">d")}[info]
        return struct.unpack(fmt, buf[i : i + size])[0], i + size
    if info < 24:
        v = info
    else:
        n = {24: 1, 25: 2, 26: 4, 27: 8}[info]
        v, i = int.from_bytes(buf[i : i + n], "big"), i + n
    if major == 0:
        return v, i
    if major == 1:
        return -1 - v, i
    if major == 2:
        return bytes(buf[i : i + v]), i + v
    if major == 3:
        return buf[i : i + v].decode(), i + v
    if major == 4:
        out = []
        for _ in range(v):
            x, i = _cbor(buf, i)
            out.append(x)
        return out, i
    if major == 5:
        out = {}
        for _ in range(v):
            k, i = _cbor(buf, i)
            out[k], i = _cbor(buf, i)
        return out, i
    if major == 6:  # tag: the tagged value
        return _cbor(buf, i)
    raise ValueError(f"CBOR major type {major}")


def read_burnpack(path):
    data = path.read_bytes()
    magic, _version, meta_size = struct.unpack("<IHI", data[:10])
    if magic != 0x4255524E:
        raise ValueError(f"{path}: not a burnpack file")
    meta, _ = _cbor(data, 10)
    start = (10 + meta_size + 255) // 256 * 256
    tensors = {}
    for name, d in meta["tensors"].items():
        if d["dtype"] != "F32":
            raise ValueError(f"{path}: {name} is {d['dtype']}, expected F32")
        a, b = d["data_offsets"]
        flat = torch.frombuffer(bytearray(data[start + a : start + b]), dtype=torch.float32)
        tensors[name] = flat.reshape(d["shape"]).clone()
    return tensors


# --- the architecture -----------------------------------------------------------------------


class Stage(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, padding="same", bias=False)
        self.bn1 = nn.BatchNorm2d(cout, eps=1e-5, momentum=0.1)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding="same", bias=False)
        self.bn2 = nn.BatchNorm2d(cout, eps=1e-5, momentum=0.1)
        self.pool = nn.MaxPool2d(2, stride=2)

    def forward(self, x):
        x = torch.relu(self.bn1(self.conv1(x)))
        x = torch.relu(self.bn2(self.conv2(x)))
        return self.pool(x)


class Net(nn.Module):
    def __init__(self, views, channels, widths, hidden, dropout):
        super().__init__()
        self.views, self.channels = views, channels
        w1, w2, w3 = widths
        self.stage1 = Stage(channels, w1)
        self.stage2 = Stage(w1, w2)
        self.stage3 = Stage(w2, w3)
        self.dropout = nn.Dropout(dropout)
        self.fc1 = nn.Linear(views * w3, hidden)
        self.fc2 = nn.Linear(hidden, 1)

    def forward(self, x):
        b, _, h, w = x.shape
        x = x.reshape(b * self.views, self.channels, h, w)
        x = self.stage3(self.stage2(self.stage1(x)))
        x = x.mean(dim=(2, 3)).reshape(b, -1)
        x = torch.relu(self.fc1(self.dropout(x)))
        return self.fc2(self.dropout(x))

    def load_burn(self, tensors):
        """Burn names map one to one; Linear weights are [in, out] in burn, [out, in] here."""
        state = {}
        for name, t in tensors.items():
            name = name.replace(".gamma", ".weight").replace(".beta", ".bias")
            if name.startswith("fc") and name.endswith(".weight"):
                t = t.t().contiguous()
            state[name] = t
        missing, unexpected = self.load_state_dict(state, strict=False)
        missing = [m for m in missing if not m.endswith("num_batches_tracked")]
        if missing or unexpected:
            raise ValueError(f"weights do not fit: missing {missing}, unexpected {unexpected}")


def xorshift_patches(n):
    """The bench's input: xorshift64 (13, 7, 17), top 24 bits / 2^24."""
    mask = (1 << 64) - 1
    s = 0x9E3779B97F4A7C15
    out = [0.0] * n
    scale = 1.0 / (1 << 24)
    for k in range(n):
        s ^= (s << 13) & mask
        s ^= s >> 7
        s ^= (s << 17) & mask
        out[k] = (s >> 40) * scale
    return out


def measure(kind, variant, model, base, shape, args, expect):
    """Checks `model` against Rust's probabilities, then times it; prints the figures."""
    ok = True

    def predict():
        x = base.clone().reshape(shape)
        return torch.sigmoid(model(x)).reshape(-1).tolist()

    with torch.inference_mode():
        p = predict()
        if kind in expect:
            diff = max(abs(a - b) for a, b in zip(p, expect[kind]))
            verdict = "same" if diff <= 1e-4 else "DIFFERENT"
            print(
                f"{kind} ({variant}): max |p_torch - p_rust| over {len(expect[kind])} patches "
                f"{diff:.2e} ({verdict})"
            )
            ok &= diff <= 1e-4
        warm = time.perf_counter()
        n = 0
        while n < 3 or (time.perf_counter() - warm < 1.0 and n < 50):
            predict()
            n += 1
        times = []
        start = time.perf_counter()
        while len(times) < 10 or time.perf_counter() - start < args.seconds:
            t = time.perf_counter()
            predict()
            times.append(time.perf_counter() - t)
    mean = len(times) * args.batch / sum(times)
    times.sort()
    median = args.batch / times[len(times) // 2]
    print(
        f"{kind:<10} torch {variant:<7} {mean:>8.0f} patches/s (median batch {median:.0f} "
        f"patches/s, {1000 * args.batch / median:.2f} ms; {len(times)} batches)"
    )
    print(
        f"PYTORCH_BENCH model={kind} variant={variant} batch={args.batch} "
        f"patches_per_s={mean:.1f} median_patches_per_s={median:.1f}"
    )
    return ok


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--expect", action="append", default=[], metavar="MODEL=P0,P1,...")
    ap.add_argument("--eager-only", action="store_true", help="skip the torch.compile variant")
    args = ap.parse_args()
    expect = {}
    for e in args.expect:
        k, v = e.split("=", 1)
        expect[k] = [float(x) for x in v.split(",") if x]

    manifest = json.loads((MODELS / "manifest.json").read_text())
    torch.manual_seed(0)
    print(
        f"torch {torch.__version__}, batch {args.batch}, {torch.get_num_threads()} threads, "
        f"{args.seconds} s per measurement"
    )
    ok = True
    for entry in manifest["models"]:
        kind, arch = entry["kind"], entry["architecture"]
        net = Net(arch["views"], arch["channels"], arch["widths"], arch["hidden"], arch["dropout"])
        net.load_burn(read_burnpack(MODELS / entry["file"]))
        net.eval()
        # burn counts batch-norm running statistics as parameters, as the manifest does.
        n_params = sum(p.numel() for p in net.parameters()) + sum(
            b.numel() for n, b in net.named_buffers() if not n.endswith("num_batches_tracked")
        )
        if n_params != entry["params"]:
            print(f"{kind}: {n_params} parameters, the manifest says {entry['params']}")
            ok = False
        size = arch["patch_size"]
        per_patch = arch["views"] * arch["channels"] * size * size
        shape = (args.batch, arch["views"] * arch["channels"], size, size)
        # The flat f32 input, made once (as the Rust side holds a &[f32]); each call copies
        # it, as `Classifier::predict` copies its slice into the tensor.
        base = torch.tensor(xorshift_patches(args.batch * per_patch), dtype=torch.float32)

        variants = [("eager", net)]
        if not args.eager_only:
            variants.append(("compile", torch.compile(net)))
        for variant, model in variants:
            ok &= measure(kind, variant, model, base, shape, args, expect)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
