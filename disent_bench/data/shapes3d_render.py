"""An offline renderer of the 3D Shapes scene (Burgess & Kim, 2018, https://github.com/deepmind/3d-shapes).

The official images were rendered with MuJoCo; this module ray-casts a look-alike with numpy so the suite
can run without the 267 MB download. The scene (measured from the official ``3dshapes.gif``, see the
team's datasets spec): a square room with a sky above its walls; an object (cube, cylinder, sphere or
capsule) stands centred on the floor and scales about its base; the camera orbits the object at a fixed
radius, so the factor ``orientation`` is the camera's azimuth; one spot light is fixed in the world (so
shading and the hard shadow move in the image as the camera orbits), plus a head light and ambient light.

Why it is fast: geometry depends only on (scale, shape, orientation), 480 configurations, while the three
hues only recolour it. For each configuration we ray-cast once (supersampled, for anti-aliased edges) and
keep, per pixel, how much of the floor, wall and object colour it shows (shading x shadow x texture x
coverage), how much sky, and how much white highlight. Because every surface colour is HSV(hue, 1, 1)
times a light level, an image is then a linear combination of those maps and the three hue colours,
composed for the 1000 hue combinations with numpy broadcasting (:func:`compose`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

FACTOR_NAMES = ("floor_hue", "wall_hue", "object_hue", "scale", "shape", "orientation")
FACTOR_SIZES = (10, 10, 10, 8, 4, 15)
HUES = np.linspace(0.0, 0.9, 10)
SCALES = np.linspace(0.75, 1.25, 8)
SHAPES = np.arange(4, dtype=np.float64)  # 0 cube, 1 cylinder, 2 sphere, 3 capsule
SHAPE_NAMES = ("cube", "cylinder", "sphere", "capsule")
ORIENTATIONS = np.linspace(-30.0, 30.0, 15)
FACTOR_VALUES = (HUES, HUES, HUES, SCALES, SHAPES, ORIENTATIONS)

IMAGE_SIZE = 64
SKY_RGB = np.array([153, 226, 249], dtype=np.float32) / 255.0

# Channels of a configuration's coefficient maps (last axis of :func:`render_maps`).
K_FLOOR, K_WALL, K_OBJECT, K_SKY, K_WHITE = range(5)
NUM_MAPS = 5

# Surface ids of a ray hit.
SKY, FLOOR, WALL, OBJECT = 0, 1, 2, 3


@dataclass(frozen=True)
class Scene:
    """Geometry and lights of the scene; lengths in room units (the room's half-width is 3.5).

    Camera and room come from a fit to the official frames (see the datasets spec); object sizes are the
    dimensions at ``scale == 1``; lighting was tuned so the frames in ``3dshapes.gif`` are matched
    closely (see :func:`disent_bench.reference_compare.shapes3d.compare_reference`).
    """

    room_half_width: float = 3.5
    wall_height: float = 2.01
    camera_radius: float = 3.25
    camera_height: float = 1.003
    look_height: float = 0.880
    vertical_fov_deg: float = 44.75
    cube_side: float = 0.817
    cylinder_radius: float = 0.424
    cylinder_height: float = 0.900
    sphere_radius: float = 0.496
    capsule_radius: float = 0.379
    capsule_height: float = 1.524
    # A spot light fixed in the world, high above the object and a little left of and behind it (+z
    # points at the camera at orientation 0, +x to its right), aimed nearly straight down at the floor
    # left of and behind the object: the floor is brightest there and darkens to the right, and the
    # hard shadow falls to the right. The values below are a least-squares fit to 20 frames of
    # 3dshapes.gif with known factors; the low-shininess "specular" term is really a broad white sheen
    # on the object that the real renderer shows (its faces desaturate a little towards the light).
    light_position: tuple[float, float, float] = (-1.62, 8.28, -0.32)
    light_target: tuple[float, float, float] = (-1.85, 0.0, -1.10)
    spot_exponent: float = 5.95
    light_diffuse: float = 0.86
    head_light: float = 0.63
    ambient: float = 0.16
    object_ambient: float = 0.36
    specular: float = 0.27
    shininess: float = 1.0
    shadow_keep: float = 0.0  # fraction of the spot light that still reaches a shadowed point
    texture_amplitude: float = 0.035
    supersample: int = 4


DEFAULT_SCENE = Scene()


def hue_rgb(hue: np.ndarray | float) -> np.ndarray:
    """RGB in [0, 1] of HSV(hue, 1, 1), vectorised: shape ``(..., 3)``."""
    h = np.asarray(hue, dtype=np.float64)[..., None]
    k = (np.array([5.0, 3.0, 1.0]) + h * 6.0) % 6.0
    return (1.0 - np.clip(np.minimum(k, 4.0 - k), 0.0, 1.0)).astype(np.float32)


def _normalise(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def camera_rays(orientation_deg: float, scene: Scene = DEFAULT_SCENE) -> tuple[np.ndarray, np.ndarray]:
    """The camera position ``(3,)`` and unit ray directions ``(64, 64, S*S, 3)`` through sub-pixel centres.

    The camera sits at azimuth ``orientation`` on a circle around the object; positive angles move it
    to the +x side, so it looks towards the room's -x (left) back corner.
    """
    a = math.radians(orientation_deg)
    eye = np.array([scene.camera_radius * math.sin(a), scene.camera_height, scene.camera_radius * math.cos(a)])
    forward = _normalise(np.array([0.0, scene.look_height, 0.0]) - eye)
    right = _normalise(np.cross(forward, [0.0, 1.0, 0.0]))
    up = np.cross(right, forward)
    s = scene.supersample
    half = math.tan(math.radians(scene.vertical_fov_deg) / 2.0)
    # Sub-pixel centres on a regular s x s grid; pixel i covers [i, i+1).
    sub = (np.arange(IMAGE_SIZE * s) + 0.5) / s
    u = (sub / IMAGE_SIZE * 2.0 - 1.0) * half  # to the right
    v = (1.0 - sub / IMAGE_SIZE * 2.0) * half  # up (row 0 at the top)
    d = forward + u[None, :, None] * right + v[:, None, None] * up  # (64s, 64s, 3)
    d = _normalise(d).reshape(IMAGE_SIZE, s, IMAGE_SIZE, s, 3).transpose(0, 2, 1, 3, 4)
    return eye, np.ascontiguousarray(d.reshape(IMAGE_SIZE, IMAGE_SIZE, s * s, 3))


def _intersect_room(eye: np.ndarray, d: np.ndarray, scene: Scene) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Where rays from inside the room leave it: distance, surface id (SKY/FLOOR/WALL), normal."""
    r, h = scene.room_half_width, scene.wall_height
    with np.errstate(divide="ignore", invalid="ignore"):
        tx = np.where(d[..., 0] > 0, (r - eye[0]) / d[..., 0], (-r - eye[0]) / d[..., 0])
        ty = np.where(d[..., 1] > 0, (h - eye[1]) / d[..., 1], (0.0 - eye[1]) / d[..., 1])
        tz = np.where(d[..., 2] > 0, (r - eye[2]) / d[..., 2], (-r - eye[2]) / d[..., 2])
    t_all = np.stack([np.nan_to_num(tx, nan=np.inf, posinf=np.inf), np.nan_to_num(ty, nan=np.inf, posinf=np.inf),
                      np.nan_to_num(tz, nan=np.inf, posinf=np.inf)], -1)
    axis = np.argmin(t_all, axis=-1)
    t = np.take_along_axis(t_all, axis[..., None], -1)[..., 0]
    surface = np.where(axis == 1, np.where(d[..., 1] > 0, SKY, FLOOR), WALL)
    normal = np.zeros(d.shape, dtype=np.float64)
    # Normals point into the room.
    np.put_along_axis(normal, axis[..., None], -np.sign(np.take_along_axis(d, axis[..., None], -1)), -1)
    return t, surface, normal


def _solve_quadratic(a, b, c):
    """Smallest positive root of a t^2 + b t + c (inf where none); a > 0."""
    disc = b * b - 4.0 * a * c
    ok = disc >= 0
    sq = np.sqrt(np.where(ok, disc, 0.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        t0 = (-b - sq) / (2.0 * a)
        t1 = (-b + sq) / (2.0 * a)
    t = np.where(t0 > 1e-9, t0, np.where(t1 > 1e-9, t1, np.inf))
    return np.where(ok, t, np.inf), t0


def _hit_sphere(o, d, centre, radius):
    oc = o - centre
    b = 2.0 * np.sum(oc * d, -1)
    c = np.sum(oc * oc, -1) - radius * radius
    t, _ = _solve_quadratic(np.ones_like(b), b, c)
    return t


def _hit_vertical_cylinder(o, d, radius, y0, y1):
    """Side of a vertical cylinder about the y axis between heights y0 and y1 (entering side only)."""
    a = d[..., 0] ** 2 + d[..., 2] ** 2
    b = 2.0 * (o[..., 0] * d[..., 0] + o[..., 2] * d[..., 2])
    c = o[..., 0] ** 2 + o[..., 2] ** 2 - radius * radius
    a_safe = np.where(a > 1e-12, a, 1.0)
    disc = b * b - 4.0 * a_safe * c
    ok = (disc >= 0) & (a > 1e-12)
    t = (-b - np.sqrt(np.where(ok, disc, 0.0))) / (2.0 * a_safe)
    y = o[..., 1] + t * d[..., 1]
    hit = ok & (t > 1e-9) & (y >= y0) & (y <= y1)
    return np.where(hit, t, np.inf)


def _hit_disk(o, d, radius, y):
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (y - o[..., 1]) / d[..., 1]
    p = o + np.nan_to_num(t, nan=0.0, posinf=0.0, neginf=0.0)[..., None] * d
    hit = np.isfinite(t) & (t > 1e-9) & (p[..., 0] ** 2 + p[..., 2] ** 2 <= radius * radius)
    return np.where(hit, t, np.inf)


def intersect_object(o: np.ndarray, d: np.ndarray, shape: int, scale: float,
                     scene: Scene = DEFAULT_SCENE) -> tuple[np.ndarray, np.ndarray]:
    """Distance to the object along rays ``o + t d`` (inf on a miss) and the outward unit normal there.

    The object stands on the floor centred on the y axis; it scales about its base.
    """
    o = np.broadcast_to(o, d.shape)
    if shape == 0:  # cube: slab method on an axis-aligned box
        a = scene.cube_side * scale / 2.0
        lo = np.array([-a, 0.0, -a])
        hi = np.array([a, 2.0 * a, a])
        with np.errstate(divide="ignore", invalid="ignore"):
            inv = 1.0 / d
            t_lo = (lo - o) * inv
            t_hi = (hi - o) * inv
        t_near = np.nan_to_num(np.minimum(t_lo, t_hi), nan=-np.inf)
        t_far = np.nan_to_num(np.maximum(t_lo, t_hi), nan=np.inf)
        axis = np.argmax(t_near, -1)
        t_in = np.take_along_axis(t_near, axis[..., None], -1)[..., 0]
        t_out = np.min(t_far, -1)
        hit = (t_in <= t_out) & (t_in > 1e-9)
        t = np.where(hit, t_in, np.inf)
        normal = np.zeros(d.shape)
        np.put_along_axis(normal, axis[..., None], -np.sign(np.take_along_axis(d, axis[..., None], -1)), -1)
        return t, normal
    if shape == 1:  # cylinder with a flat top
        r, hgt = scene.cylinder_radius * scale, scene.cylinder_height * scale
        t_side = _hit_vertical_cylinder(o, d, r, 0.0, hgt)
        t_top = _hit_disk(o, d, r, hgt)
        t = np.minimum(t_side, t_top)
        p = o + np.where(np.isfinite(t), t, 0.0)[..., None] * d
        side_normal = np.stack([p[..., 0], np.zeros_like(t), p[..., 2]], -1) / r
        normal = np.where((t_top <= t_side)[..., None], np.array([0.0, 1.0, 0.0]), side_normal)
        return t, normal
    if shape == 2:  # sphere resting on the floor
        r = scene.sphere_radius * scale
        centre = np.array([0.0, r, 0.0])
        t = _hit_sphere(o, d, centre, r)
        p = o + np.where(np.isfinite(t), t, 0.0)[..., None] * d
        return t, (p - centre) / r
    if shape == 3:  # capsule: a vertical cylinder with hemispherical ends
        r, hgt = scene.capsule_radius * scale, scene.capsule_height * scale
        y0, y1 = r, hgt - r
        t = np.minimum.reduce([_hit_vertical_cylinder(o, d, r, y0, y1),
                               _hit_sphere(o, d, np.array([0.0, y0, 0.0]), r),
                               _hit_sphere(o, d, np.array([0.0, y1, 0.0]), r)])
        p = o + np.where(np.isfinite(t), t, 0.0)[..., None] * d
        axis_point = np.stack([np.zeros_like(t), np.clip(p[..., 1], y0, y1), np.zeros_like(t)], -1)
        return t, (p - axis_point) / r
    raise ValueError(f"shape must be 0..3, got {shape}")


def _texture(p: np.ndarray, surface: np.ndarray) -> np.ndarray:
    """Faint, smooth marbling on floor and walls (a few cosine waves in world coordinates), about +-1."""
    # Walls use (horizontal position along the wall, height); the floor uses (x, z).
    on_floor = surface == FLOOR
    a = np.where(on_floor, p[..., 0], p[..., 0] + p[..., 2])
    b = np.where(on_floor, p[..., 2], p[..., 1])
    wave = (np.sin(2.1 * a + 3.3 * b + 0.7) * 0.5 + np.sin(5.3 * a - 4.1 * b + 1.9) * 0.3
            + np.sin(9.7 * a + 8.9 * b + 0.2) * 0.2)
    return wave


def render_maps(shape: int, scale: float, orientation_deg: float, scene: Scene = DEFAULT_SCENE,
                rays: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """Coefficient maps ``(64, 64, NUM_MAPS)`` float32 of one geometry configuration (see :func:`compose`)."""
    eye, d = rays if rays is not None else camera_rays(orientation_deg, scene)
    t_room, surface, normal = _intersect_room(eye, d, scene)
    t_obj, n_obj = intersect_object(eye, d, shape, scale, scene)
    on_object = t_obj < t_room
    surface = np.where(on_object, OBJECT, surface)
    t = np.where(on_object, t_obj, t_room)
    normal = np.where(on_object[..., None], n_obj, normal)
    p = eye + np.where(np.isfinite(t), t, 0.0)[..., None] * d

    light = np.asarray(scene.light_position)
    to_light = light - p
    dist = np.linalg.norm(to_light, axis=-1, keepdims=True)
    l_dir = to_light / dist
    spot_axis = _normalise(np.asarray(scene.light_target) - light)
    spot = np.clip(np.sum(-l_dir * spot_axis, -1), 0.0, 1.0) ** scene.spot_exponent
    n_dot_l = np.clip(np.sum(normal * l_dir, -1), 0.0, None)
    view = -d
    n_dot_v = np.clip(np.sum(normal * view, -1), 0.0, None)

    # Hard shadow: is the object between the point and the light?  (Only floor and walls receive it.)
    receives = (surface == FLOOR) | (surface == WALL)
    t_block, _ = intersect_object(p + 1e-6 * l_dir, l_dir, shape, scale, scene)
    lit = np.where(receives & (t_block < dist[..., 0]), scene.shadow_keep, 1.0)

    ambient = np.where(surface == OBJECT, scene.object_ambient, scene.ambient)
    level = ambient + scene.head_light * n_dot_v + scene.light_diffuse * n_dot_l * spot * lit
    texture = 1.0 + scene.texture_amplitude * _texture(p, surface)
    level = np.where(receives, level * texture, level)
    # Blinn-Phong highlight of the spot light on the object only (the room is matte).
    half_vec = _normalise(l_dir + view)
    # Weighted by n.l so that it fades out smoothly at the light's terminator instead of switching off.
    highlight = scene.specular * np.clip(np.sum(normal * half_vec, -1), 0.0, None) ** scene.shininess * spot * n_dot_l
    highlight = np.where(surface == OBJECT, highlight, 0.0)

    maps = np.stack([np.where(surface == FLOOR, level, 0.0), np.where(surface == WALL, level, 0.0),
                     np.where(surface == OBJECT, level, 0.0), (surface == SKY).astype(np.float64), highlight], -1)
    return maps.mean(axis=2).astype(np.float32)  # average the supersamples: anti-aliased edges


def compose(maps: np.ndarray, floor_rgb: np.ndarray, wall_rgb: np.ndarray, object_rgb: np.ndarray) -> np.ndarray:
    """uint8 images from coefficient maps ``(..., 64, 64, NUM_MAPS)`` and hue colours (each ``(3,)``).

    ``image = k_floor * floor + k_wall * wall + k_object * object + k_sky * sky + k_white``, clipped per
    channel like a renderer's framebuffer.
    """
    out = maps[..., K_FLOOR, None] * floor_rgb
    out += maps[..., K_WALL, None] * wall_rgb
    out += maps[..., K_OBJECT, None] * object_rgb
    out += maps[..., K_SKY, None] * SKY_RGB
    out += maps[..., K_WHITE, None]
    out *= 255.0
    np.clip(out, 0.0, 255.0, out=out)
    out += 0.5
    return out.astype(np.uint8)


def render_indices(indices, scene: Scene = DEFAULT_SCENE) -> np.ndarray:
    """Render the synthetic images with these official indices only: uint8 ``(n, 64, 64, 3)``."""
    indices = np.asarray(indices, dtype=np.int64).reshape(-1)
    strides = np.array([int(np.prod(FACTOR_SIZES[k + 1:])) for k in range(6)], dtype=np.int64)
    if indices.size and (indices.min() < 0 or indices.max() >= int(np.prod(FACTOR_SIZES))):
        raise ValueError("3D Shapes index out of range 0..479999")
    classes = (indices[:, None] // strides) % np.asarray(FACTOR_SIZES)
    out = np.empty((len(indices), IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8)
    cache: dict[tuple[int, int, int], np.ndarray] = {}
    for i, (f, w, o, sc, sh, ori) in enumerate(classes):
        key = (int(sc), int(sh), int(ori))
        if key not in cache:
            cache[key] = render_maps(int(sh), float(SCALES[sc]), float(ORIENTATIONS[ori]), scene)
        out[i] = compose(cache[key], hue_rgb(HUES[f]), hue_rgb(HUES[w]), hue_rgb(HUES[o]))
    return out


def render_all_maps(scene: Scene = DEFAULT_SCENE, progress=None) -> np.ndarray:
    """Coefficient maps of all 480 configurations, ``(8 scales, 4 shapes, 15 orientations, 64, 64, NUM_MAPS)``."""
    maps = np.empty((len(SCALES), len(SHAPES), len(ORIENTATIONS), IMAGE_SIZE, IMAGE_SIZE, NUM_MAPS), np.float32)
    for k, orientation in enumerate(ORIENTATIONS):
        rays = camera_rays(float(orientation), scene)  # shared by the 32 objects seen from this angle
        for i, scale in enumerate(SCALES):
            for j in range(len(SHAPES)):
                maps[i, j, k] = render_maps(j, float(scale), float(orientation), scene, rays)
                if progress is not None:
                    progress(1)
    return maps
