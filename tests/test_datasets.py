"""simulations.datasets: containers, the Gaussian mixture, the glyph benchmark and its cache,
safe unpickling and tar extraction, and the CIFAR-FS / FC100 / mini-ImageNet loaders.

The real-data loaders are tested on tiny files written here in the real formats: a CIFAR-100
archive whose pickles are written the way Python 2 wrote the real ones (``str`` data read back
with ``encoding="latin1"``, ``numpy.core.multiarray._reconstruct``), mini-ImageNet pickle
caches and image folders. The class tables below (CIFAR-100 names and superclasses, the
CIFAR-FS and FC100 splits) are typed here independently of the module, from the CIFAR-100
web page (Krizhevsky 2009), Bertinetto et al. 2019 (R2D2 split files) and Oreshkin et al.
2018, so a typo in either copy fails a test.
"""

from __future__ import annotations

import io
import os
import pickle
import struct
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest

from ncbounds import NCBoundsError, NCBoundsWarning
from simulations import datasets as ds
from simulations.datasets import (
    ArrayDataset,
    FewShotSplits,
    cifar_fs,
    fc100,
    gaussian_mixture,
    glyph_classes,
    glyphs,
    mini_imagenet,
    safe_extract,
    safe_unpickle,
)

# ----------------------------------------------------------------------------- reference tables

# CIFAR-100 superclasses and their classes (CIFAR-100 web page), in the archive's spelling;
# the fine and coarse label ids are the alphabetical ranks of the names.
SUPERCLASSES = {
    "aquatic_mammals": "beaver dolphin otter seal whale",
    "fish": "aquarium_fish flatfish ray shark trout",
    "flowers": "orchid poppy rose sunflower tulip",
    "food_containers": "bottle bowl can cup plate",
    "fruit_and_vegetables": "apple mushroom orange pear sweet_pepper",
    "household_electrical_devices": "clock keyboard lamp telephone television",
    "household_furniture": "bed chair couch table wardrobe",
    "insects": "bee beetle butterfly caterpillar cockroach",
    "large_carnivores": "bear leopard lion tiger wolf",
    "large_man-made_outdoor_things": "bridge castle house road skyscraper",
    "large_natural_outdoor_scenes": "cloud forest mountain plain sea",
    "large_omnivores_and_herbivores": "camel cattle chimpanzee elephant kangaroo",
    "medium_mammals": "fox porcupine possum raccoon skunk",
    "non-insect_invertebrates": "crab lobster snail spider worm",
    "people": "baby boy girl man woman",
    "reptiles": "crocodile dinosaur lizard snake turtle",
    "small_mammals": "hamster mouse rabbit shrew squirrel",
    "trees": "maple_tree oak_tree palm_tree pine_tree willow_tree",
    "vehicles_1": "bicycle bus motorcycle pickup_truck train",
    "vehicles_2": "lawn_mower rocket streetcar tank tractor",
}
COARSE_OF = {f: c for c, fs in SUPERCLASSES.items() for f in fs.split()}
FINE = sorted(COARSE_OF)
COARSE = sorted(SUPERCLASSES)
# CIFAR-FS (Bertinetto et al. 2019): the 16 validation and 20 test classes; the rest train.
CIFAR_FS_VAL = set("otter motorcycle television lamp crocodile shark butterfly beaver beetle "
                   "tractor flatfish maple_tree camel crab sea cattle".split())
CIFAR_FS_TEST = set("baby bed bicycle chimpanzee fox leopard man pickup_truck plain poppy rocket "
                    "rose snail sweet_pepper table telephone wardrobe whale woman worm".split())
# FC100 (Oreshkin et al. 2018), superclass indices 0..19 of the alphabetical coarse names.
FC100_VAL = {COARSE[i] for i in (8, 11, 13, 16)}
FC100_TEST = {COARSE[i] for i in (0, 7, 12, 14)}


def test_reference_tables_are_complete():
    assert len(FINE) == 100 and len(COARSE) == 20
    assert all(len(v.split()) == 5 for v in SUPERCLASSES.values())
    assert len(CIFAR_FS_VAL) == 16 and len(CIFAR_FS_TEST) == 20
    assert CIFAR_FS_VAL.isdisjoint(CIFAR_FS_TEST) and (CIFAR_FS_VAL | CIFAR_FS_TEST) < set(FINE)


def test_module_split_tables_match_the_references():
    assert set(ds.CIFAR_FS_SPLIT["val"]) == CIFAR_FS_VAL
    assert set(ds.CIFAR_FS_SPLIT["test"]) == CIFAR_FS_TEST
    assert set(ds.CIFAR_FS_SPLIT["train"]) == set(FINE) - CIFAR_FS_VAL - CIFAR_FS_TEST
    assert [len(ds.CIFAR_FS_SPLIT[k]) for k in ("train", "val", "test")] == [64, 16, 20]
    assert set(ds.FC100_SPLIT["val"]) == FC100_VAL and set(ds.FC100_SPLIT["test"]) == FC100_TEST
    assert set(ds.FC100_SPLIT["train"]) == set(COARSE) - FC100_VAL - FC100_TEST
    assert [len(ds.FC100_SPLIT[k]) for k in ("train", "val", "test")] == [12, 4, 4]


# ----------------------------------------------------------------------------- containers


def test_array_dataset_labels_and_torch():
    x = np.arange(10, dtype=np.float32).reshape(5, 2)
    d = ArrayDataset(x, np.array([9, -2, 9, 4, 4], dtype=np.int32), {9: "a", -2: "b", 4: "c"})
    assert d.y.dtype == np.int64 and d.n_classes == 3 and len(d) == 5
    # reference: rank of each label among the sorted distinct labels
    ranks = {c: i for i, c in enumerate(sorted({9, -2, 4}))}
    assert d.dense_labels().tolist() == [ranks[v] for v in [9, -2, 9, 4, 4]]
    t = d.to_torch(dense_labels=True)
    xs, ys = t.tensors
    assert len(t) == 5 and xs.dtype.is_floating_point and ys.tolist() == d.dense_labels().tolist()
    assert d.to_torch().tensors[1].tolist() == [9, -2, 9, 4, 4]
    sub = d.subset(d.y == 4)
    assert sub.classes.tolist() == [4] and sub.class_names[4] == "c"
    with pytest.raises(TypeError):
        d.class_names[1] = "x"  # read-only


@pytest.mark.parametrize(
    "x, y, names, match",
    [
        (np.zeros((3, 2)), np.zeros(3, int), None, "x: expected a float32"),
        (np.zeros((3, 2, 2), np.float32), np.zeros(3, int), None, "x: expected"),
        (np.zeros((3, 2), np.float32), np.zeros(4, int), None, "y: expected one label"),
        (np.zeros((3, 2), np.float32), np.zeros(3), None, "y: expected 1-D integer"),
        (np.zeros((3, 2), np.float32), np.arange(3), {0: "a"}, "class_names: .*missing"),
    ],
)
def test_array_dataset_rejects_bad_input(x, y, names, match):
    with pytest.raises(NCBoundsError, match=match):
        ArrayDataset(x, y, names)


def test_few_shot_splits_enforce_disjoint_classes():
    def part(labels):
        return ArrayDataset(np.zeros((len(labels), 1), np.float32), np.array(labels))

    FewShotSplits(part([0, 1]), part([1]), part([2]), validation=part([3]))
    with pytest.raises(NCBoundsError, match="target: .*disjoint.*1 shared: \\[1\\]"):
        FewShotSplits(part([0, 1]), part([1]), part([1, 2]))
    with pytest.raises(NCBoundsError, match="validation: .*disjoint"):
        FewShotSplits(part([0, 1]), part([1]), part([2]), validation=part([0]))
    with pytest.raises(NCBoundsError, match="source_test: expected only source classes"):
        FewShotSplits(part([0, 1]), part([5]), part([2]))


def test_split_per_class_holds_out_the_last_samples_of_each_class():
    y = np.random.default_rng(0).integers(0, 5, 60)
    x = np.arange(60, dtype=np.float32)[:, None]
    train, test = ds._split_per_class(x, y, 2)
    # reference: a loop over classes picking the last two indices of each
    expected = sorted(i for c in np.unique(y) for i in np.flatnonzero(y == c)[-2:])
    assert test.x.ravel().tolist() == expected
    assert sorted(train.x.ravel().tolist() + expected) == list(range(60))


# ----------------------------------------------------------------------------- Gaussian mixture


def test_gaussian_mixture_shapes_classes_and_determinism():
    kw = dict(n_source_classes=6, n_target_classes=3, per_class=10, test_per_class=3,
              input_dim=12, latent_dim=4)
    a, b, c = (gaussian_mixture(**kw, rng=seed) for seed in (7, 7, 8))
    assert a.source_train.x.shape == (6 * 7, 12) and a.source_test.x.shape == (6 * 3, 12)
    assert a.target.x.shape == (30, 12) and a.target.x.dtype == np.float32
    assert a.source_train.y.dtype == np.int64
    assert a.source_classes.tolist() == list(range(6)) and a.target_classes.tolist() == [6, 7, 8]
    assert np.bincount(a.source_test.y).tolist() == [3] * 6
    for part in ("source_train", "source_test", "target"):
        assert np.array_equal(getattr(a, part).x, getattr(b, part).x)
    assert not np.allclose(a.target.x, c.target.x)
    assert a.meta["seed"] == 7 and a.meta["params"]["spread"] == 1.0
    # a Generator is advanced by one draw, which becomes the seed
    seed = int(np.random.default_rng(3).integers(2**63))
    g = gaussian_mixture(**kw, rng=np.random.default_rng(3))
    assert g.meta["seed"] == seed
    assert np.array_equal(g.target.x, gaussian_mixture(**kw, rng=seed).target.x)


def test_gaussian_mixture_spread_controls_within_class_variance():
    kw = dict(n_source_classes=5, n_target_classes=2, per_class=20, input_dim=10, latent_dim=3,
              rng=4)
    collapsed = gaussian_mixture(spread=0.0, **kw).source_train
    # spread 0: every sample of a class is the image of its mean; distinct classes differ
    means = np.stack([collapsed.x[collapsed.y == c][0] for c in collapsed.classes])
    for c, m in zip(collapsed.classes, means):
        assert np.array_equal(collapsed.x[collapsed.y == c], np.broadcast_to(m, (16, 10)))
    assert np.min([np.abs(means[i] - means[j]).max() for i in range(5) for j in range(i)]) > 1e-3

    # small spread s: x = phi(m + s e) = phi(m) + s J e + O(s^2) with the same draws e, so the
    # within-class variance is s^2 tr(J Cov(e) J^T) + O(s^3): quadrupling when s doubles.
    def within(s):
        d = gaussian_mixture(spread=s, **kw).source_train
        x = d.x.astype(np.float64)
        return sum(((x[d.y == c] - x[d.y == c].mean(0)) ** 2).sum() for c in d.classes)

    assert within(0.004) / within(0.002) == pytest.approx(4.0, rel=0.02)


@pytest.mark.parametrize(
    "kw, match",
    [
        (dict(per_class=5, test_per_class=5), "test_per_class: expected fewer"),
        (dict(spread=-1.0), "spread: "),
        (dict(n_source_classes=0), "n_source_classes: "),
        (dict(rng=-1), "rng: "),
        (dict(rng="x"), "rng: "),
    ],
)
def test_gaussian_mixture_rejects_bad_arguments(kw, match):
    with pytest.raises(NCBoundsError, match=match):
        gaussian_mixture(**kw)


# ----------------------------------------------------------------------------- glyphs

SMALL = dict(n_source_classes=10, n_target_classes=4, per_class=6, test_per_class=2, size=16)


def test_glyph_candidates_number_in_the_thousands():
    cps = glyph_classes()
    assert cps.size > 3000 and np.all(np.diff(cps) > 0)
    assert {ord(c) for c in "Aa0Ωж∑"} <= set(cps.tolist())
    assert not {0x20, 0x301, 0xFB01, 0x1D400} & set(cps.tolist())  # space, combining, fi, 𝐀
    # the Computer Modern fonts are mapped by glyph name: their Γ is U+0393, not "¡"
    assert ord("Γ") in glyph_classes(["cmr10", "cmb10", "cmti10"], min_fonts=3)


def test_glyphs_shapes_dtypes_disjoint_and_deterministic():
    a = glyphs(**SMALL, rng=5, cache_dir=False)
    b = glyphs(**SMALL, rng=5, cache_dir=False)
    c = glyphs(**SMALL, rng=6, cache_dir=False)
    assert a.source_train.x.shape == (40, 1, 16, 16) and a.source_test.x.shape == (20, 1, 16, 16)
    assert a.target.x.shape == (24, 1, 16, 16)
    assert a.source_train.x.dtype == np.float32 and a.target.y.dtype == np.int64
    assert a.source_classes.size == 10 and a.target_classes.size == 4
    assert set(a.source_classes.tolist()).isdisjoint(a.target_classes.tolist())
    assert set(a.source_test.classes.tolist()) == set(a.source_classes.tolist())
    for part in ("source_train", "source_test", "target"):
        x, y = getattr(a, part).x, getattr(a, part).y
        assert np.array_equal(x, getattr(b, part).x) and np.array_equal(y, getattr(b, part).y)
        assert x.min() >= 0 and x.max() <= 1
        np.testing.assert_array_equal(np.rint(x * 255) / 255, x)  # 8-bit levels
    assert set(c.source_classes.tolist()) != set(a.source_classes.tolist())
    names = a.target.class_names
    import unicodedata

    assert all(names[int(cp)] == unicodedata.name(chr(int(cp))) for cp in a.target_classes)
    # the samples of a class vary (font, affine map, noise)
    first = a.source_train.x[a.source_train.y == a.source_classes[0]]
    assert np.abs(first[0] - first[1]).max() > 0.2


def test_glyph_classes_render_distinct_and_non_empty(monkeypatch):
    # With one font and no augmentation every sample is its class's undistorted glyph, the
    # image the distinctness rule compares (within a font). The candidates are the Latin,
    # Greek and Cyrillic letters, full of identical outlines (A/Alpha/A, O/Omicron/O, ...).
    # Reference: relative distances computed here in float64 by explicit differences.
    letters = [*range(0x41, 0x5B), *range(0x61, 0x7B), *range(0x391, 0x3AA), *range(0x3B1, 0x3CA),
               *range(0x410, 0x450)]
    pool = np.array(sorted(set(letters) - {0x3A2}), dtype=np.int64)  # U+03A2 is unassigned
    monkeypatch.setattr(ds, "glyph_classes", lambda *a, **k: pool)
    s = glyphs(n_source_classes=60, n_target_classes=10, per_class=2, test_per_class=1,
               size=16, fonts=["DejaVuSans.ttf"], min_fonts=1, rotation=0, scale=0, shear=0,
               translate=0, noise=0, rng=2, cache_dir=False)
    x = np.concatenate([s.source_train.x, s.source_test.x, s.target.x]).reshape(-1, 256)
    y = np.concatenate([s.source_train.y, s.source_test.y, s.target.y])
    x = x.astype(np.float64)
    assert (x.max(axis=1) > 0.5).all()
    for c in np.unique(y):
        assert np.array_equal(x[y == c][0], x[y == c][1])
    norms = np.linalg.norm(x, axis=1)
    diff = np.linalg.norm(x[:, None] - x[None], axis=2) / np.maximum(norms[:, None], norms[None])
    other = y[:, None] != y[None]
    # the 8-bit quantisation moves a relative distance by at most about 1/255
    assert diff[other].min() >= 0.12 - 0.01


def test_glyphs_drop_identical_letters(monkeypatch):
    # Latin A, Greek Alpha and Cyrillic A share one outline in DejaVu (and so do o/omicron/
    # Cyrillic o): of each group exactly one survives, whatever the order of the candidates.
    groups = [{0x41, 0x391, 0x410}, {0x6F, 0x3BF, 0x43E}, {0x42}, {0x78}]
    pool = np.array(sorted(set().union(*groups)), dtype=np.int64)
    monkeypatch.setattr(ds, "glyph_classes", lambda *a, **k: pool)
    for seed in range(3):
        s = glyphs(n_source_classes=2, n_target_classes=2, per_class=2, test_per_class=1,
                   size=12, rng=seed, cache_dir=False)
        kept = set(s.source_classes.tolist()) | set(s.target_classes.tolist())
        assert [len(kept & g) for g in groups] == [1, 1, 1, 1]
    with pytest.raises(NCBoundsError, match="expected at most 4 classes"):
        glyphs(n_source_classes=3, n_target_classes=2, per_class=2, size=12, cache_dir=False)


def test_glyphs_font_subset_and_errors():
    s = glyphs(**SMALL, fonts=["cmr10.ttf", "cmb10", "cmti10"], min_fonts=3, cache_dir=False)
    allowed = set(glyph_classes(["cmr10", "cmb10", "cmti10"], min_fonts=3).tolist())
    assert set(s.source_classes.tolist()) | set(s.target_classes.tolist()) <= allowed
    with pytest.raises(NCBoundsError, match="fonts: expected font files or names"):
        glyphs(**SMALL, fonts=["NoSuchFont.ttf"], cache_dir=False)
    with pytest.raises(NCBoundsError, match="expected at most"):
        glyphs(n_source_classes=500, n_target_classes=1, per_class=2,
               fonts=["cmr10", "cmb10"], min_fonts=2, cache_dir=False)
    with pytest.raises(NCBoundsError, match="rotation: "):
        glyphs(**SMALL, rotation=-1, cache_dir=False)
    with pytest.raises(NCBoundsError, match="size: "):
        glyphs(**{**SMALL, "size": 4}, cache_dir=False)


def test_glyph_cache_hit_is_identical_and_skips_rendering(tmp_path, monkeypatch):
    first = glyphs(**SMALL, rng=1, cache_dir=tmp_path)
    files = list(tmp_path.iterdir())
    assert len(files) == 1 and files[0].suffix == ".npz"
    assert first.meta["cache_file"] == str(files[0])
    with np.load(files[0], allow_pickle=False) as f:  # no pickles inside
        assert all(f[k].dtype != object for k in f.files)

    def refuse(*a, **k):
        raise AssertionError("rendered again despite the cache")

    monkeypatch.setattr(ds, "_render_glyphs", refuse)
    second = glyphs(**SMALL, rng=1, cache_dir=tmp_path)
    for part in ("source_train", "source_test", "target"):
        assert np.array_equal(getattr(first, part).x, getattr(second, part).x)
        assert np.array_equal(getattr(first, part).y, getattr(second, part).y)
    with pytest.raises(AssertionError, match="rendered again"):  # other parameters: other key
        glyphs(**SMALL, rng=2, cache_dir=tmp_path)


def test_glyph_cache_recovers_from_a_corrupt_file_and_writes_atomically(tmp_path, monkeypatch):
    ref = glyphs(**SMALL, rng=1, cache_dir=False)
    glyphs(**SMALL, rng=1, cache_dir=tmp_path)
    (path,) = tmp_path.iterdir()
    path.write_bytes(b"not an npz")
    with pytest.warns(NCBoundsWarning, match="unreadable glyph cache"):
        again = glyphs(**SMALL, rng=1, cache_dir=tmp_path)
    assert np.array_equal(again.target.x, ref.target.x)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # rewritten, no temp file left

    # a write that fails half-way leaves neither a partial cache file nor a temporary file,
    # and the rendered data are still returned
    def broken(f, **arrays):
        f.write(b"partial")
        raise OSError("disk full")

    other = tmp_path / "other"
    monkeypatch.setattr(ds.np, "savez", broken)
    with pytest.warns(NCBoundsWarning, match="cannot write the glyph cache.*disk full"):
        third = glyphs(**SMALL, rng=1, cache_dir=other)
    assert list(other.iterdir()) == [] and np.array_equal(third.target.x, ref.target.x)


def test_glyph_cache_location_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("NCBOUNDS_CACHE", str(tmp_path / "c"))
    assert ds.default_cache_dir() == tmp_path / "c"
    s = glyphs(n_source_classes=2, n_target_classes=1, per_class=2, test_per_class=1, size=8)
    assert Path(s.meta["cache_file"]).parent == tmp_path / "c" / "glyphs"
    monkeypatch.delenv("NCBOUNDS_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert ds.default_cache_dir() == tmp_path / "xdg" / "ncbounds"


def test_glyphs_leave_pyplot_and_the_backend_alone():
    # (matplotlib.get_backend() itself imports pyplot, so the raw rcParams entry is compared)
    code = (
        "import sys, matplotlib; raw = lambda: dict.__getitem__(matplotlib.rcParams, 'backend');"
        "b = raw(); from simulations.datasets import glyphs;"
        "glyphs(n_source_classes=2, n_target_classes=1, per_class=2, size=8, cache_dir=False);"
        "assert 'matplotlib.pyplot' not in sys.modules and raw() is b"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


# ----------------------------------------------------------------------------- safe pickles


class _Payload:
    """Unpickling this runs ``exec`` of ``code`` (a classic pickle attack)."""

    def __init__(self, code):
        self.code = code

    def __reduce__(self):
        return exec, (self.code,)


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_safe_unpickle_round_trips_plain_data(protocol):
    obj = {
        "a": np.arange(12, dtype=np.uint8).reshape(3, 4),
        "b": [1, 2.5, None, True, "s", b"bytes", (3, 4)],
        "c": np.zeros(2, dtype=[("f", "<f4"), ("g", "<i8")]),
        "d": np.float32(1.5),
        "e": np.asfortranarray(np.arange(6.0).reshape(2, 3)),
    }
    out = safe_unpickle(io.BytesIO(pickle.dumps(obj, protocol=protocol)))
    assert out.keys() == obj.keys() and out["b"] == obj["b"] and out["d"] == obj["d"]
    for k in ("a", "c", "e"):
        assert out[k].dtype == obj[k].dtype and np.array_equal(out[k], obj[k])


def test_safe_unpickle_refuses_code_execution(tmp_path):
    marker = tmp_path / "pwned"
    blob = pickle.dumps(_Payload(f"open({str(marker)!r}, 'w').close()"))
    pickle.loads(blob)  # the plain unpickler runs the payload: the test can fail
    assert marker.exists()
    marker.unlink()
    with pytest.raises(NCBoundsError, match="refusing to load builtins.exec"):
        safe_unpickle(io.BytesIO(blob))
    assert not marker.exists()
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"data": [_Payload("1")]}, protocol=2))
    with pytest.raises(NCBoundsError, match="refusing"):
        safe_unpickle(path)


@pytest.mark.parametrize(
    "obj",
    [
        np.array([1, "a"], dtype=object),  # object arrays unpickle arbitrary elements
        np.ma.masked_array([1, 2], mask=[0, 1]),  # an ndarray subclass
        np.rec.array([(1, 2.0)], dtype=[("a", "<i8"), ("b", "<f8")]),
        {1, 2},  # a set needs builtins.set
        Path("x"),
    ],
)
def test_safe_unpickle_refuses_non_plain_objects(obj):
    with pytest.raises(NCBoundsError, match="refusing"):
        safe_unpickle(io.BytesIO(pickle.dumps(obj, protocol=2)))


def test_safe_unpickle_reports_garbage():
    with pytest.raises(NCBoundsError, match="expected a readable pickle"):
        safe_unpickle(io.BytesIO(b"\x80\x04garbage"))


# ----------------------------------------------------------------------------- safe tar


def _tar(path, members):
    """Write a tar with (TarInfo, bytes or None) members."""
    with tarfile.open(path, "w") as t:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            t.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def _info(name, kind=tarfile.REGTYPE, link=""):
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    return info


@pytest.mark.parametrize(
    "member, reason",
    [
        ((_info("../evil"), b"x"), "'..' component"),
        ((_info("a/../../evil"), b"x"), "'..' component"),
        ((_info("/tmp/evil"), b"x"), "absolute path"),
        ((_info("link", tarfile.SYMTYPE, "../../etc/passwd"), None), "link to"),
        ((_info("link", tarfile.SYMTYPE, "/etc/passwd"), None), "link to"),
        ((_info("hard", tarfile.LNKTYPE, "../outside"), None), "link to"),
        ((_info("dev", tarfile.CHRTYPE), None), "device"),
        ((_info("fifo", tarfile.FIFOTYPE), None), "device"),
    ],
)
def test_safe_extract_refuses_escaping_members(tmp_path, member, reason):
    archive = _tar(tmp_path / "a.tar", [(_info("ok.txt"), b"fine"), member])
    dest = tmp_path / "out" / "deep"
    with pytest.raises(NCBoundsError, match=reason):
        safe_extract(archive, dest)
    assert not dest.exists() and not (tmp_path / "evil").exists()
    assert not (tmp_path / "out" / "evil").exists()
    with pytest.raises(NCBoundsError, match=reason):  # and the CIFAR loader refuses it as well
        cifar_fs(archive)


def test_safe_extract_extracts_a_benign_archive(tmp_path):
    archive = _tar(tmp_path / "a.tar.gz", [])
    with tarfile.open(archive, "w:gz") as t:
        for info, data in [(_info("d", tarfile.DIRTYPE), None), (_info("d/f.txt"), b"hello"),
                           (_info("d/l", tarfile.SYMTYPE, "f.txt"), None)]:
            if data is not None:
                info.size = len(data)
            t.addfile(info, io.BytesIO(data) if data else None)
    out = safe_extract(archive, tmp_path / "out")
    assert (out / "d" / "f.txt").read_bytes() == b"hello" and (out / "d" / "l").is_symlink()
    with pytest.raises(NCBoundsError, match="expected an existing tar file"):
        safe_extract(tmp_path / "missing.tar", tmp_path / "x")


# ----------------------------------------------------------------------------- CIFAR-100


class _Py2Pickler(pickle._Pickler):
    """Writes bytes as Python 2 ``str`` (BINSTRING), as the real CIFAR pickles do."""

    dispatch = pickle._Pickler.dispatch.copy()

    def _save_py2_str(self, obj):
        self.write(b"T" + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    dispatch[bytes] = _save_py2_str


def py2_pickle(obj) -> bytes:
    f = io.BytesIO()
    _Py2Pickler(f, protocol=2).dump(obj)
    # Python 2's numpy lived in numpy.core (protocol 2 GLOBAL opcodes are plain text lines)
    return f.getvalue().replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")


N_TRAIN, N_TEST = 2, 1  # images per class in the fake archive


def _cifar_part(n_per_class, part_id):
    """Images whose red plane is the fine label, green the index in the class, blue the part."""
    fine = np.repeat(np.arange(100), n_per_class)
    rng = np.random.default_rng(part_id)
    order = rng.permutation(fine.size)  # the real archive is not sorted by class
    fine = fine[order]
    index = np.tile(np.arange(n_per_class), 100)[order]
    planes = np.stack([np.broadcast_to(v[:, None], (fine.size, 1024)) for v in
                       (fine, index, np.full(fine.size, part_id))], axis=1)
    coarse = [COARSE.index(COARSE_OF[FINE[f]]) for f in fine]
    return {b"batch_label": b"fake", b"fine_labels": fine.tolist(), b"coarse_labels": coarse,
            b"filenames": [b"x.png"] * fine.size,
            b"data": planes.reshape(fine.size, 3072).astype(np.uint8)}


@pytest.fixture(scope="module")
def cifar_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("cifar")
    folder = root / "cifar-100-python"
    folder.mkdir()
    files = {
        "train": _cifar_part(N_TRAIN, 0),
        "test": _cifar_part(N_TEST, 1),
        "meta": {b"fine_label_names": [f.encode() for f in FINE],
                 b"coarse_label_names": [c.encode() for c in COARSE]},
    }
    for name, obj in files.items():
        (folder / name).write_bytes(py2_pickle(obj))
    with tarfile.open(root / "cifar-100-python.tar.gz", "w:gz") as t:
        t.add(folder, arcname="cifar-100-python")
    return root


def _check_cifar_images(part):
    x = np.rint(part.x * 255).astype(int) if part.x.dtype == np.float32 else part.x.astype(int)
    assert x.shape[1:] == (3, 32, 32)
    assert np.array_equal(x[:, 0, 5, 7], part.y)  # red plane = fine label: rows stay aligned
    assert part.class_names is not None
    assert all(part.class_names[int(c)] == FINE[int(c)] for c in part.classes)
    return x


def test_cifar_fs_splits_from_every_layout(cifar_root):
    s = cifar_fs(cifar_root / "cifar-100-python.tar.gz")
    name = lambda part: {FINE[int(c)] for c in part.classes}  # noqa: E731
    assert name(s.target) == CIFAR_FS_TEST and name(s.validation) == CIFAR_FS_VAL
    assert name(s.source_train) == set(FINE) - CIFAR_FS_VAL - CIFAR_FS_TEST
    assert len(s.source_train) == 64 * N_TRAIN and len(s.source_test) == 64 * N_TEST
    assert len(s.target) == 20 * (N_TRAIN + N_TEST) and len(s.validation) == 16 * (N_TRAIN + N_TEST)
    # source_train from the CIFAR train part, source_test from the test part (blue plane)
    assert (_check_cifar_images(s.source_train)[:, 2] == 0).all()
    assert (_check_cifar_images(s.source_test)[:, 2] == 1).all()
    blue = _check_cifar_images(s.target)[:, 2, 0, 0]
    assert sorted(np.bincount(blue).tolist()) == [20 * N_TEST, 20 * N_TRAIN]
    assert s.source_train.x.dtype == np.float32 and s.source_train.x.max() <= 1
    for root in (cifar_root, cifar_root / "cifar-100-python"):
        other = cifar_fs(root)
        assert np.array_equal(other.target.x, s.target.x)
        assert np.array_equal(other.target.y, s.target.y)
    raw = cifar_fs(cifar_root, dtype=np.uint8)
    assert raw.target.x.dtype == np.uint8
    assert np.array_equal(raw.target.x / np.float32(255), s.target.x)


def test_fc100_superclass_split(cifar_root):
    s = fc100(cifar_root)
    coarse = lambda part: {COARSE_OF[FINE[int(c)]] for c in part.classes}  # noqa: E731
    assert coarse(s.target) == FC100_TEST and coarse(s.validation) == FC100_VAL
    assert coarse(s.source_train) == set(COARSE) - FC100_TEST - FC100_VAL
    assert [p.n_classes for p in (s.source_train, s.validation, s.target)] == [60, 20, 20]
    _check_cifar_images(s.source_test)


def test_cifar_loaders_explain_a_wrong_path(tmp_path, cifar_root):
    expected = "cifar-100-python.tar.gz.*train, test and meta.*does not exist"
    with pytest.raises(NCBoundsError, match=expected):
        cifar_fs(tmp_path / "nowhere")
    partial = tmp_path / "partial"
    partial.mkdir()
    for f in ("train", "test"):
        (partial / f).write_bytes((cifar_root / "cifar-100-python" / f).read_bytes())
    with pytest.raises(NCBoundsError, match=r"contains \['test', 'train'\]"):
        fc100(partial)
    (partial / "meta").write_bytes(pickle.dumps({"fine_label_names": [_Payload("1")]}, protocol=2))
    with pytest.raises(NCBoundsError, match="refusing to load __builtin__.exec"):
        fc100(partial)
    with tarfile.open(tmp_path / "short.tar.gz", "w:gz") as t:
        t.add(partial / "train", arcname="cifar-100-python/train")
    with pytest.raises(NCBoundsError, match=r"missing \['test', 'meta'\]"):
        cifar_fs(tmp_path / "short.tar.gz")


# ----------------------------------------------------------------------------- mini-ImageNet

MINI = {"train": ["n01", "n02", "n03"], "val": ["n04", "n05"], "test": ["n06", "n07"]}
PER_CLASS = 6


def _mini_images(cls_id, n, side=6):
    """Uniform images of brightness 30 * class id (JPEG keeps them within a few levels)."""
    return np.full((n, side, side, 3), 30 * cls_id, np.uint8)


def _check_mini(s, names_in_order):
    assert [s.source_train.class_names[i] for i in range(7)] == names_in_order
    for part in (s.source_train, s.source_test, s.target, s.validation):
        x = np.rint(part.x * 255 / 30).astype(int)  # rows stay traceable to their class
        assert x.shape[1] == 3
        assert np.array_equal(x[:, 0, 0, 0], [int(part.class_names[int(c)][1:]) for c in part.y])
    assert s.source_classes.tolist() == [0, 1, 2] and s.validation.classes.tolist() == [3, 4]
    assert s.target_classes.tolist() == [5, 6]


def test_mini_imagenet_image_folder(tmp_path):
    for split, classes in MINI.items():
        for c in classes:
            folder = tmp_path / split / c
            folder.mkdir(parents=True)
            for i, im in enumerate(_mini_images(int(c[1:]), PER_CLASS)):
                from PIL import Image

                Image.fromarray(im).save(folder / f"{i}.png")
            Image.fromarray(_mini_images(int(c[1:]), 1)[0]).save(folder / "extra.jpg", quality=95)
    s = mini_imagenet(tmp_path, test_fraction=1 / 3, rng=3)
    _check_mini(s, [c for v in MINI.values() for c in v])
    per = PER_CLASS + 1
    assert np.bincount(s.source_test.y).tolist() == [round(per / 3)] * 3
    assert np.bincount(s.source_train.y).tolist() == [per - round(per / 3)] * 3
    assert s.source_train.x.shape[1:] == (3, 6, 6) and s.meta["format"] == "image folder"
    again = mini_imagenet(tmp_path, test_fraction=1 / 3, rng=3)
    assert np.array_equal(again.source_test.x, s.source_test.x)
    assert mini_imagenet(tmp_path, image_size=4).target.x.shape[1:] == (3, 4, 4)
    from PIL import Image

    Image.new("RGB", (5, 7)).save(tmp_path / "test" / "n06" / "odd.png")
    with pytest.raises(NCBoundsError, match="images of one size.*image_size"):
        mini_imagenet(tmp_path)


@pytest.mark.parametrize("layout", ["cache", "metaoptnet"])
def test_mini_imagenet_pickles(tmp_path, layout):
    base = 0
    for split, classes in MINI.items():
        images = np.concatenate([_mini_images(int(c[1:]), PER_CLASS) for c in classes])
        if layout == "cache":
            obj = {"image_data": images,
                   "class_dict": {c: list(range(i * PER_CLASS, (i + 1) * PER_CLASS))
                                  for i, c in enumerate(classes)}}
            name = f"mini-imagenet-cache-{split}.pkl"
            (tmp_path / name).write_bytes(pickle.dumps(obj, protocol=4))
        else:
            labels = np.repeat(np.arange(base, base + len(classes)), PER_CLASS).tolist()
            obj = {b"data": images, b"labels": labels,
                   b"catname2label": {c.encode(): base + i for i, c in enumerate(classes)}}
            base += len(classes)
            name = ds._MINI_METAOPTNET[split]
            (tmp_path / name).write_bytes(py2_pickle(obj))
    s = mini_imagenet(tmp_path)
    _check_mini(s, [c for v in MINI.values() for c in v])
    assert np.bincount(s.source_test.y).tolist() == [1, 1, 1]  # 1/6 of 6


def test_mini_imagenet_explains_a_wrong_path(tmp_path):
    (tmp_path / "train").mkdir()
    expected = r"mini-imagenet-cache-train.pkl.*train/, val/, test/.*\['train'\]"
    with pytest.raises(NCBoundsError, match=expected):
        mini_imagenet(tmp_path)
    evil = tmp_path / "e"
    evil.mkdir()
    for f in ds._MINI_CACHE.values():
        (evil / f).write_bytes(pickle.dumps(_Payload("1")))
    with pytest.raises(NCBoundsError, match="refusing"):
        mini_imagenet(evil)
