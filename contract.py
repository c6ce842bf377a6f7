"""The model contract shared by training, the model server and the gateway.

Names, shapes and normalisation constants are defined here once so that the exported
SavedModel, the local model server and the gateway can never drift apart.
"""

from pathlib import Path

MODEL_NAME = "mnist"
# A version label ("stable", "canary") as a client may put it in a /labels/<label>/ path:
# 1-64 letters, digits, '_' or '-'. TF Serving itself takes any string in models.config.
VERSION_LABEL_PATTERN = r"^[A-Za-z0-9_\-]{1,64}$"
VERSION_LABEL_RULE = "1-64 letters, digits, '_' or '-'"  # the pattern, for messages
# The label of the version users get: with it set, a version that loads beside it (a canary)
# gets no traffic until a label names it. Without it, the newest AVAILABLE version serves.
STABLE_LABEL = "stable"
NUM_CLASSES = 10
IMAGE_SIZE = 28
INPUT_SHAPE = (IMAGE_SIZE, IMAGE_SIZE, 1)

# MNIST digits were scaled to fit a 20x20 box, then shifted so their centre of mass sits
# at the centre of the 28x28 frame (measured on mnist.npz: row and column 14.0).
DIGIT_BOX = 20
CENTRE_OF_MASS = 14.0

# Uploads larger than this are box-filtered down first: it bounds the work per image
# and averages away sensor noise before the background and ink are judged.
WORK_SIZE = 112
# A pixel is ink when it is at least this fraction of the way from background to the
# darkest stroke; the crop box is the bounding box of such pixels.
INK_THRESHOLD = 0.3
# Below this fraction of the digit's strength, pixels are paper texture, not ink.
INK_FLOOR = 0.15
# Less contrast than this (0-255 scale) between background and ink means no digit.
MIN_CONTRAST = 40.0
# The darkest stroke must stand out from pixel noise by this factor: random noise has plenty
# of contrast but no more than a few times its own spread.
MIN_SIGNAL_TO_NOISE = 5.0

# What one digit looks like, measured on the ink mask (ink >= INK_THRESHOLD) at work size.
# Tuned on uploads made from held-back training digits and on generated non-digits
# (bench/recognition_sets.py); the report uses other sets.
# Ink whose longer side spans fewer original pixels than this, or less than this share of
# the image, is a speck, not a digit.
MIN_DIGIT_PIXELS = 10
MIN_DIGIT_SPAN = 0.02
# Ink this many times wider than tall is several digits, a word or a line, not one digit.
MAX_DIGIT_WIDTH_RATIO = 2.5
# Empty columns split the ink into parts; parts holding this share of the ink each count.
# Two such parts side by side in a box wider than tall, or three anywhere, are several marks.
MIN_PART_SHARE = 0.1
# Rows: four or more bands each holding this share of the ink are a pattern (stripes, lines).
MIN_BAND_SHARE = 0.05
MAX_BANDS = 3
# Ink entering the image's border this many separate times is a texture running off the frame.
MAX_BORDER_RUNS = 6
# Pen strokes are thin against the digit's size: ink that survives an erosion by a square of
# half-side CORE_WIDE of the ink's longer side is a filled area (a blot, a shape, a shadow).
CORE_WIDE = 0.12
MAX_CORE_WIDE = 0.35
# A milder erosion (CORE_NARROW) tells filled areas that are big, dense blocks...
CORE_NARROW = 0.08
MAX_CORE_NARROW_DENSE = 0.44
DENSE_BOX_FILL = 0.77
DENSE_MIN_SPAN = 0.2
# ...or shading that runs along the image's border.
MAX_CORE_NARROW_AT_BORDER = 0.42
BORDER_COVER = 0.3
# Below this many work pixels the erosions are too coarse to tell a bold pen from a blot:
# small ink is not judged filled.
MIN_CORE_TEST_PIXELS = 24

# Where the ink is (gateway/ink.py, and the same in the graph), measured at work size.
# Light ink is read only on a digital dark canvas: a border of which this share is black
# (at most BLACK_LEVEL). A dark border that is not (a desk, paper in shadow) is a photo of
# paper: dark ink.
BLACK_LEVEL = 8.0
BLACK_BORDER_SHARE = 0.05
# Paper in shadow: a flat plateau (gradient under SHADE_GRADIENT levels a pixel) between
# SHADE_FLOOR and SHADE_CEILING of the paper's brightness, over SHADED_SHARE of the image.
# Pages whose border is flat to BORDER_FLAT levels are lit evenly and not tested.
# The plateau must be SHADE_WIDTH of the page's longer side wide, wider than a pen.
SHADE_FLOOR = 0.3
SHADE_CEILING = 0.8
SHADE_GRADIENT = 4.0
SHADE_WIDTH = 0.03
SHADED_SHARE = 0.08
BORDER_FLAT = 2.0
# The flat field: the paper is the grey closing of the page with a window WINDOW_PER_STROKE
# times the pen's width (the STROKE_PERCENTILE-th of the widths of what a PAPER_WINDOW
# closing finds), and at least LEAST_WINDOW of the page; ink is the page's shortfall from
# it, divided by the paper (no less than PAPER_FLOOR of the brightest paper).
PAPER_WINDOW = 0.3
STROKE_PERCENTILE = 50
WINDOW_PER_STROKE = 3
LEAST_WINDOW = 0.1
PAPER_FLOOR = 0.5

# Which ink is the digit (gateway/digit_parts.py, and the same in the graph): the
# 8-connected parts of the ink mask.
# A part at least DIGIT_PART_SPAN of the image's longer side may be the digit.
DIGIT_PART_SPAN = 0.15
# A box printed round the digit: its outer rows and columns (the outer FRAME_EDGE of its
# shorter side) each hold a row or column at least FRAME_FILL full, its inside less than
# FRAME_INSIDE.
FRAME_EDGE = 0.1
FRAME_FILL = 0.9
FRAME_INSIDE = 0.3
# In a photo, ink lies on paper: a part is ink when at least RIDGE_SHARE of it is darker, by
# RIDGE_LEVEL of its own depth, than the page RIDGE_REACH of its stroke widths away on both
# sides (across or down), and it is at least LEVEL_SHARE as deep as the deepest ink. The
# edge of a desk, the tip of a shadow and the grain of a desk are not.
RIDGE_REACH = 1.5
RIDGE_LEVEL = 0.5
RIDGE_SHARE = 0.25
LEVEL_SHARE = 0.3
# The digit is the heaviest part and the parts near it: within NEAR_PARTS of its longer side,
# or NEAR_SPECKS for a speck (a part under SPECK_MASS of its ink). Parts farther away go
# when they are specks, faint (peak under FAINT_PEAK) or at the image's edge; others stay,
# to be judged as several digits.
NEAR_PARTS = 0.35
NEAR_SPECKS = 0.12
SPECK_MASS = 0.15
FAINT_PEAK = 0.6

# Why an image holds no digit to read: the gateway's 422 detail and, word for word, the
# `refusal` output of the SavedModel's signatures.
NO_DIGIT = "No digit found: "
REFUSAL_BLANK = (
    NO_DIGIT + "the image is blank or nearly uniform; draw a digit with a dark pen on a light "
    "background (or light on dark)."
)
REFUSAL_NOISE = NO_DIGIT + "the image looks like noise; send a single digit on a plain background."
REFUSAL_TOO_SMALL = NO_DIGIT + "the marks are too small to be a digit; draw the digit larger."
REFUSAL_SEVERAL = (
    NO_DIGIT + "the ink looks like several digits or a line of text; send one digit per image "
    "(several images go to /predict/batch)."
)
REFUSAL_PATTERN = (
    NO_DIGIT + "the image shows a pattern or texture; send one digit on a plain background."
)
REFUSAL_FILLED = (
    NO_DIGIT + "the ink is a filled area or a shadow, not pen strokes; draw the digit with a "
    "pen on a plain, evenly lit background."
)

SIGNATURE_IMAGE = "serving_default"
SIGNATURE_IMAGE_BYTES = "predict_image_bytes"
SIGNATURE_PIXELS = "predict_pixels"
INPUT_IMAGE = "image"
INPUT_IMAGE_BYTES = "image_bytes"
INPUT_PIXELS = "pixels"
OUTPUT_PROBABILITIES = "probabilities"
OUTPUT_DIGIT = "digit"
OUTPUT_CONFIDENCE = "confidence"
# Empty for a digit that was read; else why not (digit -1, confidence 0, probabilities 0).
OUTPUT_REFUSAL = "refusal"
REFUSED_DIGIT = -1

MODEL_CARD_FILE = "model_card.json"
ASSETS_EXTRA_DIR = "assets.extra"


def model_card_path(version_path: Path) -> Path:
    """Where a published version keeps its model card: base_path/<version>/assets.extra/."""
    return version_path / ASSETS_EXTRA_DIR / MODEL_CARD_FILE


def version_folders(base_path: Path) -> dict[int, Path]:
    """The models volume's versions: positive integer folders under `base_path`
    (base_path/<version>/, as TF Serving reads it), by number. Temporary folders of an
    export in progress, and anything else, are not versions."""
    if not base_path.is_dir():
        return {}
    return {
        int(child.name): child
        for child in base_path.iterdir()
        if child.name.isascii() and child.name.isdigit() and int(child.name) > 0 and child.is_dir()
    }
