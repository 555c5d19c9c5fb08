"""The edge atlas: the built-in white-matter-guided proxy (small fast builds), its cache, user atlases."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage as ndi

from gliotype.atlases import (
    TractAtlas,
    atlas_cache_folder,
    build_tract_atlas,
    cached_tract_atlas_path,
    default_tract_atlas,
    load_template,
    load_tract_atlas,
)
from gliotype.atlases import tract_cache, user_tracts
from gliotype.errors import GliotypeError
from gliotype.modalities.crossing import tract_matrix


def test_small_build_shape_and_content(small_tracts, aal, small_spec):
    SMALL_REGIONS, SMALL_TRACTS = small_spec
    t = small_tracts
    assert isinstance(t, TractAtlas) and len(t) == SMALL_TRACTS
    assert t.shape == (99, 117, 95) and t.affine.shape == (4, 4)
    assert t.pairs.shape == (SMALL_TRACTS, 2) and t.pairs.dtype == np.int64
    assert np.all(t.pairs[:, 0] < t.pairs[:, 1])
    assert set(t.pairs.ravel()) <= set(SMALL_REGIONS)
    assert len({tuple(p) for p in t.pairs}) == SMALL_TRACTS
    assert [tuple(p) for p in t.pairs] == sorted(tuple(p) for p in t.pairs)
    assert t.names[0] == f"{aal.name(t.pairs[0, 0])}--{aal.name(t.pairs[0, 1])}"
    n_vox = int(np.prod(t.shape))
    for idx, prob in zip(t.voxel_index, t.probability):
        assert idx.dtype == np.int64 and prob.dtype == np.float32
        assert len(idx) > 10 and np.all(np.diff(idx) > 0)  # sorted, unique
        assert idx.min() >= 0 and idx.max() < n_vox
        assert prob.min() > 0 and prob.max() <= 1.0
    assert t.info["n_pairs"] == 21
    assert t.info["min_support_kept"] >= t.info["max_support_dropped"]  # the best-supported pairs
    assert np.all((t.support > 0) & (t.support <= 1))


def test_tracts_join_their_regions_through_white_matter(small_tracts, aal):
    tpl = load_template(2)
    wm = tpl.wm.ravel()
    brain = tpl.brain_mask.ravel() > 0.5
    labels = aal.labels.ravel()
    for t, (a, b) in enumerate(small_tracts.pairs):
        idx, prob = small_tracts.tract(t)
        touched = np.zeros(labels.size, bool)
        touched[idx] = True
        near = ndi.binary_dilation(touched.reshape(tpl.shape)).ravel()  # the tube or its neighbours
        assert np.any(labels[near] == a) and np.any(labels[near] == b), small_tracts.names[t]
        assert np.all(brain[idx])
        mean_wm = float((wm[idx] * prob).sum() / prob.sum())
        assert mean_wm > wm[brain].mean(), small_tracts.names[t]
        # the most probable voxels are white matter
        assert wm[idx[prob >= 0.5]].mean() > 0.6


def test_build_is_deterministic(small_tracts, aal, small_spec):
    SMALL_REGIONS, SMALL_TRACTS = small_spec
    again = build_tract_atlas(aal, n_tracts=SMALL_TRACTS, regions=SMALL_REGIONS)
    np.testing.assert_array_equal(again.pairs, small_tracts.pairs)
    np.testing.assert_array_equal(again.offsets, small_tracts.offsets)
    np.testing.assert_array_equal(again.indices, small_tracts.indices)
    np.testing.assert_array_equal(again.values, small_tracts.values)


def test_a_build_on_two_processes_is_the_same_atlas(small_tracts, aal, small_spec, monkeypatch):
    """The front propagations dealt out to 2 processes (source regions in turn) give the atlas of
    one process, field for field."""
    from gliotype.atlases import tract_build

    regions, n_tracts = small_spec
    calls = []
    real = tract_build.parallel_map

    def spy(fn, items, workers=1, **kwargs):
        calls.append((workers, [job.sources for job in items]))
        return real(fn, items, workers, **kwargs)

    monkeypatch.setattr(tract_build, "parallel_map", spy)
    two = default_tract_atlas(aal, n_tracts, regions=regions, use_cache=False, workers=2)
    assert calls == [(2, [[0, 2, 4], [1, 3, 5]])]  # 7 regions: sources 0-5, dealt out in turn
    for name in ("pairs", "offsets", "indices", "values", "support", "length_mm"):
        np.testing.assert_array_equal(getattr(two, name), getattr(small_tracts, name))
    assert two.names == small_tracts.names


def test_the_atlas_stage_builds_on_the_runs_workers(aal, tmp_path, monkeypatch):
    """A first build of the built-in atlas in a run uses its ``workers`` (config) processes."""
    from gliotype.config import load_config
    from gliotype.modalities.atlas import atlas_sampling

    class Asked(Exception):
        pass

    def asked(*args, **kwargs):
        raise Asked(kwargs.get("workers"))

    monkeypatch.setattr(user_tracts, "default_tract_atlas", asked)
    with pytest.raises(Asked) as err:
        atlas_sampling(tmp_path / "work", load_config("tiny", overrides=["workers=2"]))
    assert err.value.args == (2,)


def test_dense_volume_and_crossing_matrix(small_tracts):
    t = small_tracts
    vol = t.volume(3)
    idx, prob = t.tract(3)
    assert vol.shape == t.shape and vol.dtype == np.float32
    np.testing.assert_array_equal(np.flatnonzero(vol), idx)
    np.testing.assert_array_equal(vol.ravel()[idx], prob)
    m = tract_matrix(t.voxel_index, t.probability, int(np.prod(t.shape)))
    assert m.shape == (int(np.prod(t.shape)), len(t)) and m.nnz == t.indices.size
    np.testing.assert_allclose(m[:, 3].toarray().ravel(), vol.ravel())
    np.testing.assert_allclose(t.sum_volume().sum(), t.values.sum(), rtol=1e-5)
    assert t.find(*t.pairs[5][::-1]) == 5


def test_more_tracts_than_pairs_keeps_all(aal):
    t = build_tract_atlas(aal, n_tracts=100, regions=(1, 3, 7))
    assert len(t) == 3
    with pytest.raises(GliotypeError, match="not in the node atlas"):
        build_tract_atlas(aal, n_tracts=3, regions=(1, 500))


def test_cache_hit_does_not_rebuild(aal, monkeypatch):
    regions = (1, 3, 7, 57)
    path = cached_tract_atlas_path(aal, 4, regions=regions)
    assert not path.exists()
    first = default_tract_atlas(aal, 4, regions=regions)
    assert path.exists() and path.name.startswith("tracts-builtin-v")

    def no_build(*args, **kwargs):
        raise AssertionError("rebuilt despite the cache")

    monkeypatch.setattr(tract_cache, "build_tract_atlas", no_build)
    second = default_tract_atlas(aal, 4, regions=regions)
    for name in ("pairs", "offsets", "indices", "values", "support", "length_mm"):
        np.testing.assert_array_equal(getattr(second, name), getattr(first, name))
    assert second.names == first.names and second.shape == first.shape
    np.testing.assert_array_equal(second.affine, first.affine)
    # other parameters are another cache file
    assert cached_tract_atlas_path(aal, 4, regions=regions, sigma_vox=1.5) != path
    assert cached_tract_atlas_path(aal, 3, regions=regions) != path
    with pytest.raises(AssertionError, match="rebuilt"):
        default_tract_atlas(aal, 3, regions=regions)


def test_cache_dir_is_an_argument_that_says_where_not_what(small_tracts, aal, tmp_path, cache_root):
    """``cache_dir`` (config ``atlas.cache_dir``) moves the cache files, never their names (keys)."""
    regions = (1, 3, 7)
    mine = tmp_path / "elsewhere"
    assert atlas_cache_folder(None) == cache_root / "atlases"
    assert atlas_cache_folder(mine) == mine / "atlases"
    path = cached_tract_atlas_path(aal, 3, regions=regions, cache_dir=mine)
    assert path.parent == mine / "atlases"
    assert path.name == cached_tract_atlas_path(aal, 3, regions=regions).name
    default_tract_atlas(aal, 3, regions=regions, cache_dir=mine)
    assert path.exists()
    user = _write_4d(small_tracts, tmp_path)
    load_tract_atlas(user, node_atlas=aal, n_tracts=3, cache_dir=str(mine))
    assert len(list((mine / "atlases").glob("tracts-user-v*.npz"))) == 1
    assert not cache_root.exists()  # nothing went to the default folder


def test_damaged_cache_file_is_rebuilt(aal):
    regions = (1, 3, 7)
    path = cached_tract_atlas_path(aal, 3, regions=regions)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"not an npz")
    t = default_tract_atlas(aal, 3, regions=regions)
    assert len(t) == 3 and TractAtlas.load(path).indices.size == t.indices.size


# --------------------------------------------------------------------------- user tract atlases


def _write_4d(small, folder, n=3, scale=1.0, affine=None):
    """The first ``n`` tracts of ``small`` as a 4D NIfTI + CSV."""
    vol = np.stack([small.volume(t) for t in range(n)], axis=-1) * scale
    path = folder / "tracts.nii.gz"
    nib.save(nib.Nifti1Image(vol.astype(np.float32), small.affine if affine is None else affine), str(path))
    rows = "\n".join(f"{a},{b}" for a, b in small.pairs[:n])
    (folder / "tracts.csv").write_text("region_a,region_b\n" + rows + "\n")
    return path


def test_user_4d_atlas_and_csv(small_tracts, aal, tmp_path):
    path = _write_4d(small_tracts, tmp_path)
    user = load_tract_atlas(path, node_atlas=aal, n_tracts=3)
    assert len(user) == 3 and user.source == "tracts.nii.gz"
    np.testing.assert_array_equal(user.pairs, small_tracts.pairs[:3])
    for t in range(3):
        i0, p0 = small_tracts.tract(t)
        i1, p1 = user.tract(t)
        np.testing.assert_array_equal(i1, i0)
        np.testing.assert_allclose(p1, p0, rtol=1e-6)
    assert user.names[0] == small_tracts.names[0]


def test_user_atlas_in_percent_on_another_grid(small_tracts, aal, tmp_path):
    path = _write_4d(small_tracts, tmp_path, scale=100.0)
    user = load_tract_atlas(path, node_atlas=aal, n_tracts=None)
    assert user.info["rescaled"] == 3 and user.values.max() <= 1.0
    # the same tracts written on a 1 mm grid (nearest upsampling) land on the same voxels
    vol = np.stack([small_tracts.volume(t) for t in range(2)], axis=-1)
    fine = np.repeat(np.repeat(np.repeat(vol, 2, 0), 2, 1), 2, 2)
    a1 = small_tracts.affine.copy()
    a1[:3, :3] /= 2.0
    a1[:3, 3] -= 0.5
    folder = tmp_path / "fine"
    folder.mkdir()
    nib.save(nib.Nifti1Image(fine[..., 0], a1), str(folder / "b.nii.gz"))
    nib.save(nib.Nifti1Image(fine[..., 1], a1), str(folder / "a.nii.gz"))
    (folder / "pairs.csv").write_text(
        "region_a,region_b,file\n"
        f"{small_tracts.pairs[0][0]},{small_tracts.pairs[0][1]},b.nii.gz\n"
        f"{small_tracts.pairs[1][0]},{small_tracts.pairs[1][1]},a.nii.gz\n")
    user = load_tract_atlas(folder, node_atlas=aal, n_tracts=2)
    for t in range(2):
        i0, p0 = small_tracts.tract(t)
        i1, p1 = user.tract(t)
        np.testing.assert_array_equal(i1, i0)
        np.testing.assert_allclose(p1, p0, atol=1e-5)


def test_user_folder_matched_by_sorted_names(small_tracts, aal, tmp_path):
    for t, name in enumerate(("t0.nii.gz", "t1.nii.gz")):
        nib.save(small_tracts.image(t), str(tmp_path / name))
    (tmp_path / "tracts.csv").write_text("Region_A, Region_B\n" + "\n".join(
        f"{a}, {b}" for a, b in small_tracts.pairs[:2]) + "\n")
    user = load_tract_atlas(tmp_path, node_atlas=aal, n_tracts=2)
    np.testing.assert_array_equal(user.indices[: user.offsets[1]], small_tracts.tract(0)[0])


def test_user_atlas_is_cached_until_the_file_changes(small_tracts, aal, tmp_path, monkeypatch):
    path = _write_4d(small_tracts, tmp_path)
    first = load_tract_atlas(path, node_atlas=aal, n_tracts=3)
    monkeypatch.setattr(user_tracts, "_load_user_tracts", lambda *a: (_ for _ in ()).throw(AssertionError("reread")))
    again = load_tract_atlas(path, node_atlas=aal, n_tracts=3)
    np.testing.assert_array_equal(again.indices, first.indices)
    (tmp_path / "tracts.csv").write_text("region_a,region_b\n1,2\n1,7\n2,7\n")
    with pytest.raises(AssertionError, match="reread"):
        load_tract_atlas(path, node_atlas=aal, n_tracts=3)


def _bad(tmp_path, small, case):
    path = _write_4d(small, tmp_path)
    csv = tmp_path / "tracts.csv"
    if case == "no_csv":
        csv.unlink()
    elif case == "columns":
        csv.write_text("from,to\n1,2\n1,7\n2,7\n")
    elif case == "rows":
        csv.write_text("region_a,region_b\n1,2\n1,7\n")
    elif case == "label":
        csv.write_text("region_a,region_b\n1,2\n1,700\n2,7\n")
    elif case == "self":
        csv.write_text("region_a,region_b\n1,2\n7,7\n2,7\n")
    elif case == "text":
        csv.write_text("region_a,region_b\n1,2\nx,7\n2,7\n")
    elif case == "empty":
        vol = np.stack([small.volume(0), np.zeros(small.shape, np.float32), small.volume(2)], -1)
        nib.save(nib.Nifti1Image(vol, small.affine), str(path))
    elif case == "3d":
        nib.save(small.image(0), str(path))
    elif case == "negative":
        nib.save(nib.Nifti1Image(-np.stack([small.volume(t) for t in range(3)], -1), small.affine), str(path))
    elif case == "garbage":
        path.write_bytes(b"garbage")
    elif case == "missing":
        path = tmp_path / "nope.nii.gz"
    return path


@pytest.mark.parametrize("case, message", [
    ("no_csv", "CSV of region pairs is missing"),
    ("columns", "needs columns region_a, region_b"),
    ("rows", "3 volumes but 2 rows"),
    ("label", r"region labels \[700\] are not in the node atlas"),
    ("self", "two different regions"),
    ("text", "must be integers"),
    ("empty", "no voxel inside the MNI152 brain mask"),
    ("3d", "expected a 4D NIfTI"),
    ("negative", "must be >= 0"),
    ("garbage", "not a readable NIfTI"),
    ("missing", "not found"),
])
def test_bad_user_tract_atlas(small_tracts, aal, tmp_path, case, message):
    path = _bad(tmp_path, small_tracts, case)
    with pytest.raises(GliotypeError, match=message):
        load_tract_atlas(path, node_atlas=aal, n_tracts=3)


def test_bad_user_folder(small_tracts, aal, tmp_path):
    nib.save(small_tracts.image(0), str(tmp_path / "t0.nii.gz"))
    with pytest.raises(GliotypeError, match="expected one CSV"):
        load_tract_atlas(tmp_path, node_atlas=aal)
    (tmp_path / "tracts.csv").write_text("region_a,region_b\n1,2\n1,7\n")
    with pytest.raises(GliotypeError, match="1 NIfTI files but 2 rows"):
        load_tract_atlas(tmp_path, node_atlas=aal)
    (tmp_path / "tracts.csv").write_text("region_a,region_b,file\n1,2,t0.nii.gz\n1,7,t9.nii.gz\n")
    with pytest.raises(GliotypeError, match="missing"):
        load_tract_atlas(tmp_path, node_atlas=aal)
