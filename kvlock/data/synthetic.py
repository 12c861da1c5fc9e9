"""The embedded default dataset: procedurally rendered clips with exact masks and true edits.

A `Scene` is a scrolling textured background plus moving flat-coloured shapes. Geometry is in
resolution-free units (positions as fractions of W and H, sizes and pattern periods as
fractions of min(H, W), motion over the whole clip), so one scene renders at any size and
length. Rendering tests each pixel centre without antialiasing, so masks are exact and an edited
scene differs from its source only inside the edited objects' regions.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, replace

import numpy as np

from kvlock.data.sample import EditSample

COLORS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "green": (30, 170, 60),
    "blue": (30, 70, 220),
    "yellow": (245, 215, 30),
    "white": (245, 245, 245),
    "black": (15, 15, 15),
    "purple": (140, 50, 190),
    "orange": (245, 130, 20),
}
SHAPES = ("circle", "square", "triangle", "diamond", "cross")
PATTERNS = ("stripes", "checker", "gradient")
SYNTHETIC_EDIT_TYPES = ("color_change", "shape_change", "removal", "insertion")
MAX_OBJECTS = len(COLORS) - 3  # two background colours, and one colour left for an edit

_PATTERN_WORDS = {"stripes": "striped", "checker": "checkered"}
_DIRECTIONS = [(1, 0), (-1, 0), (0, 1), (0, -1), (1, 1), (1, -1), (-1, 1), (-1, -1)]


@dataclass(frozen=True)
class SceneObject:
    """A flat-coloured shape moving on a straight line from `start` (first frame) to `end` (last).

    start, end: (x, y) centre as fractions of (W, H); size: radius as a fraction of min(H, W).
    """

    shape: str
    color: str
    size: float
    start: tuple[float, float]
    end: tuple[float, float]


@dataclass(frozen=True)
class Background:
    """A two-colour pattern scrolled by `scroll` = (x, y) pattern periods over the clip.

    period: pattern period as a fraction of min(H, W); angle: direction of the stripes' and the
    gradient's variation, in degrees (the checker ignores it).
    """

    pattern: str
    colors: tuple[str, str]
    period: float
    angle: float
    scroll: tuple[float, float]


@dataclass(frozen=True)
class Scene:
    """A background and objects drawn in order (later ones on top)."""

    background: Background
    objects: tuple[SceneObject, ...]


def sample_scene(
    rng: np.random.Generator, num_objects: int | None = None, max_objects: int = 2
) -> Scene:
    """A random scene with `num_objects` objects (default: 1..max_objects) of distinct colours."""
    count = int(rng.integers(1, max_objects + 1)) if num_objects is None else num_objects
    if not 0 <= count <= MAX_OBJECTS:
        raise ValueError(f"num_objects must be in 0..{MAX_OBJECTS}, got {count}")
    names = list(COLORS)
    bg_colors = tuple(str(c) for c in rng.choice(names, size=2, replace=False))
    background = Background(
        pattern=str(rng.choice(PATTERNS)),
        colors=bg_colors,
        period=float(rng.uniform(0.2, 0.5)),
        angle=float(rng.choice([0.0, 45.0, 90.0, 135.0])),
        scroll=(float(rng.uniform(-1, 1)), float(rng.uniform(-1, 1))),
    )
    objects: list[SceneObject] = []
    for _ in range(count):
        objects.append(sample_object(rng, used_colors=(*bg_colors, *(o.color for o in objects))))
    return Scene(background, tuple(objects))


def sample_object(rng: np.random.Generator, used_colors: Sequence[str] = ()) -> SceneObject:
    """A random object whose colour is not in `used_colors`, staying inside the frame."""
    colors = [c for c in COLORS if c not in used_colors]
    size = float(rng.uniform(0.12, 0.2))
    dx, dy = _DIRECTIONS[int(rng.integers(len(_DIRECTIONS)))]
    distance = float(rng.uniform(0.2, 0.45)) / np.hypot(dx, dy)
    travel = (dx * distance, dy * distance)
    # size is a fraction of min(H, W), hence at most `size` of W and of H: a margin that keeps it inside
    start = tuple(float(rng.uniform(size - min(t, 0), 1 - size - max(t, 0))) for t in travel)
    end = (start[0] + travel[0], start[1] + travel[1])
    return SceneObject(str(rng.choice(SHAPES)), str(rng.choice(colors)), size, start, end)


def render_scene(
    scene: Scene, num_frames: int, height: int, width: int
) -> tuple[np.ndarray, np.ndarray]:
    """Render a scene: frames (T, H, W, 3) uint8 and mask (T, H, W) bool (union of all objects)."""
    frames = _render_background(scene.background, num_frames, height, width)
    mask = np.zeros((num_frames, height, width), dtype=bool)
    for obj in scene.objects:
        region = object_mask(obj, num_frames, height, width)
        frames[region] = COLORS[obj.color]
        mask |= region
    return frames, mask


def object_mask(obj: SceneObject, num_frames: int, height: int, width: int) -> np.ndarray:
    """(T, H, W) bool: the pixels whose centre lies inside the object, per frame."""
    tau = _clip_time(num_frames)
    unit = obj.size * min(height, width)
    cx = (obj.start[0] + tau * (obj.end[0] - obj.start[0])) * width
    cy = (obj.start[1] + tau * (obj.end[1] - obj.start[1])) * height
    u = ((np.arange(width) + 0.5)[None, None, :] - cx) / unit
    v = ((np.arange(height) + 0.5)[None, :, None] - cy) / unit
    au, av = np.abs(u), np.abs(v)
    if obj.shape == "circle":
        return u**2 + v**2 <= 1
    if obj.shape == "square":
        return (au <= 0.8) & (av <= 0.8)
    if obj.shape == "triangle":  # apex up, base at v = 0.8
        return (v <= 0.8) & (au <= (v + 1) / 1.8)
    if obj.shape == "diamond":
        return au + av <= 1
    if obj.shape == "cross":
        return ((au <= 1) & (av <= 0.35)) | ((au <= 0.35) & (av <= 1))
    raise ValueError(f"Unknown shape '{obj.shape}'. Available: {', '.join(SHAPES)}")


def scene_prompt(scene: Scene) -> str:
    """'a red circle moving right over a blue and white striped background'."""
    bg = scene.background
    first, second = bg.colors
    if bg.pattern == "gradient":
        background = f"{_a(first)} to {second} gradient background"
    else:
        background = f"{_a(first)} and {second} {_PATTERN_WORDS[bg.pattern]} background"
    if not scene.objects:
        return background
    things = " and ".join(f"{_a(o.color)} {o.shape} {_motion_words(o)}" for o in scene.objects)
    return f"{things} over {background}"


def edit_scene(
    scene: Scene, edit_type: str, rng: np.random.Generator
) -> tuple[Scene, list[SceneObject]]:
    """The edited scene and the objects whose union of regions is the edit region."""
    used = (*scene.background.colors, *(o.color for o in scene.objects))
    if edit_type == "insertion":
        new = sample_object(rng, used_colors=used)
        return replace(scene, objects=(*scene.objects, new)), [new]
    if not scene.objects:
        raise ValueError(f"a {edit_type} edit needs a scene with at least one object")
    index = int(rng.integers(len(scene.objects)))
    old = scene.objects[index]
    if edit_type == "removal":
        return replace(scene, objects=scene.objects[:index] + scene.objects[index + 1 :]), [old]
    if edit_type == "color_change":
        new = replace(old, color=str(rng.choice([c for c in COLORS if c not in used])))
    elif edit_type == "shape_change":
        new = replace(old, shape=str(rng.choice([s for s in SHAPES if s != old.shape])))
    else:
        raise ValueError(
            f"Unknown synthetic edit type '{edit_type}'. Available: {', '.join(SYNTHETIC_EDIT_TYPES)}"
        )
    objects = list(scene.objects)
    objects[index] = new
    return replace(scene, objects=tuple(objects)), [old, new]


def iter_synthetic_edits(
    num_videos: int,
    num_frames: int,
    height: int,
    width: int,
    seed: int,
    edit_types: Sequence[str] = SYNTHETIC_EDIT_TYPES,
    max_objects: int = 2,
) -> Iterator[EditSample]:
    """Lazily yield one EditSample per (video, edit type); `target_frames` is the true edit.

    Video i's scene draws from Generator([seed, i]), its edit of type e from
    Generator([seed, i, 1 + SYNTHETIC_EDIT_TYPES.index(e)]): the same seed gives the same clips.
    """
    unknown = [e for e in edit_types if e not in SYNTHETIC_EDIT_TYPES]
    if unknown:
        raise ValueError(
            f"Unknown synthetic edit type(s) {unknown}. Available: {', '.join(SYNTHETIC_EDIT_TYPES)}"
        )
    for index in range(num_videos):
        video_id = f"synthetic-s{seed}-{index:04d}"
        scene = sample_scene(np.random.default_rng([seed, index]), max_objects=max_objects)
        frames, _ = render_scene(scene, num_frames, height, width)
        for edit_type in edit_types:
            rng = np.random.default_rng([seed, index, 1 + SYNTHETIC_EDIT_TYPES.index(edit_type)])
            target, edited = edit_scene(scene, edit_type, rng)
            mask = np.zeros((num_frames, height, width), dtype=bool)
            for obj in edited:
                mask |= object_mask(obj, num_frames, height, width)
            yield EditSample(
                edit_id=f"{video_id}__{edit_type}",
                video_id=video_id,
                frames=frames.copy(),
                mask=mask,
                source_prompt=scene_prompt(scene),
                target_prompt=scene_prompt(target),
                edit_type=edit_type,
                target_frames=render_scene(target, num_frames, height, width)[0],
                meta={
                    "dataset": "synthetic",
                    "seed": seed,
                    "index": index,
                    "source": f"synthetic:{video_id}",
                    "scene": asdict(scene),
                    "target_scene": asdict(target),
                },
            )


def make_synthetic_edits(
    num_videos: int,
    num_frames: int,
    height: int,
    width: int,
    seed: int,
    edit_types: Sequence[str] = SYNTHETIC_EDIT_TYPES,
    max_objects: int = 2,
) -> list[EditSample]:
    """All edits of `iter_synthetic_edits` as a list."""
    return list(
        iter_synthetic_edits(num_videos, num_frames, height, width, seed, edit_types, max_objects)
    )


def _render_background(bg: Background, num_frames: int, height: int, width: int) -> np.ndarray:
    """(T, H, W, 3) uint8 scrolled pattern."""
    tau = _clip_time(num_frames)
    unit = bg.period * min(height, width)
    px = (np.arange(width) + 0.5)[None, None, :] / unit - bg.scroll[0] * tau
    py = (np.arange(height) + 0.5)[None, :, None] / unit - bg.scroll[1] * tau
    angle = np.deg2rad(bg.angle)
    along = px * np.cos(angle) + py * np.sin(angle)
    if bg.pattern == "stripes":
        weight = np.floor(2 * along) % 2
    elif bg.pattern == "checker":
        weight = (np.floor(2 * px) + np.floor(2 * py)) % 2
    elif bg.pattern == "gradient":
        weight = np.abs(np.mod(along, 2.0) - 1)  # triangle wave in [0, 1]
    else:
        raise ValueError(f"Unknown pattern '{bg.pattern}'. Available: {', '.join(PATTERNS)}")
    first, second = (np.array(COLORS[c], dtype=np.float64) for c in bg.colors)
    weight = np.broadcast_to(weight, (num_frames, height, width))[..., None]
    return np.rint(first + weight * (second - first)).astype(np.uint8)


def _clip_time(num_frames: int) -> np.ndarray:
    """(T, 1, 1) clip time in [0, 1]."""
    return (np.arange(num_frames) / max(num_frames - 1, 1))[:, None, None]


def _a(word: str) -> str:
    return f"{'an' if word[0] in 'aeiou' else 'a'} {word}"


def _motion_words(obj: SceneObject) -> str:
    dx, dy = obj.end[0] - obj.start[0], obj.end[1] - obj.start[1]
    words = [w for w, d in (("up", -dy), ("down", dy), ("left", -dx), ("right", dx)) if d > 0.05]
    return "moving " + " and ".join(words) if words else "standing still"
