"""A corpus's features on disk, read one utterance at a time: training memory flat in corpus size.

``ser train`` packs every utterance's log-mel features and their speed-perturbed copies
(``training.speeds``) into one ``.npy`` file (:func:`pack`) with an index of where each
starts, and reads an utterance only when a batch needs it. A :class:`FeatureView` is the
sequence of arrays training code indexes as it indexed a list (``view[i]``, ``len(view)``,
``view.take(rows)``), with the recipe's normalisation applied on each read by the same
functions :func:`ser.normalization.normalize` uses, so the arrays are bit-identical to the
list it returned. Reads go through ``os.pread`` rather than a mapping, so the pages read sit
in the operating system's page cache and not in the process's resident memory. A store
pickles as its path: a worker process or a Ray task opens the same file read-only.

Files: ``pack-<key>.npy`` (float32 ``(total frames, n_mels)``) and ``pack-<key>.index.npy``
(int64 ``(files, versions, 2)``: each version's first row and frame count; version 0 is
the utterance, version ``j`` its copy at the ``j``-th speed). The index is written last and
atomically: a pack with an index is complete.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from ser.errors import ConfigError
from ser.io import atomic_path
from ser.normalization import NORMALIZATIONS, feature_stats, standardize, standardize_utterance

#: Part of every pack's name: bump it when the pack's layout changes.
PACK_VERSION = 1


def pack_name(keys, extra=()) -> str:
    """The pack of the files whose cache keys are ``keys`` (in order), with ``extra`` (speeds,
    resampler, ...): ``pack-<sha1>``."""
    digest = hashlib.sha1(repr((PACK_VERSION, tuple(extra))).encode())
    for key in keys:
        digest.update(str(key).encode() + b"\n")
    return f"pack-{digest.hexdigest()}"


def pack(folder, name: str, sources, n_mels: int) -> FeatureStore:
    """Write the pack ``folder/name.npy`` (unless complete already) and return its store.

    Parameters
    ----------
    folder : path
        The feature cache.
    name : str
        From :func:`pack_name`.
    sources : list of list of path
        Per file, the ``.npy`` file of each version (the utterance, then its copies); every
        file the same number of versions, each a float32 ``(frames, n_mels)`` array.
    n_mels : int

    Returns
    -------
    FeatureStore

    Notes
    -----
    Two streaming passes over ``sources`` (their shapes, then their rows), each array read
    and written one at a time with plain file writes: memory stays that of one utterance.
    """
    folder = Path(folder)
    path = folder / f"{name}.npy"
    index_path = folder / f"{name}.index.npy"
    if index_path.is_file() and path.is_file():
        return FeatureStore(path)
    versions = len(sources[0]) if sources else 1
    frames = np.array(
        [[np.load(p, mmap_mode="r").shape[0] for p in versions_of] for versions_of in sources],
        dtype=np.int64,
    ).reshape(len(sources), versions)
    starts = np.concatenate([[0], np.cumsum(frames.ravel())[:-1]]).reshape(frames.shape)
    with atomic_path(path) as tmp:
        header = np.lib.format.open_memmap(
            tmp, mode="w+", dtype=np.float32, shape=(int(frames.sum()), n_mels)
        )
        offset = header.offset
        del header  # the file (sparse) and its header exist; rows are written below
        with open(tmp, "r+b") as fh:
            fh.seek(offset)
            for versions_of in sources:
                for p in versions_of:
                    fh.write(np.ascontiguousarray(np.load(p), dtype=np.float32).tobytes())
    with atomic_path(index_path) as tmp:
        np.save(tmp, np.stack([starts, frames], axis=-1))
    return FeatureStore(path)


class FeatureStore:
    """A pack written by :func:`pack`: every file's features and copies, read on demand.

    Parameters
    ----------
    path : path
        The pack's ``.npy`` file (its index beside it).
    """

    def __init__(self, path):
        self.path = Path(path)
        self.index = np.load(self.path.with_suffix(".index.npy"))
        mapped = np.load(self.path, mmap_mode="r")  # the header only: its size and shape
        self.offset, self.n_mels = int(mapped.offset), int(mapped.shape[1])
        del mapped
        self._fd = None

    def __getstate__(self):
        return {"path": str(self.path)}

    def __setstate__(self, state):
        self.__init__(state["path"])

    def __len__(self) -> int:
        return len(self.index)

    @property
    def versions(self) -> int:
        """Versions per file: 1 + the number of speed copies."""
        return int(self.index.shape[1])

    def frames(self, version: int = 0) -> np.ndarray:
        """Each file's frame count in ``version`` ``[shape=(files,)]``."""
        return self.index[:, version, 1]

    def read(self, i: int, version: int = 0) -> np.ndarray:
        """File ``i``'s features in ``version`` (0: its own), a new float32 ``(frames, n_mels)`` array."""
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDONLY)
        start, frames = self.index[i, version]
        out = np.empty((int(frames), self.n_mels), dtype=np.float32)
        os.preadv(self._fd, [out], self.offset + int(start) * self.n_mels * 4)
        return out

    def __del__(self):
        if getattr(self, "_fd", None) is not None:
            os.close(self._fd)


class FeatureView:
    """The normalised features of some files of a :class:`FeatureStore` in one version: a
    read-only sequence of float32 ``(frames, n_mels)`` arrays, each read when indexed.

    Parameters
    ----------
    store : FeatureStore
    version : int
        0: the files themselves; ``j``: their copies at the ``j``-th speed.
    rows : np.ndarray of int
        The store's files, in the view's order.
    scaling : None, "utterance", or (mean, std, group)
        None: as stored (``"global"``); ``"utterance"``: each by its own statistics; else
        per-group ``mean``, ``std`` ``[shape=(groups, n_mels)]`` and each store file's group.
    """

    def __init__(self, store: FeatureStore, version: int, rows, scaling=None):
        self.store, self.version = store, int(version)
        self.rows = np.asarray(rows, dtype=np.int64)
        self.scaling = scaling

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return self.take(np.arange(len(self))[i])
        row = int(self.rows[i])
        f = self.store.read(row, self.version)
        if self.scaling is None:
            return f
        if isinstance(self.scaling, str):
            return standardize_utterance(f)
        mean, std, group = self.scaling
        return standardize(f, mean[group[row]], std[group[row]])

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    @property
    def lengths(self) -> np.ndarray:
        """Each utterance's frame count, without reading it."""
        return self.store.frames(self.version)[self.rows]

    def take(self, rows) -> FeatureView:
        """The view of this view's ``rows`` (positions in it), in that order."""
        return FeatureView(
            self.store, self.version, self.rows[np.asarray(rows, dtype=np.int64)], self.scaling
        )


class CopiesView:
    """Each file's speed copies (``copies[i][j]``: file ``i`` at the ``j``-th speed), read
    when indexed: a sequence of tuples as :func:`ser.data.speed_copies` returns, lazily.

    Parameters
    ----------
    views : list of FeatureView
        One per speed, over the same rows.
    """

    def __init__(self, views):
        self.views = list(views)

    def __len__(self) -> int:
        return len(self.views[0])

    def __getitem__(self, i) -> _Copies:
        if not -len(self) <= i < len(self):
            raise IndexError(f"file {i} of {len(self)}")
        return _Copies(self.views, i)

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def take(self, rows) -> CopiesView:
        """The copies of this sequence's ``rows``, in that order."""
        return CopiesView([v.take(rows) for v in self.views])


class _Copies:
    """One file's copies, each read when indexed."""

    def __init__(self, views, i):
        self.views, self.i = views, i

    def __len__(self) -> int:
        return len(self.views)

    def __getitem__(self, j) -> np.ndarray:
        return self.views[j][self.i]

    def __iter__(self):
        return (self[j] for j in range(len(self)))


def normalized_view(store: FeatureStore, version: int, groups, mode: str) -> FeatureView:
    """All files of ``store`` in ``version``, normalised as :func:`ser.normalization.normalize`
    normalises a list (``mode`` one of its :data:`~ser.normalization.NORMALIZATIONS`; for
    ``"speaker"``, ``groups`` holds each file's speaker, or any other grouping). The
    per-group statistics take one streaming pass over the group's files."""
    rows = np.arange(len(store))
    if mode not in NORMALIZATIONS:
        raise ConfigError(f"normalization must be one of {NORMALIZATIONS}. Received: {mode!r}")
    if mode == "global":
        return FeatureView(store, version, rows)
    if mode == "utterance":
        return FeatureView(store, version, rows, "utterance")
    names, group = np.unique(np.asarray(groups).astype(str), return_inverse=True)
    raw = FeatureView(store, version, rows)
    stats = [feature_stats(raw.take(np.flatnonzero(group == g))) for g in range(len(names))]
    mean = np.stack([m for m, _ in stats])
    std = np.stack([np.sqrt(v) for _, v in stats])
    return FeatureView(store, version, rows, (mean, std, group))


def take(features, rows):
    """``features`` at ``rows``: a view's :meth:`FeatureView.take` (nothing read), or a list."""
    if isinstance(features, (FeatureView, CopiesView)):
        return features.take(rows)
    return [features[i] for i in rows]
