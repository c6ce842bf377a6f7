"""Light affine augmentation for training: rotation, zoom and shift in one warp per image.

Keras' RandomRotation, RandomZoom and RandomTranslation each warp the whole batch; one
combined warp is the same augmentation at a third of the cost, which buys epochs within
the training budget.
"""

from typing import Any

import keras
from keras import layers, ops

# Keras tensors carry no static types (Keras ships no stubs).
Tensor = Any


class RandomAffine(layers.Layer):  # type: ignore[misc]
    """Rotates by up to `rotation` radians, zooms by up to `zoom`, shifts by up to `shift`
    of the image size, about the image centre; the identity outside training."""

    def __init__(
        self,
        rotation: float = 0.19,
        zoom: float = 0.1,
        shift: float = 0.08,
        seed: int | None = None,
        **kwargs: object,
    ) -> None:
        super().__init__(**kwargs)
        self.rotation = rotation
        self.zoom = zoom
        self.shift = shift
        self.seed_generator = keras.random.SeedGenerator(seed)

    def _uniform(self, count: Tensor, limit: float) -> Tensor:
        return keras.random.uniform((count,), -limit, limit, seed=self.seed_generator)

    def call(self, images: Tensor, training: bool | None = None) -> Tensor:
        if not training:
            return images
        count = ops.shape(images)[0]
        size = ops.cast(ops.shape(images)[1], "float32")
        angle = self._uniform(count, self.rotation)
        scale = 1.0 + self._uniform(count, self.zoom)
        shift_x = self._uniform(count, self.shift) * size
        shift_y = self._uniform(count, self.shift) * size
        cos, sin = ops.cos(angle) / scale, ops.sin(angle) / scale
        centre = (size - 1.0) / 2.0
        zeros = ops.zeros_like(angle)
        # Each output pixel (x, y) samples the input at A (x, y) + b, with A rotating and
        # scaling about the centre and b adding the shift.
        transform = ops.stack(
            [
                cos,
                -sin,
                centre - cos * centre + sin * centre - shift_x,
                sin,
                cos,
                centre - sin * centre - cos * centre - shift_y,
                zeros,
                zeros,
            ],
            axis=1,
        )
        return ops.image.affine_transform(
            images, transform, interpolation="bilinear", fill_mode="constant"
        )
