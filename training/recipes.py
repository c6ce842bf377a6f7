"""Training recipes: a network, its budget and optimiser settings, and its data (no Keras
import, so the command line answers --help, --if-missing and --unless-published instantly)."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Recipe:
    """A network and how it is trained."""

    network: str  # "seed" (the original small CNN) or "default"
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
    "seed": Recipe(network="seed", epochs=5, batch_size=64, learning_rate=1e-3, augment=False),
    # The first model of a new stack: the seed network, fewer and larger steps with a
    # decaying rate, so a newcomer's first prediction comes within minutes; the full recipe
    # follows in the background. 99.21% on MNIST test in 3 epochs (docs/benchmarks.md).
    "quick": Recipe(
        network="seed",
        epochs=3,
        batch_size=128,
        learning_rate=3e-3,
        augment=False,
        cosine_decay=True,
    ),
    # Batch norm, dropout, light affine augmentation, one warm-up epoch then cosine decay, a
    # little label smoothing and an average of the weights, on MNIST and its upload-like
    # copy. 99.63% on MNIST test in 8 epochs over both (docs/benchmarks.md).
    "default": Recipe(
        network="default",
        epochs=8,
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
