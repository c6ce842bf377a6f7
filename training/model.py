"""The CNN networks and how a recipe compiles them (optimiser, schedule, loss)."""

import keras
from keras import layers

from contract import INPUT_SHAPE, NUM_CLASSES
from training.augment import RandomAffine
from training.recipes import RECIPES, Recipe


def build_model(arch: str, steps_per_epoch: int, epochs: int) -> keras.Model:
    """Build and compile `arch` for `epochs` epochs of `steps_per_epoch` steps.

    Labels are one-hot (label smoothing needs them; without it the loss is plain
    cross-entropy).
    """
    recipe = RECIPES[arch]
    if recipe.network == "seed":
        model = _build_seed()
    else:
        model = _build_default(recipe.augment, recipe.dropout)
    model.compile(
        optimizer=keras.optimizers.Adam(
            _learning_rate(recipe, steps_per_epoch, epochs),
            use_ema=recipe.weight_averaging,
            ema_momentum=0.99,
        ),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=recipe.label_smoothing),
        metrics=["accuracy"],
    )
    return model


def _learning_rate(
    recipe: Recipe, steps_per_epoch: int, epochs: int
) -> float | keras.optimizers.schedules.LearningRateSchedule:
    if not recipe.cosine_decay:
        return recipe.learning_rate
    warmup = min(recipe.warmup_epochs, epochs - 1) * steps_per_epoch
    return keras.optimizers.schedules.CosineDecay(
        recipe.learning_rate / 40 if warmup else recipe.learning_rate,
        decay_steps=max(1, steps_per_epoch * epochs - warmup),
        alpha=0.0,
        warmup_target=recipe.learning_rate if warmup else None,
        warmup_steps=warmup,
    )


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
    # Pooling straight after the convolution: batch norm and ReLU then run on a quarter of
    # the pixels (at 28x28 they cost more than the convolution; docs/benchmarks.md). Max
    # pooling commutes with ReLU and with batch norm's positive scaling, so the network
    # computes nearly the same function; only batch norm's statistics change.
    return [
        layers.Conv2D(filters, kernel, padding="same", use_bias=False),
        layers.MaxPooling2D(),
        layers.BatchNormalization(),
        layers.ReLU(),
    ]


def _build_default(augment: bool, dropout: float) -> keras.Model:
    # Small shifts, rotations and zooms: the variation real handwriting has and the test
    # set shares; active only while training.
    augmentation: list[layers.Layer] = [RandomAffine()] if augment else []
    return keras.Sequential(
        [
            keras.Input(INPUT_SHAPE, name="image"),
            *augmentation,
            *_conv_block(32, 5),
            *_conv_block(48, 3),
            *_conv_block(96, 3),
            layers.Flatten(),
            layers.Dropout(dropout),
            layers.Dense(128, use_bias=False),
            layers.BatchNormalization(),
            layers.ReLU(),
            layers.Dropout(dropout),
            layers.Dense(NUM_CLASSES, activation="softmax"),
        ],
        name="default",
    )
