"""Where a training step of a recipe's network goes: each layer's forward and backward pass,
timed alone, and the whole step as `fit` runs it.

    python -m bench.train_step [--arch default] [--batch 128] [--repeats 25]

Layers are timed one at a time on random inputs of their own shape (gradients with respect
to input and weights), so the per-layer figures sum to more than the whole step, which fuses
and overlaps work; their shares say where the step's time goes. It runs TensorFlow's default
kernels (Eigen on AMD CPUs); TF_ENABLE_ONEDNN_OPTS=1 times those `python -m training` uses.
"""

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from contract import INPUT_SHAPE, NUM_CLASSES


def median_ms(call: Callable[[], Any], repeats: int) -> float:
    for _ in range(3):
        call()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def layer_ms(layer: Any, batch: int, repeats: int) -> float:
    import tensorflow as tf

    inputs = tf.random.uniform((batch, *layer.input.shape[1:]))

    @tf.function  # type: ignore[untyped-decorator]
    def forward_backward(inputs: Any) -> Any:
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            outputs = layer(inputs, training=True)
            loss = tf.reduce_sum(outputs * outputs)
        return tape.gradient(loss, [inputs, *layer.trainable_weights])

    return median_ms(lambda: [g.numpy() for g in forward_backward(inputs)], repeats)


def fit_step_ms(model: Any, batch: int, steps: int) -> float:
    import keras

    rng = np.random.default_rng(0)
    images = rng.random((batch * steps, *INPUT_SHAPE), dtype=np.float32)
    labels = keras.utils.to_categorical(rng.integers(0, NUM_CLASSES, len(images)), NUM_CLASSES)
    times: list[float] = []

    class StepTimes(keras.callbacks.Callback):  # type: ignore[misc]
        def on_train_batch_begin(self, batch: int, logs: object = None) -> None:  # noqa: ARG002
            self.started = time.perf_counter()

        def on_train_batch_end(self, batch: int, logs: object = None) -> None:  # noqa: ARG002
            times.append(time.perf_counter() - self.started)

    model.fit(images, labels, batch_size=batch, epochs=1, verbose=0, callbacks=[StepTimes()])
    return statistics.median(times[5:]) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.train_step", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--arch", default="default")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=25)
    parser.add_argument("--steps", type=int, default=100, help="fit steps for the whole step")
    args = parser.parse_args()

    from training.model import build_model

    model = build_model(args.arch, steps_per_epoch=1000, epochs=8)
    rows = [
        (layer.name, tuple(layer.output.shape[1:]), layer_ms(layer, args.batch, args.repeats))
        for layer in model.layers
    ]
    total = sum(ms for _, _, ms in rows)
    print(f"\nTraining step of {args.arch!r} at batch {args.batch}, {os.cpu_count()} cores")
    print(f"{'layer':<24} {'output':>14} {'fwd+bwd (ms)':>13} {'share':>6}")
    for name, shape, ms in rows:
        print(f"{name:<24} {str(shape):>14} {ms:>13.1f} {ms / total:>6.0%}")
    print(f"{'sum of layers':<24} {'':>14} {total:>13.1f}")
    step = fit_step_ms(model, args.batch, args.steps)
    per_image_us = step / args.batch * 1000
    print(f"{'whole step (fit)':<24} {'':>14} {step:>13.1f}   {per_image_us:.0f} µs per image")
    return 0


if __name__ == "__main__":
    sys.exit(main())
