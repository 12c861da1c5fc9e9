"""Oracle for the synthetic world: read the object's colour and shape off a clip by image analysis.

Background model: the two-colour pattern (stripes, checker, gradient) lies on the RGB segment
between its two named colours. The pair of named colours whose segment explains most pixels
(while leaving an object-sized remainder) is the background; the remaining pixels are the
object. Colour = majority nearest named colour among them; shape = the SHAPES template (rendered
by `object_mask` at the area and centroid of that colour's largest blob) with the best mean IoU
over frames.
Assumes one object per clip (or a `region` mask around the object of interest).

Reads rendered clips exactly (colour and shape). On the trained toy model's outputs
(kvlock/assets/wan_toy.md) only the colour reading says something: that model draws the prompt's
colour but not its shape (blobs), so its shape votes score the model, not the edit.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from itertools import combinations

import numpy as np

from kvlock.data.synthetic import (
    COLORS,
    SHAPES,
    SceneObject,
    object_mask,
    render_scene,
    sample_scene,
)

NAMES = list(COLORS)
PALETTE = np.array([COLORS[c] for c in NAMES], dtype=np.float64)  # (8, 3)
BG_DISTANCE = 40.0  # RGB distance to the background segment below which a pixel is background
MIN_OBJECT_FRACTION = 0.015  # the smallest object covers ~4.5 % of a frame, the largest ~13 %
MAX_OBJECT_FRACTION = 0.5
MIN_FRAME_PIXELS = 4
COLOR_DISTANCE = 80.0  # object pixels farther than this from every named colour are not voted
TWO_TONE_INTERIOR = 0.25  # below this fraction of pixels strictly inside the segment: two-tone


def _residual(pixels: np.ndarray, weights: np.ndarray, i: int, j: int) -> np.ndarray:
    """pixels (N, 3) float, weights (N,) their pixel shares -> (N,) bool: those the background
    pair (i, j) does not explain.

    Far from the segment, or, for a two-tone pattern (stripes, checker: few pixels inside the
    segment), inside it but near a third named colour (an orange object on red/yellow stripes).
    """
    a, b = PALETTE[i], PALETTE[j]
    ab = b - a
    w = np.clip((pixels - a) @ ab / (ab @ ab), 0.0, 1.0)
    far = np.linalg.norm(pixels - (a + w[:, None] * ab), axis=1) > BG_DISTANCE
    interior = ~far & (w > 0.15) & (w < 0.85)
    if weights[interior].sum() >= TWO_TONE_INTERIOR * max(weights[~far].sum(), 1e-12):
        return far
    others = np.delete(PALETTE, [i, j], axis=0)
    near_third = np.linalg.norm(pixels[:, None] - others[None], axis=2).min(1) < BG_DISTANCE
    return far | (interior & near_third)


def object_pixels(frames: np.ndarray, region: np.ndarray | None = None) -> tuple[np.ndarray, tuple]:
    """frames (T, H, W, 3) uint8, region (T, H, W) bool | None -> object mask (T, H, W) bool and
    the background colour pair (names)."""
    # each distinct colour once, weighted by its pixel count (synthetic clips hold few colours)
    colors, inverse, counts = np.unique(frames.reshape(-1, 3), axis=0, return_inverse=True,
                                        return_counts=True)
    colors, weights = colors.astype(np.float64), counts / counts.sum()
    best, best_pair, best_far = -1.0, None, None
    for i, j in combinations(range(len(NAMES)), 2):
        far = _residual(colors, weights, i, j)
        fraction = float(weights[far].sum())
        plausible = MIN_OBJECT_FRACTION <= fraction <= MAX_OBJECT_FRACTION
        score = 1.0 - fraction + (1.0 if plausible else 0.0)  # prefer pairs that leave an object
        if score > best:
            best, best_pair, best_far = score, (NAMES[i], NAMES[j]), far
    mask = best_far[inverse.ravel()].reshape(frames.shape[:3])
    if region is not None:
        mask &= region
    return mask, best_pair


def classify_color(frames: np.ndarray, mask: np.ndarray, background: tuple) -> tuple:
    """Majority nearest named colour (background colours excluded) over the object pixels that
    are within COLOR_DISTANCE of one -> (name | None, that colour's pixels (T, H, W) bool)."""
    dist = np.linalg.norm(frames.reshape(-1, 1, 3).astype(np.float64) - PALETTE[None], axis=2)
    dist[:, [NAMES.index(c) for c in background]] = np.inf
    nearest = dist.argmin(1)
    candidates = mask.ravel() & (dist.min(1) < COLOR_DISTANCE)
    if not candidates.any():
        return None, np.zeros_like(mask)
    k = int(np.bincount(nearest[candidates], minlength=len(NAMES)).argmax())
    return NAMES[k], (candidates & (nearest == k)).reshape(mask.shape)


def largest_component(frame: np.ndarray) -> np.ndarray:
    """(H, W) bool -> its largest 8-connected component (drops stray pixels of noisy clips)."""
    import cv2

    count, labels, stats, _ = cv2.connectedComponentsWithStats(frame.astype(np.uint8), connectivity=8)
    if count <= 1:
        return frame
    return labels == 1 + int(stats[1:, cv2.CC_STAT_AREA].argmax())


@cache
def _template_geometry(shape: str) -> tuple[float, float]:
    """(area per unit², centroid y offset per unit) of a shape, measured on a fine rendering."""
    size = 400
    obj = SceneObject(shape, "red", 0.4, (0.5, 0.5), (0.5, 0.5))
    m = object_mask(obj, 1, size, size)[0]
    unit = 0.4 * size
    ys = np.nonzero(m)[0] + 0.5
    return m.sum() / unit**2, (ys.mean() - 0.5 * size) / unit


def classify_shape(mask: np.ndarray) -> str | None:
    """mask (T, H, W) bool -> the SHAPES name with the best mean template IoU over frames."""
    _, h, w = mask.shape
    scores = np.zeros(len(SHAPES))
    used = 0
    for frame in mask:
        frame = largest_component(frame)
        area = int(frame.sum())
        if area < MIN_FRAME_PIXELS:
            continue
        ys, xs = np.nonzero(frame)
        cx, cy = xs.mean() + 0.5, ys.mean() + 0.5
        used += 1
        for k, shape in enumerate(SHAPES):
            coef, dy = _template_geometry(shape)
            unit = np.sqrt(area / coef)
            centre = (cx / w, (cy - dy * unit) / h)
            obj = SceneObject(shape, "red", unit / min(h, w), centre, centre)
            tmpl = object_mask(obj, 1, h, w)[0]
            scores[k] += (tmpl & frame).sum() / max((tmpl | frame).sum(), 1)
    return SHAPES[int(scores.argmax())] if used else None


def classify(frames: np.ndarray, region: np.ndarray | None = None) -> dict:
    """frames (T, H, W, 3) uint8 -> {"color", "shape", "background"} (None where no object)."""
    mask, background = object_pixels(frames, region)
    color, color_mask = classify_color(frames, mask, background)
    return {"color": color, "shape": classify_shape(color_mask), "background": background}


def score_generations(videos: Sequence[np.ndarray], objects: Sequence[SceneObject]) -> dict:
    """videos: N clips (T, H, W, 3) uint8; objects: the prompted object of each.

    -> {"n", "color_acc", "shape_acc", "both_acc", "per_color": {name: acc}, "per_shape": {...}}.
    """
    rows = [(classify(v), o) for v, o in zip(videos, objects)]
    color_ok = np.array([r["color"] == o.color for r, o in rows])
    shape_ok = np.array([r["shape"] == o.shape for r, o in rows])

    def per(attr: str, ok: np.ndarray, names) -> dict:
        return {n: float(ok[[getattr(o, attr) == n for _, o in rows]].mean())
                for n in names if any(getattr(o, attr) == n for _, o in rows)}

    return {"n": len(rows), "color_acc": float(color_ok.mean()), "shape_acc": float(shape_ok.mean()),
            "both_acc": float((color_ok & shape_ok).mean()),
            "per_color": per("color", color_ok, NAMES), "per_shape": per("shape", shape_ok, SHAPES)}


def rendered_accuracy(num: int, seed: int, num_frames: int, height: int, width: int) -> dict:
    """The oracle's accuracy on rendered one-object ground-truth clips Generator([seed, i])."""
    scenes = [sample_scene(np.random.default_rng([seed, i]), num_objects=1) for i in range(num)]
    videos = [render_scene(s, num_frames, height, width)[0] for s in scenes]
    return score_generations(videos, [s.objects[0] for s in scenes])
