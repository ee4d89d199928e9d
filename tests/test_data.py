"""vml.data: the two CIFAR sources on self-written tiny archives, source selection, augmentation."""
from __future__ import annotations

import hashlib
import io
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from vml import data as vdata


# ------------------------------------------------------------------------------- helpers
def _images(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)


def write_pack(path: Path, n_train: int = 30, n_test: int = 12, classes=("a", "b", "c"), fmt: str = "PNG"):
    """A tiny pack in the README format (PNG is lossless, so decoded pixels equal the originals)."""
    arrays = {}
    originals = {}
    for split, n, seed in (("train", n_train, 1), ("test", n_test, 2)):
        x = _images(n, seed)
        y = (np.arange(n) % len(classes)).astype(np.uint8)
        blobs = []
        for img in x:
            buf = io.BytesIO()
            Image.fromarray(img).save(buf, format=fmt)
            blobs.append(np.frombuffer(buf.getvalue(), dtype=np.uint8))
        arrays[f"{split}_bytes"] = np.concatenate(blobs)
        arrays[f"{split}_offsets"] = np.concatenate([[0], np.cumsum([len(b) for b in blobs])]).astype(np.int64)
        arrays[f"{split}_labels"] = y
        originals[split] = (x, y)
    np.savez_compressed(path, classes=np.array(classes), encoding=np.array(fmt.lower()),
                        source=np.array("test pack"), **arrays)
    return originals


def write_cifar_archive(root: Path, name: str, monkeypatch, n_per_batch: int = 8):
    """The official python-pickle archive layout (data batches inside a .tar.gz), with torchvision's
    checksums patched to ours so that download=True finds the archive already 'downloaded'."""
    import torchvision

    cls = {"cifar10": torchvision.datasets.CIFAR10, "cifar100": torchvision.datasets.CIFAR100}[name]
    label_key = "labels" if name == "cifar10" else "fine_labels"
    n_classes = 10 if name == "cifar10" else 100
    files, md5 = {}, {}
    rng = np.random.default_rng(0)
    expected = {"train": [], "test": []}
    for fname, _ in cls.train_list + cls.test_list:
        x = rng.integers(0, 256, size=(n_per_batch, 3072), dtype=np.uint8)
        y = rng.integers(0, n_classes, size=n_per_batch).tolist()
        files[fname] = pickle.dumps({"data": x, label_key: y, "batch_label": fname})
        split = "test" if fname in {f for f, _ in cls.test_list} else "train"
        expected[split].append((x.reshape(-1, 3, 32, 32), np.array(y)))
    meta_key = cls.meta["key"]
    names = [f"class{i}" for i in range(n_classes)]
    files[cls.meta["filename"]] = pickle.dumps({meta_key: names})
    for fname, blob in files.items():
        md5[fname] = hashlib.md5(blob).hexdigest()
    root.mkdir(parents=True, exist_ok=True)
    archive = root / cls.filename
    with tarfile.open(archive, "w:gz") as tar:
        for fname, blob in files.items():
            info = tarfile.TarInfo(f"{cls.base_folder}/{fname}")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    monkeypatch.setattr(cls, "tgz_md5", hashlib.md5(archive.read_bytes()).hexdigest())
    monkeypatch.setattr(cls, "train_list", [[f, md5[f]] for f, _ in cls.train_list])
    monkeypatch.setattr(cls, "test_list", [[f, md5[f]] for f, _ in cls.test_list])
    monkeypatch.setattr(cls, "meta", dict(cls.meta, md5=md5[cls.meta["filename"]]))
    monkeypatch.setattr(cls, "url", "http://127.0.0.1:9/must-not-download")
    return {k: (np.concatenate([a for a, _ in v]), np.concatenate([b for _, b in v])) for k, v in expected.items()}, names


# ------------------------------------------------------------------------------- sources
@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_torchvision_source_reads_official_archive_offline(tmp_path, monkeypatch, name):
    expected, names = write_cifar_archive(tmp_path / "torchvision", name, monkeypatch)
    ds = vdata.load_dataset(name, source="torchvision", data_dir=tmp_path)
    assert ds.source == "torchvision" and ds.classes == names
    for split, (x, y) in (("train", (ds.train_x, ds.train_y)), ("test", (ds.test_x, ds.test_y))):
        assert x.dtype == torch.uint8 and x.shape[1:] == (3, 32, 32)
        assert y.dtype == torch.int64
        assert torch.equal(x, torch.from_numpy(expected[split][0]))
        assert torch.equal(y, torch.from_numpy(expected[split][1]).long())


def test_pack_decodes_once_then_loads_the_cache(tmp_path, monkeypatch):
    pack = tmp_path / "packs" / "cifar10-png.npz"
    pack.parent.mkdir()
    orig = write_pack(pack)
    ds = vdata.load_dataset("cifar10", source=pack, data_dir=tmp_path / "dd")
    assert ds.classes == ["a", "b", "c"] and ds.source == "pack:cifar10-png.npz"
    assert torch.equal(ds.train_x, torch.from_numpy(orig["train"][0]).permute(0, 3, 1, 2))  # PNG: lossless
    assert torch.equal(ds.test_y, torch.from_numpy(orig["test"][1]).long())
    cached = sorted((tmp_path / "dd" / "decoded").glob("cifar10-*.npy"))
    assert len(cached) == 4
    digest = hashlib.sha256(pack.read_bytes()).hexdigest()[:16]
    assert all(digest in p.name for p in cached)

    def no_decoding(*a, **k):
        raise AssertionError("the cache should have been used")

    monkeypatch.setattr(vdata, "_decode_split", no_decoding)
    again = vdata.load_dataset("cifar10", source=pack, data_dir=tmp_path / "dd")
    assert torch.equal(again.train_x, ds.train_x) and torch.equal(again.test_x, ds.test_x)


def test_pack_cache_is_keyed_by_checksum(tmp_path):
    pack = tmp_path / "cifar10-png.npz"
    write_pack(pack)
    vdata.load_dataset("cifar10", source=pack, data_dir=tmp_path / "dd")
    write_pack(pack, n_train=9)  # a different pack at the same path
    ds = vdata.load_dataset("cifar10", source=pack, data_dir=tmp_path / "dd")
    assert len(ds.train_x) == 9
    assert len(list((tmp_path / "dd" / "decoded").glob("*.train_x.npy"))) == 2


def test_jpeg_pack_decodes_close_to_originals(tmp_path):
    pack = tmp_path / "cifar10-jpeg.npz"
    orig = write_pack(pack, fmt="JPEG")
    ds = vdata.load_dataset("cifar10", source=pack, data_dir=tmp_path)
    assert ds.train_x.shape == (30, 3, 32, 32)  # lossy: only the shape and labels are exact
    assert torch.equal(ds.train_y, torch.from_numpy(orig["train"][1]).long())


def test_default_finds_pack_in_data_dir_and_env_var(tmp_path, monkeypatch):
    write_pack(tmp_path / "cifar100-png.npz", classes=tuple(f"c{i}" for i in range(5)))
    ds = vdata.load_dataset("cifar100", data_dir=tmp_path)
    assert ds.source == "pack:cifar100-png.npz" and len(ds.classes) == 5
    monkeypatch.setenv("VML_DATA_DIR", str(tmp_path))
    assert vdata.resolve_data_dir() == tmp_path
    assert vdata.load_dataset("cifar100").source == "pack:cifar100-png.npz"


def test_missing_source_error_says_where_it_looked_and_how_to_fix(tmp_path, monkeypatch):
    def offline(name, root):
        raise OSError("network unreachable")

    monkeypatch.setattr(vdata, "load_torchvision", offline)
    monkeypatch.setattr(vdata, "pack_candidates", lambda name, root: [root / f"{name}-png.npz", root / f"{name}-jpeg.npz"])
    with pytest.raises(FileNotFoundError) as err:
        vdata.load_dataset("cifar100", data_dir=tmp_path)
    msg = str(err.value)
    assert str(tmp_path / "cifar100-jpeg.npz") in msg
    assert "source='torchvision'" in msg and "VML_DATA_DIR" in msg and "network unreachable" in msg
    with pytest.raises(FileNotFoundError, match="no source for dataset 'cifar100'"):
        vdata.load_dataset("cifar100", source="pack", data_dir=tmp_path)
    with pytest.raises(ValueError, match="unknown dataset"):
        vdata.load_dataset("mnist")


def test_available_looks_for_files_without_loading_or_downloading(tmp_path, monkeypatch):
    monkeypatch.setattr(vdata, "pack_candidates", lambda name, root: [root / f"{name}-jpeg.npz"])
    monkeypatch.setattr(vdata, "load_torchvision", lambda *a: pytest.fail("available() must not download"))
    assert not vdata.available("cifar100", data_dir=tmp_path)
    (tmp_path / "torchvision" / "cifar-100-python.tar.gz").parent.mkdir()
    (tmp_path / "torchvision" / "cifar-100-python.tar.gz").write_bytes(b"")
    assert vdata.available("cifar100", data_dir=tmp_path)  # torchvision extracts the archive on load
    assert not vdata.available("cifar10", data_dir=tmp_path)
    (tmp_path / "torchvision" / "cifar-10-batches-py").mkdir()
    assert vdata.available("cifar10", data_dir=tmp_path)
    (tmp_path / "other").mkdir()
    write_pack(tmp_path / "other" / "cifar100-jpeg.npz")
    assert vdata.available("cifar100", data_dir=tmp_path / "other") and vdata.available("synthetic")
    with pytest.raises(ValueError, match="unknown dataset 'mnist'"):
        vdata.available("mnist")


# ---------------------------------------------------------------------------- synthetic
def test_synthetic_is_deterministic_and_class_dependent():
    a, b = vdata.synthetic(seed=3), vdata.synthetic(seed=3)
    assert torch.equal(a.train_x, b.train_x) and torch.equal(a.test_y, b.test_y)
    assert a.train_x.dtype == torch.uint8 and a.train_x.shape == (1024, 3, 32, 32)
    assert not torch.equal(a.train_x, vdata.synthetic(seed=4).train_x)
    # class means are far apart relative to the within-class noise
    m = torch.stack([a.train_x[a.train_y == c].float().mean(0) for c in range(4)])
    assert (m[0] - m[1]).abs().mean() > 20


# ---------------------------------------------------------------------------- augmentation
def _reference_augment(x, dy, dx, flip, pad=4):
    xp = F.pad(x, (pad, pad, pad, pad))
    out = torch.stack([xp[i, :, dy[i]:dy[i] + 32, dx[i]:dx[i] + 32] for i in range(len(x))])
    return torch.where(flip[:, None, None, None], out.flip(3), out)


def test_augment_equals_per_image_crop_and_flip():
    x = torch.randint(0, 256, (64, 3, 32, 32), dtype=torch.uint8)
    g = torch.Generator().manual_seed(0)
    dy, dx, flip = vdata.draw_augmentation(64, g)
    assert dy.min() >= 0 and dy.max() <= 8 and flip.any() and (~flip).any()
    got = vdata.augment(x, dy, dx, flip)
    assert got.dtype == torch.uint8
    assert torch.equal(got, _reference_augment(x, dy, dx, flip))
    centre = torch.full((64,), 4)
    assert torch.equal(vdata.augment(x, centre, centre, torch.zeros(64, dtype=torch.bool)), x)
    assert torch.equal(vdata.augment(x, centre, centre, torch.ones(64, dtype=torch.bool)), x.flip(3))


def test_draw_augmentation_depends_only_on_its_generator():
    a = vdata.draw_augmentation(100, torch.Generator().manual_seed(5))
    torch.manual_seed(123)
    b = vdata.draw_augmentation(100, torch.Generator().manual_seed(5))
    assert all(torch.equal(u, v) for u, v in zip(a, b))


def test_normalize_and_device_move():
    ds = vdata.synthetic(n_train=64, n_test=16)
    mean, std = vdata.norm_tensors(ds, "cpu")
    z = vdata.normalize(ds.train_x, mean, std, channels_last=True)
    assert z.is_contiguous(memory_format=torch.channels_last)
    assert z.mean((0, 2, 3)).abs().max() < 1e-3 and (z.std((0, 2, 3)) - 1).abs().max() < 1e-2
    assert ds.to("cpu") is ds


def test_train_subset_is_class_balanced_in_stored_order_and_rejects_bad_sizes():
    ds = vdata.load_dataset("synthetic")
    sub = vdata.train_subset(ds, 10 * ds.num_classes)
    assert torch.bincount(sub.train_y, minlength=ds.num_classes).tolist() == [10] * ds.num_classes
    # each class's first 10 images, in the order they are stored
    first = torch.cat([torch.nonzero(ds.train_y == c).flatten()[:10] for c in range(ds.num_classes)]).sort().values
    assert torch.equal(sub.train_x, ds.train_x[first]) and torch.equal(sub.test_x, ds.test_x)
    assert vdata.train_subset(ds, 0) is ds
    with pytest.raises(ValueError, match=f"train_subset=7 is not allowed; it must be a multiple of the {ds.num_classes}"):
        vdata.train_subset(ds, 7)
