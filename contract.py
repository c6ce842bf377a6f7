"""The model contract shared by training, the model server and the gateway.

Names, shapes and normalisation constants are defined here once so that the exported
SavedModel, the local model server and the gateway can never drift apart.
"""

MODEL_NAME = "mnist"
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
# Ink covering more than this fraction of the image is a filled area or noise, not a digit.
MAX_INK_FRACTION = 0.45

SIGNATURE_IMAGE = "serving_default"
SIGNATURE_IMAGE_BYTES = "predict_image_bytes"
INPUT_IMAGE = "image"
INPUT_IMAGE_BYTES = "image_bytes"
OUTPUT_PROBABILITIES = "probabilities"
OUTPUT_DIGIT = "digit"
OUTPUT_CONFIDENCE = "confidence"

MODEL_CARD_FILE = "model_card.json"
ASSETS_EXTRA_DIR = "assets.extra"
