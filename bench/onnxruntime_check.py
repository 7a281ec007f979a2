"""Petal's ONNX export checked and timed in onnxruntime.

For each model, `cargo xtask onnx-peer` (Petal's side) loads it, writes its ONNX file
(NCHW input, batch norms folded) and then answers commands on stdin. This script runs
the file in onnxruntime and
- compares the logits with Petal's on the same probe batch: max |ort - petal| / max |petal|;
- times inference of both at each batch size, alternating one Petal run with one
  onnxruntime run (which goes first alternates too) after warm-up; prints the medians.

Petal's time is measured inside the peer around `Model::predict` (the folded model);
onnxruntime's around `InferenceSession.run`. Inputs are built before timing on both sides.

Setup:
    python3 -m venv /tmp/ort-venv && /tmp/ort-venv/bin/pip install onnxruntime numpy
    cargo build --release -p xtask
    PETAL_WEIGHTS=../shared/weights /tmp/ort-venv/bin/python bench/onnxruntime_check.py \
        --xtask target/release/xtask --threads 2 --runs 10 --json bench/onnxruntime_check.json

Weights: ResNet18 and MobileNetV2 from ../shared/fixtures/zoo (seeded random torchvision
weights), EfficientNet-Lite0 from $PETAL_WEIGHTS.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import onnxruntime as ort

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = os.path.join(HERE, "..", "..", "shared")


def default_weights(arch):
    if arch == "efficientnet-lite0":
        folder = os.environ.get("PETAL_WEIGHTS", os.path.join(SHARED, "weights"))
        return os.path.join(folder, "efficientnet_lite0.safetensors")
    return os.path.join(SHARED, "fixtures", "zoo", arch + ".safetensors")


def probe_batch(n, sample):
    """The peer's probe batch (NHWC): value i is (i * 7919 % 2003) / 1001.5 - 1."""
    count = n * int(np.prod(sample))
    i = np.arange(count, dtype=np.int64)
    values = ((i * 7919) % 2003).astype(np.float32) / np.float32(1001.5) - np.float32(1.0)
    return values.reshape((n, *sample))


class Peer:
    """`xtask onnx-peer`: Petal with the model loaded, one command per line."""

    def __init__(self, xtask, arch, weights, onnx_path, threads):
        env = dict(os.environ, RAYON_NUM_THREADS=str(threads), RUST_BACKTRACE="0")
        self.process = subprocess.Popen(
            [xtask, "onnx-peer", "--arch", arch, "--weights", weights, "--fold-bn", onnx_path],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        while True:
            line = self.process.stdout.readline()
            if not line:
                sys.exit(f"xtask onnx-peer --arch {arch} stopped before it was ready")
            if line.strip() == "ready":
                break
            print("  petal:", line.strip())

    def ask(self, command):
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        answer = self.process.stdout.readline()
        if not answer:
            sys.exit(f"xtask onnx-peer stopped on {command!r}")
        return answer

    def logits(self, n):
        return np.array([float(v) for v in self.ask(f"logits {n}").split(",")], dtype=np.float32)

    def seconds(self, n):
        return float(self.ask(f"time {n}"))

    def close(self):
        self.process.stdin.close()
        self.process.wait()


def check(arch, args, folder):
    onnx_path = os.path.join(folder, arch + ".onnx")
    peer = Peer(args.xtask, arch, args.weights.get(arch) or default_weights(arch), onnx_path, args.threads)
    options = ort.SessionOptions()
    options.intra_op_num_threads = args.threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(onnx_path, options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    sample = (224, 224, 3)
    result = {"model": arch, "file_bytes": os.path.getsize(onnx_path), "batches": []}

    x = probe_batch(2, sample)
    ours = peer.logits(2)
    theirs = session.run(None, {name: x.transpose(0, 3, 1, 2).copy()})[0].reshape(-1)
    result["relative_error"] = float(np.max(np.abs(theirs - ours)) / np.max(np.abs(ours)))
    print(f"{arch}: max |ort - petal| / max |petal| = {result['relative_error']:.2e} (batch 2)")

    for n in args.batches:
        feed = {name: probe_batch(n, sample).transpose(0, 3, 1, 2).copy()}

        def ort_seconds():
            start = time.perf_counter()
            session.run(None, feed)
            return time.perf_counter() - start

        for _ in range(args.warmup):
            peer.seconds(n)
            ort_seconds()
        petal, onnxruntime = [], []
        for run in range(args.runs):
            if run % 2 == 0:
                petal.append(peer.seconds(n))
                onnxruntime.append(ort_seconds())
            else:
                onnxruntime.append(ort_seconds())
                petal.append(peer.seconds(n))
        row = {
            "batch": n,
            "petal_ms": 1e3 * statistics.median(petal),
            "onnxruntime_ms": 1e3 * statistics.median(onnxruntime),
        }
        row["petal_over_onnxruntime"] = row["petal_ms"] / row["onnxruntime_ms"]
        result["batches"].append(row)
        print(f"  batch {n:>3}: Petal {row['petal_ms']:9.1f} ms   onnxruntime {row['onnxruntime_ms']:9.1f} ms"
              f"   ratio {row['petal_over_onnxruntime']:.2f}   (medians of {args.runs})")
    peer.close()
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--xtask", default=os.path.join(
        os.environ.get("CARGO_TARGET_DIR", os.path.join(HERE, "..", "target")), "release", "xtask"))
    parser.add_argument("--models", default="resnet18,mobilenet_v2,efficientnet-lite0")
    parser.add_argument("--weights", action="append", default=[], metavar="ARCH=FILE",
                        help="weights of one model (default: the shared fixtures / PETAL_WEIGHTS)")
    parser.add_argument("--batches", default="1,32")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    args.weights = dict(w.split("=", 1) for w in args.weights)
    args.batches = [int(b) for b in args.batches.split(",")]
    print(f"onnxruntime {ort.__version__}, {args.threads} threads")
    with tempfile.TemporaryDirectory() as folder:
        results = [check(arch, args, folder) for arch in args.models.split(",")]
    report = {"onnxruntime": ort.__version__, "threads": args.threads, "runs": args.runs, "models": results}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)
    worst = max(r["relative_error"] for r in results)
    if worst > 1e-4:
        sys.exit(f"relative error {worst:.2e} exceeds 1e-4")


if __name__ == "__main__":
    main()
