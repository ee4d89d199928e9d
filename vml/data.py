"""Datasets as whole uint8 tensors on the training device, and batched on-device augmentation.

Sources of CIFAR-10/100 (`load_dataset(name, source=...)`):

- ``"torchvision"``: the official archives through `torchvision.datasets.CIFAR10/100(download=True)`,
  downloaded once into ``<data dir>/torchvision``: the path a user with internet takes.
- ``"pack"``: an image pack (one ``.npz`` of the encoded image files, see the pack README), decoded
  once with Pillow and cached as raw uint8 arrays in ``<data dir>/decoded/<name>-<sha256[:16]>.npy``
  files keyed by the pack's checksum; later loads read the cache (well under a second).
- a path to a pack file.
- ``None`` (default): a pack if one is found, else the torchvision download.

The data directory is the ``data_dir`` argument, else the ``VML_DATA_DIR`` environment variable,
else ``data/datasets`` under the repository root (the folder holding ``pyproject.toml`` above this
package; the current directory when the package is installed elsewhere). Packs are looked for as
``<name>-jpeg.npz`` / ``<name>-png.npz`` in the data directory, then in ``../shared/data`` beside the
repository root.

The training loop never touches PIL or DataLoader workers: `Dataset.to(device)` puts each split on
the device as one uint8 tensor (N, 3, 32, 32); `augment` does the paper's random crop (zero padding
of 4 pixels, as torchvision's ``RandomCrop(32, padding=4)``) and horizontal flip as batched tensor ops
with draws from a dedicated generator; `normalize` converts to float on the fly.
"""
from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ._io import atomic_write

DATASETS = ("cifar10", "cifar100", "synthetic")
SOURCES = ("pack", "torchvision")
ENV_DATA_DIR = "VML_DATA_DIR"
PAD = 4  # the paper's padding for the random crop

# per-channel statistics of the official training sets (0-1 scale); the synthetic set computes its own
_STATS = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
}


@dataclass
class Dataset:
    """Both splits of an image-classification dataset as tensors (images uint8, N x 3 x 32 x 32)."""

    name: str
    train_x: Tensor
    train_y: Tensor
    test_x: Tensor
    test_y: Tensor
    classes: list[str]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    source: str = ""
    meta: dict = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def device(self) -> torch.device:
        return self.train_x.device

    def to(self, device: str | torch.device) -> "Dataset":
        """The same dataset with all four tensors on `device` (self when already there)."""
        device = torch.device(device)
        if self.train_x.device == device:
            return self
        return replace(self, train_x=self.train_x.to(device), train_y=self.train_y.to(device),
                       test_x=self.test_x.to(device), test_y=self.test_y.to(device))

    def __repr__(self) -> str:
        return (f"Dataset({self.name!r}, train={tuple(self.train_x.shape)}, test={tuple(self.test_x.shape)}, "
                f"classes={self.num_classes}, source={self.source!r}, device={self.device})")


def train_subset(ds: Dataset, n: int) -> Dataset:
    """The class-balanced subset of `ds`'s training set: the first n / classes images of each class,
    in the stored order (kept in that order); the test set is unchanged. n = 0 returns `ds`."""
    if n == 0:
        return ds
    k, rest = divmod(n, ds.num_classes)
    if rest or k < 1:
        raise ValueError(f"train_subset={n} is not allowed; it must be a multiple of the {ds.num_classes} "
                         f"classes of {ds.name!r}")
    y = ds.train_y.cpu()
    picks = []
    for c in range(ds.num_classes):
        idx = torch.nonzero(y == c).flatten()
        if len(idx) < k:
            raise ValueError(f"train_subset={n} is not allowed; class {c} of {ds.name!r} has only {len(idx)} "
                             f"training images (need {k})")
        picks.append(idx[:k])
    keep = torch.cat(picks).sort().values.to(ds.train_x.device)
    return replace(ds, train_x=ds.train_x[keep], train_y=ds.train_y[keep],
                   meta={**ds.meta, "train_subset": n})


# ------------------------------------------------------------------------------------ locations
def repo_root() -> Path:
    """The repository root (the folder with pyproject.toml above this package), else the cwd."""
    here = Path(__file__).resolve().parent.parent
    return here if (here / "pyproject.toml").exists() else Path.cwd()


def resolve_data_dir(path: str | os.PathLike | None = None) -> Path:
    """The data directory: `path`, else $VML_DATA_DIR, else <repo root>/data/datasets."""
    if path is not None:
        return Path(path)
    env = os.environ.get(ENV_DATA_DIR)
    return Path(env) if env else repo_root() / "data" / "datasets"


def pack_candidates(name: str, root: Path) -> list[Path]:
    """Where a pack of dataset `name` is looked for, in order."""
    dirs = [root, repo_root().parent / "shared" / "data"]
    return [d / f"{name}-{enc}.npz" for d in dirs for enc in ("png", "jpeg")]


# torchvision's folder and archive names for the official datasets
_TV_FILES = {"cifar10": ("cifar-10-batches-py", "cifar-10-python.tar.gz"),
             "cifar100": ("cifar-100-python", "cifar-100-python.tar.gz")}


def available(name: str, data_dir: str | os.PathLike | None = None) -> bool:
    """Whether dataset `name` is on this machine (a pack, or torchvision's archive), without loading
    or downloading anything."""
    if name == "synthetic":
        return True
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; use one of {DATASETS}")
    root = resolve_data_dir(data_dir)
    if any(c.exists() for c in pack_candidates(name, root)):
        return True
    folder, archive = _TV_FILES[name]
    return (root / "torchvision" / folder).is_dir() or (root / "torchvision" / archive).is_file()


# ----------------------------------------------------------------------------------- loading
def load_dataset(name: str, source: str | os.PathLike | None = None, data_dir: str | os.PathLike | None = None,
                 device: str | torch.device = "cpu", **synthetic_kwargs) -> Dataset:
    """Load dataset `name` ("cifar10", "cifar100", "synthetic") onto `device`.

    `source` is "pack", "torchvision", a path to a pack file, or None (a pack when one is found,
    else torchvision's download). Raises FileNotFoundError naming every place looked in and the two
    ways to fix it when no source is available.
    """
    if name == "synthetic":
        return synthetic(**synthetic_kwargs).to(device)
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; use one of {DATASETS}")
    root = resolve_data_dir(data_dir)
    if source is not None and str(source) not in SOURCES:
        ds = load_pack(Path(source), name=name, cache_dir=root / "decoded")
        return ds.to(device)
    if source in (None, "pack"):
        for cand in pack_candidates(name, root):
            if cand.exists():
                return load_pack(cand, name=name, cache_dir=root / "decoded").to(device)
        if source == "pack":
            raise FileNotFoundError(_missing_message(name, root, pack_only=True))
    try:
        return load_torchvision(name, root / "torchvision").to(device)
    except Exception as err:  # offline, blocked, corrupt download...
        if source == "torchvision":
            raise
        raise FileNotFoundError(_missing_message(name, root) + f"\n(the download failed with: {err!r})") from err


def _missing_message(name: str, root: Path, pack_only: bool = False) -> str:
    looked = "\n".join(f"  - {p}" for p in pack_candidates(name, root))
    tv = "" if pack_only else f"\n  - the official archive via torchvision in {root / 'torchvision'} (download failed)"
    return (f"no source for dataset {name!r} is available. Looked for an image pack at:\n{looked}{tv}\n"
            f"Fix it in one of two ways: (1) connect to the internet and load with source='torchvision' "
            f"(it downloads the official archive into the data directory), or (2) put the pack "
            f"{name}-jpeg.npz (or {name}-png.npz) into the data directory {root} (set ${ENV_DATA_DIR} or "
            f"pass data_dir= to use another folder), or pass source='/path/to/pack.npz'.")


def load_torchvision(name: str, root: str | os.PathLike) -> Dataset:
    """The official CIFAR-10/100 through torchvision (download=True; verified by its checksums)."""
    import torchvision  # heavy, and only needed for the official archive: imported on use

    cls = {"cifar10": torchvision.datasets.CIFAR10, "cifar100": torchvision.datasets.CIFAR100}[name]
    splits = {}
    for train in (True, False):
        ds = cls(root=str(root), train=train, download=True)
        x = torch.from_numpy(np.ascontiguousarray(ds.data)).permute(0, 3, 1, 2).contiguous()
        splits[train] = (x, torch.as_tensor(np.asarray(ds.targets), dtype=torch.int64))
        classes = list(ds.classes)
    mean, std = _STATS[name]
    return Dataset(name, *splits[True], *splits[False], classes=classes, mean=mean, std=std,
                   source="torchvision")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def _decode_split(z, split: str) -> np.ndarray:
    from PIL import Image  # Pillow: only to decode a pack once (then the cache is read), imported on use

    raw, off = z[f"{split}_bytes"].tobytes(), z[f"{split}_offsets"]
    out = np.empty((len(off) - 1, 32, 32, 3), dtype=np.uint8)
    for i in range(len(off) - 1):
        out[i] = np.asarray(Image.open(io.BytesIO(raw[off[i]:off[i + 1]])).convert("RGB"))
    return out


def load_pack(path: str | os.PathLike, name: str | None = None, cache_dir: str | os.PathLike | None = None) -> Dataset:
    """An image pack (README format) as a Dataset; decoded once, then read from the uint8 cache."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"image pack {path} does not exist")
    name = name or path.stem.split("-")[0]
    cache_dir = Path(cache_dir) if cache_dir is not None else resolve_data_dir() / "decoded"
    digest = _sha256(path)[:16]
    stem = cache_dir / f"{name}-{digest}"
    files = {k: stem.with_name(f"{stem.name}.{k}.npy") for k in ("train_x", "train_y", "test_x", "test_y")}
    z = None
    with np.load(path, allow_pickle=False) as zf:
        classes = [str(c) for c in zf["classes"]]
        encoding = str(zf["encoding"]) if "encoding" in zf else "?"
        if not all(f.exists() for f in files.values()):
            z = {k: zf[k] for k in zf.files}
    if z is not None:
        arrays = {}
        for split in ("train", "test"):
            arrays[f"{split}_x"] = np.ascontiguousarray(_decode_split(z, split).transpose(0, 3, 1, 2))
            arrays[f"{split}_y"] = z[f"{split}_labels"].astype(np.int64)
        for k, f in files.items():
            atomic_write(f, lambda fh, a=arrays[k]: np.save(fh, a, allow_pickle=False))
    t = {k: torch.from_numpy(np.load(f, allow_pickle=False)) for k, f in files.items()}
    mean, std = _STATS[name] if name in _STATS else _stats(t["train_x"])
    return Dataset(name, t["train_x"], t["train_y"], t["test_x"], t["test_y"], classes=classes, mean=mean,
                   std=std, source=f"pack:{path.name}", meta={"sha256_16": digest, "encoding": encoding})


def _stats(x: Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    xf = x.double().div(255)
    return tuple(xf.mean((0, 2, 3)).tolist()), tuple(xf.std((0, 2, 3)).tolist())


def synthetic(n_train: int = 1024, n_test: int = 256, num_classes: int = 4, seed: int = 0, noise: float = 40.0) -> Dataset:
    """A tiny dataset of class-dependent colour patterns plus noise, learnable in a few steps.

    Class c has a fixed random 4x4 pattern per channel, upsampled to 32x32 (robust to the crop and
    flip augmentation); every image is its class pattern plus Gaussian pixel noise.
    """
    g = torch.Generator().manual_seed(seed)
    protos = torch.rand(num_classes, 3, 4, 4, generator=g) * 200 + 28
    protos = torch.nn.functional.interpolate(protos, size=32, mode="bilinear", align_corners=False)

    def make(n: int) -> tuple[Tensor, Tensor]:
        y = torch.arange(n) % num_classes
        y = y[torch.randperm(n, generator=g)]
        x = protos[y] + noise * torch.randn(n, 3, 32, 32, generator=g)
        return x.round().clamp(0, 255).to(torch.uint8), y

    trx, try_ = make(n_train)
    tex, tey = make(n_test)
    mean, std = _stats(trx)
    return Dataset("synthetic", trx, try_, tex, tey, classes=[f"class{i}" for i in range(num_classes)],
                   mean=mean, std=std, source="synthetic")


# ------------------------------------------------------------------------------ augmentation
def draw_augmentation(n: int, generator: torch.Generator, pad: int = PAD) -> tuple[Tensor, Tensor, Tensor]:
    """Per-image crop offsets (dy, dx in [0, 2*pad]) and flip flags for `n` images, from `generator`."""
    dev = generator.device
    off = torch.randint(0, 2 * pad + 1, (2, n), generator=generator, device=dev)
    flip = torch.randint(0, 2, (n,), generator=generator, device=dev).bool()
    return off[0], off[1], flip


def augment(x: Tensor, dy: Tensor, dx: Tensor, flip: Tensor, pad: int = PAD) -> Tensor:
    """Random crop after zero padding by `pad`, then horizontal flip, on a uint8 batch (B, C, H, W)."""
    b, c, h, w = x.shape
    xp = torch.nn.functional.pad(x, (pad, pad, pad, pad))
    ar_h = torch.arange(h, device=x.device)
    ar_w = torch.arange(w, device=x.device)
    rows = (dy[:, None] + ar_h)[:, None, :, None]                       # (B, 1, H, 1)
    cols = dx[:, None] + ar_w                                            # (B, W)
    cols = torch.where(flip[:, None], cols.flip(1), cols)[:, None, None, :]  # flip = reversed columns
    bi = torch.arange(b, device=x.device)[:, None, None, None]
    ci = torch.arange(c, device=x.device)[None, :, None, None]
    return xp[bi, ci, rows, cols]


def normalize(x: Tensor, mean: Tensor, std: Tensor, dtype: torch.dtype = torch.float32,
              channels_last: bool = False) -> Tensor:
    """uint8 (B, C, H, W) -> float (x/255 - mean)/std; `mean`, `std` are (1, C, 1, 1) tensors in 0-255 units."""
    out = (x.to(dtype) - mean.to(dtype)) / std.to(dtype)
    return out.contiguous(memory_format=torch.channels_last) if channels_last else out


def norm_tensors(ds: Dataset, device: str | torch.device) -> tuple[Tensor, Tensor]:
    """The dataset's mean and std as (1, C, 1, 1) float tensors in 0-255 units on `device`."""
    mean = torch.tensor(ds.mean, dtype=torch.float32, device=device).view(1, -1, 1, 1) * 255
    std = torch.tensor(ds.std, dtype=torch.float32, device=device).view(1, -1, 1, 1) * 255
    return mean, std
