"""The EXIF Orientation of a JPEG, read with string and gather ops, and applied as the
gateway's Pillow (ImageOps.exif_transpose) applies it: phones store photos sideways and say
so in the tag, which TensorFlow's decoders ignore.

The tag lives in the APP1 segment ("Exif\\0\\0", then a TIFF header and its first IFD). Only
the first 128 kB are read: every marker segment is under 64 kB and APP1 comes before the
image data.
"""

import tensorflow as tf

HEAD_BYTES = 128 * 1024
MAX_SEGMENTS = 32  # markers before APP1 (APP0, comments, other APPn) in real files: a few
MAX_ENTRIES = 64  # the first IFD of a phone photo: 10-20 entries
ORIENTATION_TAG = 0x0112
START_OF_SCAN = 0xDA
APP1 = 0xE1
EXIF_HEADER = [0x45, 0x78, 0x69, 0x66, 0x00, 0x00]  # "Exif\0\0"


def exif_orientation(jpeg: tf.Tensor) -> tf.Tensor:
    """The Orientation (1-8) of a JPEG's EXIF data; 1 (as stored) when there is none."""
    data = tf.cast(tf.io.decode_raw(tf.strings.substr(jpeg, 0, HEAD_BYTES), tf.uint8), tf.int32)
    size = tf.size(data)

    def at(index: tf.Tensor) -> tf.Tensor:
        return tf.gather(data, tf.clip_by_value(index, 0, size - 1))

    def searching(position: tf.Tensor, tiff: tf.Tensor, step: tf.Tensor) -> tf.Tensor:
        return tf.logical_and(
            tf.logical_and(tiff < 0, step < MAX_SEGMENTS),
            tf.logical_and(position + 10 <= size, tf.equal(at(position), 0xFF)),
        )

    def next_segment(
        position: tf.Tensor,
        tiff: tf.Tensor,  # noqa: ARG001 (tf.while_loop passes every loop variable)
        step: tf.Tensor,
    ) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        marker = at(position + 1)
        header = at(position + 4 + tf.range(6))
        exif = tf.logical_and(tf.equal(marker, APP1), tf.reduce_all(tf.equal(header, EXIF_HEADER)))
        length = at(position + 2) * 256 + at(position + 3)
        after = tf.where(tf.equal(marker, START_OF_SCAN), size, position + 2 + length)
        return after, tf.where(exif, position + 10, -1), step + 1

    _, tiff, _ = tf.while_loop(
        searching, next_segment, (tf.constant(2), tf.constant(-1), tf.constant(0))
    )
    little = tf.equal(at(tiff), 0x49)  # "II": little-endian; "MM": big-endian

    def number(index: tf.Tensor, width: int) -> tf.Tensor:
        digits = at(index[..., None] + tf.range(width))
        weights = tf.where(little, 256 ** tf.range(width), 256 ** tf.range(width - 1, -1, -1))
        return tf.reduce_sum(digits * weights, axis=-1)

    directory = tiff + number(tiff + 4, 4)
    entries = directory + 2 + 12 * tf.range(MAX_ENTRIES)
    present = tf.logical_and(tf.range(MAX_ENTRIES) < number(directory, 2), entries + 12 <= size)
    tagged = tf.logical_and(present, tf.equal(number(entries, 2), ORIENTATION_TAG))
    value = tf.reduce_max(tf.where(tagged, number(entries + 8, 2), 0))
    known = tf.logical_and(tiff >= 0, tf.logical_and(value >= 1, value <= 8))
    return tf.where(known, value, 1)


def oriented(image: tf.Tensor, orientation: tf.Tensor) -> tf.Tensor:
    """A [h, w] image turned as ImageOps.exif_transpose turns one of that orientation."""
    return tf.switch_case(
        orientation - 1,
        [
            lambda: image,
            lambda: image[:, ::-1],  # mirrored
            lambda: image[::-1, ::-1],  # upside down
            lambda: image[::-1],  # mirrored upside down
            lambda: tf.transpose(image),  # mirrored, turned
            lambda: tf.transpose(image[::-1]),  # turned a quarter anticlockwise: turn it back
            lambda: tf.transpose(image[::-1, ::-1]),  # mirrored, turned the other way
            lambda: tf.transpose(image)[::-1],  # turned a quarter clockwise: turn it back
        ],
    )
