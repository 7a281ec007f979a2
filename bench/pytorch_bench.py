"""PyTorch side of `cargo xtask bench`: times one workload and prints one JSON line.

Usage: python pytorch_bench.py WORKLOAD --threads 2 --layout channels_last --repeats 7 (by hand; xtask adds --serve)
Workloads mirror Petal's: keras_mnist_train, keras_mnist_infer, mnist_same_train,
flowers_train, mobilenet_v2_infer, resnet18_infer (torchvision), efficientnet_lite0_infer
(defined below: torchvision has no Lite variant), gemm2048. Rates (images/s; GFLOP/s for gemm2048) are medians over `repeats` timed rounds after warm-up;
data is random and already in memory. keras_mnist_to_99 (needs --mnist, the folder of the four MNIST IDX .gz files)
trains the Keras MNIST CNN on the real digits until 99.0% test accuracy, evaluated after every epoch, once, with
--seed, and reports the seconds of the whole run (evaluations included) and its epochs: xtask alternates the seeds of the
two libraries. Every result carries the process's peak RSS.
--precision bf16 runs a network workload's forward pass (and loss) under torch.autocast("cpu", dtype=torch.bfloat16),
the backward pass and the optimizer as autocast leaves them (fp32 weights and state).

--serve (how xtask runs it, so that the two libraries alternate round by round): after building the workload, warming
up and finding how many calls make a round, prints {"ready": true, "calls": N}; then each stdin line "round" times one
round and prints {"rate": R} (images/s, or GFLOP/s for gemm2048), and "done" (or the end of stdin) prints
{"peak_rss_mb": M} and exits.
"""
import argparse
import contextlib
import gzip
import json
import os
import resource
import statistics
import sys
import time

import numpy as np

import torch
from torch import nn


def keras_mnist():
    return nn.Sequential(
        nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Dropout(0.5), nn.Linear(64 * 5 * 5, 10))


def mnist_same():
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * 7 * 7, 128), nn.ReLU(), nn.Dropout(0.5), nn.Linear(128, 10))


def flowers():
    layers, channels = [], 3
    for filters in (32, 64, 128, 128):
        layers += [nn.Conv2d(channels, filters, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
        channels = filters
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(128 * 8 * 8, 128), nn.ReLU(), nn.Linear(128, 3))


def efficientnet_lite0():
    """EfficientNet-Lite0: the B0 stages without squeeze-excitation, ReLU6, fixed 32-channel
    stem and 1280-channel head (4,652,008 parameters)."""
    def conv_bn(cin, cout, kernel, stride=1, groups=1, act=True):
        layers = [nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
        return layers + [nn.ReLU6()] if act else layers

    class MBConv(nn.Module):
        def __init__(self, cin, cout, expand, kernel, stride):
            super().__init__()
            mid = cin * expand
            layers = conv_bn(cin, mid, 1) if expand != 1 else []
            layers += conv_bn(mid, mid, kernel, stride, groups=mid) + conv_bn(mid, cout, 1, act=False)
            self.body = nn.Sequential(*layers)
            self.residual = stride == 1 and cin == cout

        def forward(self, x):
            return x + self.body(x) if self.residual else self.body(x)

    stages = [(1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3),
              (6, 5, 1, 112, 3), (6, 5, 2, 192, 4), (6, 3, 1, 320, 1)]
    layers, channels = conv_bn(3, 32, 3, 2), 32
    for expand, kernel, stride, out, repeats in stages:
        for i in range(repeats):
            layers.append(MBConv(channels, out, expand, kernel, stride if i == 0 else 1))
            channels = out
    layers += conv_bn(channels, 1280, 1) + [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(1280, 1000)]
    return nn.Sequential(*layers)


def torchvision_model(name):
    def build():
        import torchvision
        return getattr(torchvision.models, name)()
    return build


WORKLOADS = {
    # name: (model, input (c, h, w), classes, batch, train)
    "keras_mnist_train": (keras_mnist, (1, 28, 28), 10, 128, True),
    "keras_mnist_infer": (keras_mnist, (1, 28, 28), 10, 128, False),
    "mnist_same_train": (mnist_same, (1, 28, 28), 10, 128, True),
    "flowers_train": (flowers, (3, 128, 128), 3, 32, True),
    "mobilenet_v2_infer": (torchvision_model("mobilenet_v2"), (3, 224, 224), 1000, 16, False),
    "resnet18_infer": (torchvision_model("resnet18"), (3, 224, 224), 1000, 16, False),
    "efficientnet_lite0_infer": (efficientnet_lite0, (3, 224, 224), 1000, 16, False),
}


def calls_per_round(step, min_seconds):
    """Warms up, then doubles the calls until they take a quarter of `min_seconds`."""
    for _ in range(3):
        step()
    calls = 1
    while True:
        start = time.perf_counter()
        for _ in range(calls):
            step()
        if time.perf_counter() - start >= min_seconds / 4:
            return calls
        calls *= 2


def round_rate(step, calls, units):
    """Units per second over one round of `calls` steps, each doing `units`."""
    start = time.perf_counter()
    for _ in range(calls):
        step()
    return units * calls / (time.perf_counter() - start)


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def time_to_99(folder, layout, seed):
    def split(prefix):
        images = read_idx(os.path.join(folder, f"{prefix}-images-idx3-ubyte.gz"))
        labels = read_idx(os.path.join(folder, f"{prefix}-labels-idx1-ubyte.gz"))
        x = torch.from_numpy(images.astype(np.float32) / 255.0).unsqueeze(1)
        return x.to(memory_format=memory_format), torch.from_numpy(labels.astype(np.int64))

    memory_format = torch.channels_last if layout == "channels_last" else torch.contiguous_format
    (x_train, y_train), (x_test, y_test) = split("train"), split("t10k")
    torch.manual_seed(seed)
    model = keras_mnist().to(memory_format=memory_format)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    start = time.perf_counter()
    for epoch in range(1, 31):
        model.train()
        for batch in torch.randperm(len(x_train)).split(128):
            optimizer.zero_grad(set_to_none=True)
            loss_fn(model(x_train[batch]), y_train[batch]).backward()
            optimizer.step()
        model.eval()
        with torch.inference_mode():
            predicted = torch.cat([model(x).argmax(1) for x in x_test.split(1000)])
        accuracy = (predicted == y_test).float().mean().item()
        if accuracy >= 0.99:
            break
    else:
        raise SystemExit(f"seed {seed}: test accuracy {accuracy:.4f} after 30 epochs, below 0.99")
    return {"seconds": time.perf_counter() - start, "epochs": epoch, "test_accuracy": accuracy}


def workload_step(name, layout, precision):
    """The step of workload `name` and the units one step does (images, or GFLOP)."""
    if name == "gemm2048":
        a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
        return (lambda: a @ b), 2 * 2048 ** 3 / 1e9
    build, shape, classes, batch, train = WORKLOADS[name]
    torch.manual_seed(0)
    model = build()
    memory_format = torch.channels_last if layout == "channels_last" else torch.contiguous_format
    model = model.to(memory_format=memory_format)
    x = torch.rand(batch, *shape).to(memory_format=memory_format)
    y = torch.randint(0, classes, (batch,))
    if precision == "bf16":
        def autocast():
            return torch.autocast("cpu", dtype=torch.bfloat16)
    else:
        autocast = contextlib.nullcontext
    if train:
        model.train()
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        loss_fn = nn.CrossEntropyLoss()

        def step():
            optimizer.zero_grad(set_to_none=True)
            with autocast():
                loss = loss_fn(model(x), y)
            loss.backward()
            optimizer.step()
    else:
        model.eval()

        def step():
            with torch.inference_mode(), autocast():
                model(x)
    return step, batch


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def serve(step, units, min_seconds):
    """Times one round per "round" line on stdin (see the module docs)."""
    calls = calls_per_round(step, min_seconds)
    print(json.dumps({"ready": True, "calls": calls}), flush=True)
    for line in sys.stdin:
        request = line.strip()
        if request == "done":
            break
        if request != "round":
            raise SystemExit(f"unknown request {request!r}: expected 'round' or 'done'")
        print(json.dumps({"rate": round_rate(step, calls, units)}), flush=True)
    print(json.dumps({"peak_rss_mb": peak_rss_mb()}), flush=True)


def run(step, units, repeats, min_seconds):
    """Median and best rate over `repeats` rounds: the script run by hand, without --serve."""
    calls = calls_per_round(step, min_seconds)
    rates = [round_rate(step, calls, units) for _ in range(repeats)]
    return {"rate_median": statistics.median(rates), "rate_best": max(rates)}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("workload")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--layout", default="channels_last", choices=["channels_last", "contiguous"])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--min-seconds", type=float, default=2.0)
    parser.add_argument("--mnist", help="folder of the MNIST IDX .gz files (keras_mnist_to_99)")
    parser.add_argument("--precision", default="f32", choices=["f32", "bf16"])
    parser.add_argument("--seed", type=int, default=0, help="the seed of keras_mnist_to_99's run")
    parser.add_argument("--serve", action="store_true", help="time one round per 'round' line on stdin")
    args = parser.parse_args()
    if args.precision == "bf16" and args.workload in ("keras_mnist_to_99", "gemm2048"):
        raise SystemExit(f"{args.workload} runs in f32 only")
    torch.set_num_threads(args.threads)
    if args.workload == "keras_mnist_to_99":
        if args.serve:
            raise SystemExit("keras_mnist_to_99 is one whole run per seed: it has no rounds to serve")
        if not args.mnist:
            raise SystemExit("keras_mnist_to_99 needs --mnist FOLDER")
        result = time_to_99(args.mnist, args.layout, args.seed)
    else:
        step, units = workload_step(args.workload, args.layout, args.precision)
        if args.serve:
            return serve(step, units, args.min_seconds)
        result = run(step, units, args.repeats, args.min_seconds)
    result.update(workload=args.workload, layout=args.layout, precision=args.precision, threads=args.threads,
                  torch=torch.__version__,
                  peak_rss_mb=peak_rss_mb())
    print(json.dumps(result))


if __name__ == "__main__":
    main()
