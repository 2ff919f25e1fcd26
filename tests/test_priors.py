"""Prior exports read back the way each consumer reads them.

Each format is written from a sample scene's ground-truth depth and normals, then read with
a re-implementation of the consumer's loading code (file names, dtypes, units, axes, pixel
convention, pose convention, cited in recon/priors/*.py), and the decoded depth is
backprojected with the decoded camera into the world and compared with the ground-truth mesh.
"""

from __future__ import annotations

import json
import warnings
import weakref
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
from PIL import Image
from scipy.spatial.transform import Rotation

from recon.errors import ConfigError, InputError
from recon.priors import FORMATS, SparsePoints, resolve_format, write_priors
from recon.records import Camera, Frame, SparseObservations


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    """Frames with GT poses, GT depth/normals, SfM-like points and a distance-to-GT function."""
    from sample_scenes.generator import generate_scene
    from sample_scenes.scene import load_scene, render_ground_truth, scene_frames

    committed = Path(__file__).resolve().parents[1] / "sample_scenes" / "room_small"
    if (committed / "scene.json").is_file():
        root = committed
    else:
        root = generate_scene(tmp_path_factory.mktemp("scene"), "room", 5, 3, 160, 120)
    gt = load_scene(root)
    frames = scene_frames(gt)[:3]
    depths, normals = zip(*(render_ground_truth(gt, f.name) for f in frames))
    frames, points = _with_sparse(frames, depths)
    return {
        "frames": frames,
        "depths": list(depths),
        "normals": list(normals),
        "points": points,
        "distance": _distance_fn(gt.mesh_path),
    }


def _distance_fn(mesh_path):
    """Exact point -> ground-truth mesh distance (metres)."""
    import open3d as o3d

    from sample_scenes.render import make_raycaster
    from sample_scenes.scene import load_mesh

    verts, tris, _ = load_mesh(mesh_path)
    rc = make_raycaster(verts, tris)
    return lambda pts: rc.compute_distance(o3d.core.Tensor(pts.astype(np.float32))).numpy()


def _with_sparse(frames, depths, n=200, seed=0):
    """Points seen by the first view, observed by every view where GT depth agrees."""
    rng = np.random.default_rng(seed)
    d0, f0 = depths[0], frames[0]
    ii, jj = np.nonzero(d0 > 0)
    pick = rng.choice(len(ii), n, replace=False)
    i, j = ii[pick], jj[pick]
    K0 = f0.camera.K
    cam = np.stack(
        [(j + 0.5 - K0[0, 2]) / K0[0, 0], (i + 0.5 - K0[1, 2]) / K0[1, 1], np.ones(n)], 1
    )
    xyz = (cam * d0[i, j, None]) @ f0.world_from_cam[:3, :3].T + f0.world_from_cam[:3, 3]
    ids = np.arange(100, 100 + n, dtype=np.int64)
    out = []
    for frame, depth in zip(frames, depths):
        pc = xyz @ frame.cam_from_world[:3, :3].T + frame.cam_from_world[:3, 3]
        uv = pc[:, :2] / pc[:, 2:] * np.diag(frame.camera.K)[:2] + frame.camera.K[:2, 2]
        h, w = depth.shape
        inside = (
            (pc[:, 2] > 0) & (uv[:, 0] >= 0) & (uv[:, 0] < w) & (uv[:, 1] >= 0) & (uv[:, 1] < h)
        )
        seen = np.zeros(n, bool)
        col, row = np.floor(uv[inside]).astype(int).T
        seen[inside] = np.abs(depth[row, col] - pc[inside, 2]) < 0.02 * pc[inside, 2]
        sparse = SparseObservations(
            uv=uv[seen], z=pc[seen, 2], reprojection_error=np.full(seen.sum(), 0.3),
            track_length=np.full(seen.sum(), 2), point_ids=ids[seen],
        )  # fmt: skip
        out.append(Frame(frame.name, frame.image, frame.camera, frame.cam_from_world, sparse))
    rgb = np.full((n, 3), 200, np.uint8)
    return out, SparsePoints(xyz=xyz, rgb=rgb, error=np.full(n, 0.3), ids=ids)


def _write(scene, fmt, out, **kw):
    return write_priors(
        fmt, out, scene["frames"], scene["depths"], scene["normals"], None, scene["points"], **kw
    )


def _backproject(depth, K, c2w, pixel_offset):
    """World points of a z-depth map; pixel (i, j) at (j + offset, i + offset) in K's coords."""
    h, w = depth.shape
    jj, ii = np.meshgrid(np.arange(w) + pixel_offset, np.arange(h) + pixel_offset)
    ok = depth > 0
    x = (jj[ok] - K[0, 2]) / K[0, 0]
    y = (ii[ok] - K[1, 2]) / K[1, 1]
    cam = np.stack([x, y, np.ones_like(x)], 1) * depth[ok, None]
    return cam @ c2w[:3, :3].T + c2w[:3, 3], ok


def _check_depth(scene, k, depth, K, c2w, offset, tol):
    """Decoded depth covers the GT pixels and reprojects onto the GT mesh within tol."""
    pts, ok = _backproject(depth, K, c2w, offset)
    gt_ok = scene["depths"][k] > 0
    assert ok.sum() >= 0.999 * gt_ok.sum()
    assert np.all(ok <= gt_ok)
    dist = scene["distance"](pts)
    assert np.percentile(dist, 99) < tol, np.percentile(dist, [50, 99])


def _angle_deg(a, b):
    ok = (np.linalg.norm(a, axis=-1) > 0.5) & (np.linalg.norm(b, axis=-1) > 0.5)
    return np.degrees(np.arccos(np.clip((a[ok] * b[ok]).sum(-1), -1, 1)))


def _read_png(path):
    return np.asarray(Image.open(path))


def test_nerfstudio_layout(scene, tmp_path):
    """nerfstudio_dataparser + depth_dataset: mm PNG x 1e-3, OpenGL c2w, rays at pixel + 0.5."""
    _write(scene, "nerfstudio", tmp_path)
    meta = json.loads((tmp_path / "transforms.json").read_text())
    assert meta["applied_transform"] == np.eye(4)[:3].tolist()
    for k, fr in enumerate(meta["frames"]):
        assert (tmp_path / fr["file_path"]).is_file()
        raw = _read_png(tmp_path / fr["depth_file_path"])
        assert raw.dtype == np.uint16
        depth = raw.astype(np.float64) * 1e-3  # depth_unit_scale_factor default
        c2w_gl = np.array(fr["transform_matrix"])
        K = np.array([[fr["fl_x"], 0, fr["cx"]], [0, fr["fl_y"], fr["cy"]], [0, 0, 1]])
        # nerfstudio camera rays: (x, -y, -1) in OpenGL axes == OpenCV (x, y, 1) rotated
        c2w_cv = c2w_gl @ np.diag([1, -1, -1, 1])
        _check_depth(scene, k, depth, K, c2w_cv, 0.5, tol=1.5e-3)
        normal_png = _read_png(tmp_path / fr["normal_file_path"]).astype(np.float64) / 255.0
        n_cv = (2 * normal_png - 1) @ np.diag([1, -1, -1])  # dn_dataset "opengl" conversion
        assert np.median(_angle_deg(n_cv, scene["normals"][k])) < 1.0
    assert (tmp_path / meta["ply_file_path"]).is_file()


def test_dn_splatter_layout(scene, tmp_path):
    """coolermap_dataparser: colmap/sparse/0, mono_depth/*_aligned.npy (metres), normals PNG."""
    import pycolmap

    _write(scene, "dn-splatter", tmp_path)
    rec = pycolmap.Reconstruction(str(tmp_path / "colmap" / "sparse" / "0"))
    images = sorted((tmp_path / "images").glob("*.png"))
    depths = sorted((tmp_path / "mono_depth").glob("*_aligned.npy"))
    normals = sorted((tmp_path / "normals_from_pretrain").glob("*.png"))
    assert [p.stem for p in images] == [p.stem[: -len("_aligned")] for p in depths]
    assert [p.stem for p in images] == [p.stem for p in normals]
    by_name = {im.name: im for im in rec.images.values()}
    for k, path in enumerate(images):
        im = by_name[path.name]
        K = rec.cameras[im.camera_id].calibration_matrix()
        c2w = np.linalg.inv(np.vstack([im.cam_from_world().matrix(), [0, 0, 0, 1]]))
        depth = np.load(depths[k]).astype(np.float64)  # depth_unit_scale_factor 1
        _check_depth(scene, k, depth, K, c2w, 0.5, tol=1e-4)


def test_monosdf_layout(scene, tmp_path):
    """SceneDatasetDN + load_K_Rt_from_P: P = world_mat @ scale_mat, rays at integer uv."""
    _write(scene, "monosdf", tmp_path)
    cams = np.load(tmp_path / "cameras.npz")
    depth_paths = sorted(tmp_path.glob("*_depth.npy"))
    normal_paths = sorted(tmp_path.glob("*_normal.npy"))
    assert len(sorted(tmp_path.glob("*_rgb.png"))) == len(depth_paths) == 3
    for k, (dp, npath) in enumerate(zip(depth_paths, normal_paths)):
        scale_mat = cams[f"scale_mat_{k}"].astype(np.float64)
        P = (cams[f"world_mat_{k}"].astype(np.float64) @ scale_mat)[:3, :4]
        K, pose = _load_K_Rt_from_P(P)
        depth = np.load(dp).astype(np.float64)
        assert depth.shape == scene["depths"][k].shape
        pts, ok = _backproject(depth, K, pose, 0.0)  # integer pixel coordinates
        world = pts @ scale_mat[:3, :3].T + scale_mat[:3, 3]
        assert np.percentile(scene["distance"](world), 99) < 1e-4
        # every camera and most of the scene inside MonoSDF's unit sphere
        assert np.linalg.norm(pose[:3, 3]) < 1.0
        assert np.percentile(np.linalg.norm(pts, axis=1), 95) < 1.0
        normal = np.load(npath)
        assert normal.shape == (3, *depth.shape)
        n_cv = (normal * 2 - 1).transpose(1, 2, 0)
        assert np.median(_angle_deg(n_cv, scene["normals"][k])) < 0.1


def _load_K_Rt_from_P(P):
    """MonoSDF's rend_util.load_K_Rt_from_P without OpenCV: P = K [R | t] -> K, c2w."""
    K, R = scipy.linalg.rq(P[:, :3])
    signs = np.diag(np.sign(np.diag(K)))
    K, R = K @ signs, signs @ R
    K = K / K[2, 2]
    centre = -np.linalg.solve(P[:, :3], P[:, 3])
    pose = np.eye(4)
    pose[:3, :3] = R.T
    pose[:3, 3] = centre
    return K, pose


def _read_tum(root):
    """MonoGS TUMParser: loadtxt lists (groundtruth skiprows=1), quaternion + t -> c2w."""
    with warnings.catch_warnings():  # numpy notes the skipped comment lines
        warnings.simplefilter("ignore", UserWarning)
        rgb = np.loadtxt(root / "rgb.txt", delimiter=" ", dtype=str)
        depth = np.loadtxt(root / "depth.txt", delimiter=" ", dtype=str)
        poses = np.loadtxt(root / "groundtruth.txt", delimiter=" ", dtype=str, skiprows=1)
    pose_vecs = poses[:, 0:].astype(np.float64)
    assert len(rgb) == len(depth) == len(poses)
    out = []
    for i in range(len(rgb)):
        t = float(rgb[i, 0])
        j = int(np.argmin(np.abs(depth[:, 0].astype(float) - t)))
        k = int(np.argmin(np.abs(pose_vecs[:, 0] - t)))
        T = np.eye(4)
        T[:3, :3] = Rotation.from_quat(pose_vecs[k][4:]).as_matrix()
        T[:3, 3] = pose_vecs[k][1:4]
        out.append((root / rgb[i, 1], root / depth[j, 1], T))
    return out


def _tum_K(calibration):
    c = calibration
    return np.array([[c["fx"], 0, c["cx"]], [0, c["fy"], c["cy"]], [0, 0, 1]], dtype=np.float64)


def test_tum_monogs_layout(scene, tmp_path):
    import yaml

    _write(scene, "monogs", tmp_path)
    calib = yaml.safe_load((tmp_path / "calibration.yaml").read_text())["Calibration"]
    assert calib["depth_scale"] == 5000
    K = _tum_K(calib)
    for k, (rgb, dpath, c2w) in enumerate(_read_tum(tmp_path)):
        assert np.asarray(Image.open(rgb)).shape[:2] == scene["depths"][k].shape
        depth = np.asarray(Image.open(dpath)).astype(np.float64) / calib["depth_scale"]
        _check_depth(scene, k, depth, K, c2w, 0.0, tol=3e-4)  # integer pixel centres
    assoc = (tmp_path / "associations.txt").read_text().split()
    assert len(assoc) == 4 * 3


def test_splat_slam_layout(scene, tmp_path):
    import yaml

    _write(scene, "splat-slam", tmp_path)
    cfg = yaml.safe_load((tmp_path / "splat_slam.yaml").read_text())
    root = Path(cfg["data"]["output"]) / cfg["scene"]
    assert root.resolve() == tmp_path.resolve()
    cam = cfg["cam"]
    assert (cam["H_out"], cam["W_out"]) == (cam["H"], cam["W"])
    K = _tum_K(cam)
    for k, (_, _, c2w) in enumerate(_read_tum(tmp_path)):
        depth = np.load(root / "mono_priors" / "depths" / f"{k:05d}.npy").astype(np.float64)
        assert depth.shape == (cam["H_out"], cam["W_out"])
        _check_depth(scene, k, depth, K, c2w, 0.0, tol=1e-4)


def test_colmap_layout(scene, tmp_path):
    import pycolmap

    _write(scene, "colmap", tmp_path)
    rec = pycolmap.Reconstruction(str(tmp_path / "sparse" / "0"))
    assert rec.num_images() == 3 and rec.num_cameras() == 1
    pts = scene["points"]
    assert rec.num_points3D() == len(pts.xyz)  # every point is seen by view 0
    xyz = np.array([p.xyz for p in rec.points3D.values()])
    assert scene["distance"](xyz).max() < 1e-4
    for frame in scene["frames"]:
        im = next(i for i in rec.images.values() if i.name == Path(frame.name).stem + ".png")
        T = np.vstack([im.cam_from_world().matrix(), [0, 0, 0, 1]])
        assert np.allclose(T, frame.cam_from_world, atol=1e-9)
        assert np.allclose(rec.cameras[im.camera_id].calibration_matrix(), frame.camera.K)
        assert (tmp_path / "images" / im.name).is_file()
        for p2d in im.points2D:  # observations reproject onto their 3D points
            xyz = rec.points3D[p2d.point3D_id].xyz
            assert np.linalg.norm(im.project_point(xyz) - p2d.xy) < 1e-6


def test_npz_layout(scene, tmp_path):
    _write(scene, "npz", tmp_path)
    index = json.loads((tmp_path / "index.json").read_text())
    for k, frame in enumerate(scene["frames"]):
        stem = next(s for s, n in index["views"].items() if n == frame.name)
        data = np.load(tmp_path / "views" / f"{stem}.npz")
        c2w = np.linalg.inv(data["cam_from_world"])
        _check_depth(scene, k, data["depth"].astype(np.float64), data["K"], c2w, 0.5, tol=1e-4)
        world = data["normal_camera"] @ data["cam_from_world"][:3, :3]
        assert np.allclose(world, data["normal_world"], atol=1e-6)
        assert str(data["name"]) == frame.name


def test_format_names_and_single_camera_rule(scene, tmp_path):
    assert resolve_format("MonoGS") == "tum"
    with pytest.raises(ConfigError, match="did you mean"):
        resolve_format("nerfstuido")
    assert set(FORMATS) >= {"nerfstudio", "dn-splatter", "monosdf", "tum", "splat-slam"}
    frames = list(scene["frames"])
    f = frames[1]
    other = Camera(K=f.camera.K * [[1.1], [1.1], [1]], width=f.camera.width, height=f.camera.height)
    frames[1] = Frame(f.name, f.image, other, f.cam_from_world)
    with pytest.raises(InputError, match="one camera"):
        write_priors("tum", tmp_path / "t", frames, scene["depths"])
    assert not (tmp_path / "t").exists()  # nothing half-written


def test_export_priors_pipeline(scene, tmp_path):
    from pipelines.priors import export_priors

    conf = [np.full(d.shape, 0.5, np.float32) for d in scene["depths"]]
    result = export_priors(
        scene["frames"], scene["depths"], tmp_path, ["nerfstudio", "monogs", "npz"],
        normals=scene["normals"], confidences=conf, points3d=scene["points"],
    )  # fmt: skip
    assert set(result.formats) == {"nerfstudio", "tum", "npz"}
    assert (tmp_path / "tum" / "groundtruth.txt").is_file()
    assert len(result.previews) == 3 * 3
    preview = np.asarray(Image.open(result.previews[0]))
    assert preview.dtype == np.uint8 and preview.shape[2] == 3
    summary = json.loads((tmp_path / "priors.json").read_text())
    assert summary["formats"]["npz"]["views"] == 3


def test_previews_colormaps_and_encodings(tmp_path):
    from recon.preview import TURBO, VIRIDIS, colorize_depth, colorize_normal, write_previews

    assert tuple(VIRIDIS[0]) == (68, 1, 84) and tuple(VIRIDIS[-1]) == (253, 231, 37)
    assert TURBO[128, 1] > 200 and TURBO[0].sum() < 150 and TURBO[-1, 0] > 5 * TURBO[-1, 2]
    assert TURBO[64, 2] > 200  # blue quarter, green middle, red end
    depth = np.array([[1.0, 2.0], [4.0, np.nan]])
    rgb = colorize_depth(depth)
    assert tuple(rgb[1, 1]) == (0, 0, 0)  # unknown is black
    assert rgb[0, 0, 0] > rgb[0, 0, 2] and rgb[1, 0, 2] > rgb[1, 0, 0]  # near red, far blue
    wall = np.zeros((1, 2, 3))
    wall[..., 2] = -1.0  # OpenCV: a wall facing the camera
    assert tuple(colorize_normal(wall)[0, 0]) == (128, 128, 255)
    paths = write_previews(tmp_path, "v", depth, wall.repeat(2, 0), np.full((2, 2), 0.5))
    assert [p.name for p in paths] == ["v_depth.png", "v_normal.png", "v_confidence.png"]


def test_nested_names_nan_depth_and_views(scene, tmp_path):
    from pipelines.priors import export_views
    from recon.records import View

    frames = [
        Frame(f"sub/dir/{Path(f.name).name}", f.image, f.camera, f.cam_from_world)
        for f in scene["frames"]
    ]
    depths = [np.where(d > 0, d, np.nan) for d in scene["depths"]]
    views = [
        View(frame=f, depth=d, normal=n, weight=np.full(d.shape, 4.0, np.float32))
        for f, d, n in zip(frames, depths, scene["normals"])
    ]
    result = export_views(views, tmp_path, ["npz"], previews=False)
    stem = "sub__dir__" + Path(frames[0].name).stem
    data = np.load(tmp_path / "npz" / "views" / f"{stem}.npz")
    assert np.all(np.isfinite(data["depth"])) and np.all(data["confidence"] == 1.0)
    assert result.formats["npz"].views == 3


def test_streamed_views_write_the_same_files_loading_one_view_at_a_time(scene, tmp_path):
    """Views streamed from a loader give byte-identical files to in-memory views, and the
    writers hold a bounded number of views (not all of them) whatever their count."""
    import dataclasses

    from pipelines.priors import export_prepared, export_priors
    from recon.priors import StreamedViews

    n = 9  # the three scene frames, each under three names
    frames = [dataclasses.replace(scene["frames"][k % 3], name=f"v{k:02d}.jpg") for k in range(n)]
    depths = [scene["depths"][k % 3] for k in range(n)]
    normals = [scene["normals"][k % 3] for k in range(n)]
    formats = ["nerfstudio", "monosdf", "tum", "npz"]
    export_priors(frames, depths, tmp_path / "memory", formats, normals, None, scene["points"])

    refs: list[weakref.ref] = []
    peak = [0]

    class Counted(StreamedViews):
        """Counts the views alive when each new one is built."""

        def __getitem__(self, i):
            view = super().__getitem__(i)
            if isinstance(i, slice):
                return view
            refs.append(weakref.ref(view))
            peak[0] = max(peak[0], sum(r() is not None for r in refs))
            return view

    def load(i):
        return frames[i], depths[i], normals[i], None

    names = [f.name for f in frames]
    export_prepared(Counted(names, load), tmp_path / "streamed", formats, scene["points"])
    # A loop variable can outlive its loop while the next pass builds views: a few alive.
    assert peak[0] <= 3
    memory = sorted(p.relative_to(tmp_path / "memory") for p in (tmp_path / "memory").rglob("*"))
    streamed = sorted(
        p.relative_to(tmp_path / "streamed") for p in (tmp_path / "streamed").rglob("*")
    )
    assert memory == streamed and len(memory) > 4 * n
    for rel in memory:
        a, b = tmp_path / "memory" / rel, tmp_path / "streamed" / rel
        if a.is_file() and rel.name != "priors.json":  # the summary names its own folder
            assert a.read_bytes() == b.read_bytes(), rel
