"""Training recipes per architecture: budget and optimiser settings (no Keras import,
so the command line answers --help and --if-missing instantly)."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Recipe:
    """How an architecture is trained."""

    epochs: int
    batch_size: int
    learning_rate: float  # peak rate; constant when warmup_epochs is 0 and decay is off
    augment: bool
    warmup_epochs: int = 0
    cosine_decay: bool = False
    label_smoothing: float = 0.0
    weight_averaging: bool = False  # evaluate and export an exponential moving average
    dropout: float = 0.0
    # Train on each digit twice: as MNIST drew it and redrawn the way uploads differ from it
    # (training/domain.py); epochs then count passes over both copies.
    upload_domain: bool = False


RECIPES = {
    # The original design: about 99.1-99.2% in about 90 s on two cores.
    "seed": Recipe(epochs=5, batch_size=64, learning_rate=1e-3, augment=False),
    # Batch norm, dropout, light affine augmentation, one warm-up epoch then cosine decay, a
    # little label smoothing and an average of the weights, on MNIST and its upload-like
    # copy: measured figures in docs/benchmarks.md.
    "default": Recipe(
        epochs=7,
        batch_size=128,
        learning_rate=4e-3,
        augment=True,
        warmup_epochs=1,
        cosine_decay=True,
        label_smoothing=0.05,
        weight_averaging=True,
        dropout=0.3,
        upload_domain=True,
    ),
}
ARCHITECTURES = tuple(RECIPES)
