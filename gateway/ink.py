"""Where the ink is on a page, whatever the light: an ink map in [0, 1] at work size.

Canvases, scans and evenly lit photos have one paper level, read off the border. A photo
with a shadow across the page, or of a note lying on a darker desk, has not: there the
paper is estimated locally, as a grey closing of the page with a window a few times wider
than the pen (the flat field), and ink is the page's shortfall from it, divided by it, so
ink in a shadow is as strong as ink in the light. The same steps run in the SavedModel's
graph (training/graph_preprocessing.py), with the constants of `contract`.
"""

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from contract import (
    BLACK_BORDER_SHARE,
    BLACK_LEVEL,
    BORDER_FLAT,
    LEAST_WINDOW,
    PAPER_FLOOR,
    PAPER_WINDOW,
    SHADE_CEILING,
    SHADE_FLOOR,
    SHADE_GRADIENT,
    SHADE_WIDTH,
    SHADED_SHARE,
    STROKE_PERCENTILE,
    WINDOW_PER_STROKE,
)


@dataclass(frozen=True, slots=True)
class FlatField:
    """What a flat field knows besides the ink, for telling ink from the edges of shadows
    and desks: the page with ink bright (255 - grey) and each pixel's shortfall from the
    local paper, both in grey levels."""

    page: np.ndarray
    depth: np.ndarray


@dataclass(frozen=True, slots=True)
class InkMap:
    ink: np.ndarray  # float32 [h, w] in [0, 1]: 1 is the strongest ink
    contrast: float  # grey levels between the paper and the strongest ink
    # Grey levels between the border's median and the farthest pixel from it, in the ink's
    # direction: what noise is judged against (a flat field would flatten noise too).
    spread: float
    flat_field: FlatField | None  # None: one paper level for the whole page


def border_of(pixels: np.ndarray) -> np.ndarray:
    return np.concatenate([pixels[0], pixels[-1], pixels[1:-1, 0], pixels[1:-1, -1]])


def ink_map(pixels: np.ndarray) -> InkMap:
    """The ink of a grayscale page (float32, 0-255, at work size)."""
    border = border_of(pixels)
    background = float(np.sort(border)[border.size // 2])  # the graph's median, to the bit
    light_paper = background > 127.5
    # Light ink only on a digital dark canvas (black); a dark border that is not black is a
    # desk, or paper in shadow, round a photo of paper with dark ink on it.
    dark_ink = light_paper or np.mean(border <= BLACK_LEVEL) < BLACK_BORDER_SHARE
    ink = 255.0 - pixels if dark_ink else pixels
    paper = 255.0 - background if dark_ink else background
    spread = float(ink.max()) - paper
    if dark_ink and (not light_paper or in_shadow(pixels, border)):
        return _flat_field(pixels, spread)
    return InkMap(np.clip((ink - paper) / max(spread, 1.0), 0.0, 1.0), spread, spread, None)


def in_shadow(pixels: np.ndarray, border: np.ndarray) -> bool:
    """Is part of the page in shadow: a flat plateau darker than the paper, but not as dark
    as ink? Anti-aliased and blurred strokes are not flat, ink is darker, and a shadow (a
    hand, the phone) comes in over the border, which is then not one level."""
    if float(border.max() - border.min()) <= BORDER_FLAT or min(pixels.shape) < 2:
        return False
    paper = float(np.percentile(pixels, 98))
    rows, cols = np.gradient(pixels)
    plateau = (pixels > SHADE_FLOOR * paper) & (pixels < SHADE_CEILING * paper)
    plateau &= np.abs(rows) + np.abs(cols) < SHADE_GRADIENT
    # Wider than a pen: the inside of a bold grey stroke is flat too, but narrow.
    wide = ndimage.minimum_filter(plateau, size=_odd(SHADE_WIDTH * max(pixels.shape)))
    return bool(wide.mean() >= SHADED_SHARE)


def _closing(pixels: np.ndarray, window: int) -> np.ndarray:
    # The scene goes on past the frame (a desk, a shadow): mirror it rather than pad it.
    return np.asarray(ndimage.grey_closing(pixels, size=(window, window), mode="reflect"))


def inside_distance(mask: np.ndarray) -> np.ndarray:
    """Each pixel's chessboard distance to the nearest pixel of the page outside `mask` (a
    stroke cut by the frame is as wide as what is seen of it)."""
    # scipy answers -1 everywhere for a mask with nothing outside it: no distance, 0.
    return np.asarray(np.maximum(ndimage.distance_transform_cdt(mask, metric="chessboard"), 0))


def _odd(size: float) -> int:
    return max(3, round(size) | 1)


def paper_window(pixels: np.ndarray) -> int:
    """The closing window of the flat field: a few pen widths, so that strokes are filled and
    a desk or a shadow wider than that stays paper of its own level."""
    longer = max(pixels.shape)
    found = _closing(pixels, _odd(PAPER_WINDOW * longer)) - pixels
    strokes = found >= 0.5 * found.max()
    distance = inside_distance(strokes)
    middles = strokes & (distance == ndimage.maximum_filter(distance, size=3))
    # The thinnest strong strokes: a desk's edge or a shadow's tip, filled too, are wider.
    width = 1.0
    if middles.any():
        width = 2.0 * float(np.percentile(distance[middles], STROKE_PERCENTILE))
    return _odd(max(LEAST_WINDOW * longer, WINDOW_PER_STROKE * width + 1))


def _flat_field(pixels: np.ndarray, spread: float) -> InkMap:
    paper = _closing(pixels, paper_window(pixels))
    depth = paper - pixels
    floor = PAPER_FLOOR * float(np.percentile(paper, 95))
    strength = depth / np.maximum(np.maximum(paper, floor), 1.0)
    peak = float(strength.max())
    ink = np.clip(strength / max(peak, 1e-6), 0.0, 1.0).astype(np.float32)
    return InkMap(ink, float(depth.max()), spread, FlatField(255.0 - pixels, depth))
