"""The PyTorch side of `cargo run --release -p nodulens-model --example layer_times`: each
layer of the shipped architecture alone, on the CPU, 192 images per batch (64 patches x 3
views), with as many threads as the machine has. Needs `pip install torch` (PyPI)."""
import os
import time

import torch
from torch import nn

torch.set_grad_enabled(False)
torch.set_num_threads(os.cpu_count() or 1)


def millis(f):
    for _ in range(3):
        f()
    runs = 20
    start = time.perf_counter()
    for _ in range(runs):
        f()
    return (time.perf_counter() - start) * 1000 / runs


images = 192
print(f"{images} images per batch; milliseconds per layer (PyTorch {torch.__version__}, {torch.get_num_threads()} threads)")
total = 0.0
for cin, cout, side in [(3, 16, 32), (16, 16, 32), (16, 32, 16), (32, 32, 16), (32, 64, 8), (64, 64, 8)]:
    conv = nn.Conv2d(cin, cout, 3, padding=1, bias=False).eval()
    norm = nn.BatchNorm2d(cout).eval()
    x = torch.rand(images, cin, side, side)
    y = torch.rand(images, cout, side, side)
    c, n, a = millis(lambda: conv(x)), millis(lambda: norm(y)), millis(lambda: torch.relu(y))
    # Each stage's second convolution (same width in and out) is followed by the pool.
    p = millis(lambda: nn.functional.max_pool2d(y, 2)) if cin == cout else 0.0
    total += c + n + a + p
    print(f"conv {cin:>2}->{cout:<2} @{side:<2}  conv {c:7.2f}  batch-norm {n:6.2f}  relu {a:6.2f}  max-pool {p:6.2f}")
print(f"all layers: {total:.1f} ms")
