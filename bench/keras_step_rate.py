"""Keras 3 (TensorFlow backend) step-only training rate for bench workloads 1 and 2.

Run by hand with a Python where `pip install tensorflow-cpu` was done:
    python bench/keras_step_rate.py --threads 2 --repeats 5
It builds the same networks as `cargo xtask bench` (Adam 1e-3, batch 128, random data
already in memory) and times `train_on_batch` calls only (no fit loop, no data
pipeline), after warm-up: the "steps only" figure of the issue's Keras column.
"""

import argparse
import os
import statistics
import time


def build(workload, keras):
    layers = keras.layers
    if workload == "keras_mnist_train":
        body = [
            layers.Conv2D(32, 3, activation="relu"),
            layers.MaxPooling2D(2),
            layers.Conv2D(64, 3, activation="relu"),
            layers.MaxPooling2D(2),
            layers.Flatten(),
            layers.Dropout(0.5),
            layers.Dense(10),
        ]
    else:
        body = [
            layers.Conv2D(32, 3, padding="same", activation="relu"),
            layers.Conv2D(32, 3, padding="same", activation="relu"),
            layers.MaxPooling2D(2),
            layers.Conv2D(64, 3, padding="same", activation="relu"),
            layers.Conv2D(64, 3, padding="same", activation="relu"),
            layers.MaxPooling2D(2),
            layers.Flatten(),
            layers.Dense(128, activation="relu"),
            layers.Dropout(0.5),
            layers.Dense(10),
        ]
    model = keras.Sequential([keras.Input((28, 28, 1))] + body)
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    return model


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--min-seconds", type=float, default=1.5)
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import numpy as np
    import tensorflow as tf
    import keras

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    rng = np.random.default_rng(0)
    batch = 128
    x = rng.random((batch, 28, 28, 1), dtype=np.float32)
    y = np.arange(batch) % 10
    for workload in ["keras_mnist_train", "mnist_same_train"]:
        model = build(workload, keras)
        for _ in range(5):
            model.train_on_batch(x, y)
        calls = 1
        while True:
            started = time.perf_counter()
            for _ in range(calls):
                model.train_on_batch(x, y)
            if time.perf_counter() - started >= args.min_seconds / 4:
                break
            calls *= 2
        rates = []
        for _ in range(args.repeats):
            started = time.perf_counter()
            for _ in range(calls):
                model.train_on_batch(x, y)
            rates.append(batch * calls / (time.perf_counter() - started))
        print(f"{workload} keras {statistics.median(rates):.1f} images/s (best {max(rates):.1f})")


if __name__ == "__main__":
    main()
