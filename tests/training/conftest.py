"""Training tests need TensorFlow; elsewhere they are skipped."""

import pytest

pytest.importorskip("tensorflow")
