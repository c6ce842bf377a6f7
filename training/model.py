"""The CNN architectures and their training recipes."""

import keras
from keras import layers

from contract import INPUT_SHAPE, NUM_CLASSES
from training.recipes import RECIPES


def build_model(arch: str, steps_per_epoch: int, epochs: int) -> keras.Model:
    """Build and compile `arch`; the learning rate decays over `epochs` full epochs."""
    recipe = RECIPES[arch]
    model = _build_seed() if arch == "seed" else _build_default(recipe.augment)
    learning_rate: float | keras.optimizers.schedules.LearningRateSchedule = recipe.learning_rate
    if arch != "seed":
        learning_rate = keras.optimizers.schedules.CosineDecay(
            recipe.learning_rate, decay_steps=max(1, steps_per_epoch * epochs), alpha=0.01
        )
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def _build_seed() -> keras.Model:
    return keras.Sequential(
        [
            keras.Input(INPUT_SHAPE, name="image"),
            layers.Conv2D(32, 3, activation="relu"),
            layers.MaxPooling2D(),
            layers.Conv2D(64, 3, activation="relu"),
            layers.MaxPooling2D(),
            layers.Conv2D(64, 3, activation="relu"),
            layers.Flatten(),
            layers.Dense(64, activation="relu"),
            layers.Dense(NUM_CLASSES, activation="softmax"),
        ],
        name="seed",
    )


def _conv_block(filters: int, kernel: int) -> list[layers.Layer]:
    return [
        layers.Conv2D(filters, kernel, padding="same", use_bias=False),
        layers.BatchNormalization(),
        layers.ReLU(),
    ]


def _build_default(augment: bool) -> keras.Model:
    augmentation: list[layers.Layer] = []
    if augment:
        # Small shifts, rotations and zooms: the variation real handwriting has and
        # the test set shares; active only while training.
        augmentation = [
            layers.RandomRotation(0.03, fill_mode="constant"),
            layers.RandomZoom(0.1, fill_mode="constant"),
            layers.RandomTranslation(0.08, 0.08, fill_mode="constant"),
        ]
    return keras.Sequential(
        [
            keras.Input(INPUT_SHAPE, name="image"),
            *augmentation,
            *_conv_block(32, 5),
            layers.MaxPooling2D(),
            *_conv_block(64, 3),
            layers.MaxPooling2D(),
            *_conv_block(128, 3),
            layers.MaxPooling2D(),
            layers.Flatten(),
            layers.Dropout(0.4),
            layers.Dense(128, use_bias=False),
            layers.BatchNormalization(),
            layers.ReLU(),
            layers.Dropout(0.3),
            layers.Dense(NUM_CLASSES, activation="softmax"),
        ],
        name="default",
    )
