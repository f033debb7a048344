"""Manifest -> cached log-mel features -> training batches.

Features are computed once per file and frontend setting, in parallel, and cached as
``.npy`` files keyed by the file's content and the frontend, so a second run of a recipe
reads them back instead of recomputing, also after the corpus was copied or moved. For
training, :func:`pack_features` packs a corpus's cached features into one file that
:class:`CropBatches` reads an utterance at a time (:mod:`ser.store`), so training memory does
not grow with the corpus.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from ser.audio import is_silent, load_audio
from ser.augment import SPEED_RESAMPLER, spec_augment, speed_perturbed
from ser.errors import AudioError
from ser.features import FrontendConfig, crop_or_pad, model_input
from ser.functionals import FUNCTIONALS_VERSION, N_FUNCTIONALS, utterance_functionals
from ser.io import atomic_path
from ser.store import FeatureStore, pack, pack_name

#: Part of every cache key: bump it whenever the feature code changes (``logmel``,
#: ``trim_silence``, ``load_audio``), so stale cached features are never reused.
FEATURES_VERSION = 3


def _cache_key(path: str, frontend: FrontendConfig) -> str:
    """The file's bytes, not its name or modification time, with the frontend and
    :data:`FEATURES_VERSION`: a copied, moved or re-extracted corpus (new times, as ``cp`` and
    most archive tools give) still finds its features, and an edited file never does."""
    content = hashlib.sha1()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            content.update(chunk)
    payload = json.dumps([FEATURES_VERSION, content.hexdigest(), frontend.to_dict()], sort_keys=True)
    return hashlib.sha1(payload.encode()).hexdigest()


def _cache_folder(cache_dir) -> Path | None:
    """``cache_dir`` as a Path, created if missing (``None``: no cache)."""
    if cache_dir is None:
        return None
    cache = Path(cache_dir)
    cache.mkdir(parents=True, exist_ok=True)
    return cache


def _model_input_check(frontend: FrontendConfig):
    """Whether a cached array is model input of ``frontend`` (``(frames, n_mels)``, float32)."""
    return lambda a: a.ndim == 2 and a.shape[1] == frontend.n_mels and a.dtype == np.float32


def _load_cached(target: Path | None, check) -> np.ndarray | None:
    if target is None:
        return None
    try:
        cached = np.load(target)
        if check(cached):
            return cached
    except (OSError, ValueError, EOFError):  # missing, or damaged (e.g. a crash before the disk flushed)
        pass
    return None


class UnusableAudio(AudioError):
    """Files of :func:`extract_all` whose audio cannot be used, all of them at once.

    ``failures`` maps each such file's index in ``paths`` to its :class:`AudioError`;
    ``results`` is what :func:`extract_all` would have returned for the others, with ``None``
    in the failed files' places.
    """

    def __init__(self, failures: dict, results):
        self.failures = failures
        self.results = results
        first = str(next(iter(failures.values())))
        more = f" (and {len(failures) - 1} more file(s))" if len(failures) > 1 else ""
        super().__init__(first + more)


def _store(target: Path | None, value: np.ndarray) -> None:
    """Write ``value`` to the cache file ``target`` atomically (``None``: no cache)."""
    if target is not None:
        with atomic_path(target) as tmp:
            np.save(tmp, value)


def usable_audio(path: str, sample_rate: int) -> np.ndarray:
    """A corpus file's audio at ``sample_rate`` (:func:`ser.audio.load_audio`), as training
    decodes it; :class:`AudioError` where it cannot train a model (unreadable, too short or
    long, non-finite, far beyond full scale, silent)."""
    y = load_audio(path, sample_rate)
    if is_silent(y):
        raise AudioError(f"{path}: silent (no sample above -80 dB full scale); expected speech to train on")
    return y


def _cached(
    path: str,
    frontend: FrontendConfig,
    cache_dir: Path | None,
    functionals: bool = False,
    speeds: tuple = (),
    as_key: bool = False,
):
    """Log-mel features of one file (and its functionals), from the cache where present.

    With ``speeds``, the functionals are ``(1 + len(speeds), N)``: the file's, then those of
    the file played at each speed (:func:`ser.augment.speed_perturbed`). The audio is
    loaded once for everything that is not cached. With ``as_key`` (and a cache), the
    file's cache key stands in for its features, which stay on disk (:func:`pack_features`).
    """
    key = _cache_key(path, frontend) if cache_dir is not None else None
    target = cache_dir / f"{key}.npy" if key else None
    f_target = cache_dir / f"{key}.functionals{FUNCTIONALS_VERSION}.npy" if key else None
    tag = "_".join(f"{v:g}" for v in speeds)
    s_target = (
        cache_dir / f"{key}.functionals{FUNCTIONALS_VERSION}.speeds{tag}.{SPEED_RESAMPLER}.npy"
        if key and speeds
        else None
    )
    feats = _load_cached(target, _model_input_check(frontend))
    func = perturbed = None
    if functionals:
        func = _load_cached(f_target, lambda a: a.shape == (N_FUNCTIONALS,) and a.dtype == np.float32)
        if speeds:
            perturbed = _load_cached(
                s_target, lambda a: a.shape == (len(speeds), N_FUNCTIONALS) and a.dtype == np.float32
            )
    missing = functionals and (func is None or (speeds and perturbed is None))
    if feats is None or missing:
        y = usable_audio(path, frontend.sample_rate)
        if feats is None:
            feats = model_input(y, frontend)
            _store(target, feats)
        if functionals:
            sr = frontend.sample_rate
            if func is None:
                func = utterance_functionals(y, sr)
                _store(f_target, func)
            if speeds and perturbed is None:
                perturbed = np.stack([utterance_functionals(speed_perturbed(y, sr, v), sr) for v in speeds])
                _store(s_target, perturbed)
    if as_key and key is not None:
        feats = key
    if not functionals:
        return feats
    return feats, (np.vstack([func[None], perturbed]) if speeds else func)


def _chunk(work, paths, *args):
    import multiprocessing
    import signal

    if multiprocessing.parent_process() is not None:
        # a worker process: a terminal's Ctrl-C reaches the whole process group, but only
        # the parent handles it (and stops the pool); an idle joblib worker would print a
        # KeyboardInterrupt traceback of its own
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    out = []
    for p in paths:
        try:
            out.append(work(p, *args))
        except AudioError as exc:  # collected: every bad file is reported, not just the first
            out.append(exc)
    return out


def _each_file(work, paths: list[str], args: tuple, *, n_jobs: int, progress: bool, desc: str) -> list:
    """``work(path, *args)`` for every path, in order, in parallel chunks (joblib), with a
    progress bar on a terminal; an :class:`AudioError` is returned in its file's place."""
    from joblib import Parallel, delayed
    from tqdm.auto import tqdm

    chunk = 32
    pieces = [paths[i : i + chunk] for i in range(0, len(paths), chunk)]
    out: list = []
    # disable=None: no bar where stderr is not a terminal (a log file would keep its \r lines)
    bar = tqdm(total=len(paths), desc=desc, unit="file", disable=None if progress else True, leave=False)
    with bar:
        if len(pieces) <= 1 or n_jobs == 1:
            results = (_chunk(work, p, *args) for p in pieces)
        else:
            results = Parallel(n_jobs=n_jobs, return_as="generator")(
                delayed(_chunk)(work, p, *args) for p in pieces
            )
        for part in results:
            out.extend(part)
            bar.update(len(part))
    return out


def release_workers() -> None:
    """Stop joblib's feature-extraction processes now instead of after their 5 idle minutes
    (the next extraction starts them again, in about 4 s): idle, they hold memory."""
    from joblib.externals.loky import get_reusable_executor

    get_reusable_executor().shutdown(wait=True)


def _copy_target(cache_dir: Path, key: str, speed: float) -> Path:
    return cache_dir / f"{key}.speed{speed:g}.{SPEED_RESAMPLER}.npy"


def _cached_copies(
    path: str, frontend: FrontendConfig, cache_dir: Path | None, speeds: tuple, as_key: bool = False
):
    """Model input of ``path`` played at each of ``speeds``, from the cache where present
    (with ``as_key`` and a cache: the file's cache key instead, the copies staying on disk)."""
    key = _cache_key(path, frontend) if cache_dir is not None else None
    out, y = [], None
    for v in speeds:
        target = _copy_target(cache_dir, key, v) if key else None
        feats = _load_cached(target, _model_input_check(frontend))
        if feats is None:
            if y is None:
                y = usable_audio(path, frontend.sample_rate)
            feats = model_input(speed_perturbed(y, frontend.sample_rate, v), frontend)
            _store(target, feats)
        out.append(feats)
    return key if as_key and key is not None else tuple(out)


def speed_copies(
    paths: list[str],
    frontend: FrontendConfig,
    speeds: tuple,
    *,
    cache_dir: str | os.PathLike | None = None,
    n_jobs: int = -1,
    progress: bool = True,
    keys: bool = False,
) -> list[tuple]:
    """Model input (:func:`ser.features.model_input`) of every file played at each of
    ``speeds`` (:func:`ser.augment.speed_perturbed`; ``training.speeds``), cached beside
    the file's own features.

    keys : bool
        With a cache: return each file's cache key instead of its copies, which stay on
        disk for :func:`pack_features`.

    Returns
    -------
    list of tuple of np.ndarray
        One tuple per file, in the order of ``paths``: its copies in the order of ``speeds``
        (with ``keys``: a list of str).

    Raises
    ------
    UnusableAudio
        If any file could not be read (see :func:`extract_all`).
    """
    cache = _cache_folder(cache_dir)
    out = _each_file(
        _cached_copies,
        paths,
        (frontend, cache, tuple(speeds), keys),
        n_jobs=n_jobs,
        progress=progress,
        desc="speed copies",
    )
    failures = {i: x for i, x in enumerate(out) if isinstance(x, AudioError)}
    if failures:
        raise UnusableAudio(failures, [None if i in failures else x for i, x in enumerate(out)])
    return out


def _decodes(path: str, sample_rate: int) -> None:
    usable_audio(path, sample_rate)


def find_unusable(
    paths: list[str], sample_rate: int, *, n_jobs: int = -1, progress: bool = True
) -> dict[int, AudioError]:
    """The files whose audio training could not use (see :func:`usable_audio`), by index in
    ``paths``: every file decoded, in parallel, nothing computed or cached."""
    out = _each_file(_decodes, paths, (sample_rate,), n_jobs=n_jobs, progress=progress, desc="decoding")
    return {i: x for i, x in enumerate(out) if isinstance(x, AudioError)}


def extract_all(
    paths: list[str],
    frontend: FrontendConfig,
    *,
    cache_dir: str | os.PathLike | None = None,
    n_jobs: int = -1,
    progress: bool = True,
    functionals: bool = False,
    speeds: tuple = (),
    keys: bool = False,
):
    """Features of every file, from the cache where present, computed in parallel otherwise.

    Parameters
    ----------
    paths : list of str
    frontend : FrontendConfig
    cache_dir : path or None
        Where ``.npy`` features are kept between runs (``None``: no cache).
    n_jobs : int
        Worker processes (joblib; -1 = all cores).
    progress : bool
        Show a progress bar (on a terminal only).
    functionals : bool
        Also return each file's utterance functionals (:mod:`ser.functionals`).
    speeds : tuple of float
        With ``functionals``, also those of each file played at these speeds
        (``model.functionals_speeds``): the functionals are then
        ``(len(paths), 1 + len(speeds), N_FUNCTIONALS)``, the file's own first.
    keys : bool
        With a cache: each file's cache key (str) stands in for its features, which stay on
        disk for :func:`pack_features` (memory flat in the number of files).

    Returns
    -------
    list of np.ndarray [shape=(frames_i, n_mels)], in the order of ``paths``
        With ``functionals``: ``(that list, np.ndarray [shape=(len(paths), N_FUNCTIONALS)])``,
        or ``(len(paths), 1 + len(speeds), N_FUNCTIONALS)`` with ``speeds``.

    Raises
    ------
    UnusableAudio
        After every file was tried, if any could not be read or is silent: it names them
        all and holds the others' features.
    """
    cache = _cache_folder(cache_dir)
    out = _each_file(
        _cached,
        paths,
        (frontend, cache, functionals, tuple(speeds), keys),
        n_jobs=n_jobs,
        progress=progress,
        desc="features",
    )
    failures = {i: x for i, x in enumerate(out) if isinstance(x, AudioError)}
    if failures:
        out = [None if i in failures else x for i, x in enumerate(out)]
    if functionals:
        shape = (len(out), 1 + len(speeds), N_FUNCTIONALS) if speeds else (len(out), N_FUNCTIONALS)
        func = np.full(shape, np.nan, dtype=np.float32)
        for i, x in enumerate(out):
            if x is not None:
                func[i] = x[1]
        result = ([None if x is None else x[0] for x in out], func)
    else:
        result = out
    if failures:
        raise UnusableAudio(failures, result)
    return result


def pack_features(keys: list[str], frontend: FrontendConfig, cache_dir, speeds: tuple = ()) -> FeatureStore:
    """The cached features of the files whose cache keys are ``keys`` (from :func:`extract_all`
    and :func:`speed_copies` with ``keys=True``) and their copies at ``speeds``, packed into
    one file of the cache (:func:`ser.store.pack`; reused when already packed).

    Returns
    -------
    ser.store.FeatureStore
        File ``i`` is ``keys[i]``; version 0 its features, version ``j`` its copy at ``speeds[j - 1]``.
    """
    cache = _cache_folder(cache_dir)
    name = pack_name(keys, (FEATURES_VERSION, frontend.to_dict(), tuple(speeds), SPEED_RESAMPLER))
    sources = [[cache / f"{k}.npy", *(_copy_target(cache, k, v) for v in speeds)] for k in keys]
    return pack(cache, name, sources, frontend.n_mels)


class CropBatches:
    """Training batches of random fixed-length crops with masks, SpecAugment and shuffling.

    Each epoch visits every utterance once, cropped at a random start (zero-padded and
    masked when shorter than the crop). Every batch has ``batch_size`` crops: the last one
    is filled up with crops of utterances drawn from the rest of the epoch, because a batch
    of another size would make TensorFlow trace the training step a second time (seconds
    per model).

    Parameters
    ----------
    features : sequence of np.ndarray [shape=(frames_i, n_mels)]
        A list, or a :class:`ser.store.FeatureView` (each utterance read when its crop is cut).
    labels : np.ndarray of int
    crop_frames : int
    batch_size : int
    augment : bool
    seed : int
    mask_widths : (int, int) or None
        Largest SpecAugment mask widths: mel bands, frames (``None``: those of
        :func:`ser.augment.spec_augment`).
    copies : list of tuple of np.ndarray, or None
        Speed perturbation (``training.speeds``): each utterance's copies played at other
        speeds (:func:`speed_copies`). Each crop is then cut from the utterance or from one
        of its copies, each as likely. ``None``: from the utterance only (and the same
        crops as before copies existed).
    """

    def __init__(
        self,
        features,
        labels,
        crop_frames,
        batch_size,
        *,
        augment=True,
        seed=0,
        mask_widths=None,
        copies=None,
    ):
        if copies is not None and len(copies) != len(features):
            raise ValueError(f"copies: {len(copies)} entries for {len(features)} utterances")
        self.features = features
        self.copies = copies
        self.labels = np.asarray(labels, dtype=np.int32)
        self.crop_frames = int(crop_frames)
        self.batch_size = int(batch_size)
        self.augment = augment
        self.mask_kwargs = {}
        if mask_widths is not None:
            self.mask_kwargs = {"freq_width": int(mask_widths[0]), "time_width": int(mask_widths[1])}
        self.rng = np.random.default_rng(seed)
        self.order = np.arange(len(features))

    def __len__(self):
        return int(np.ceil(len(self.features) / self.batch_size))

    def epoch(self):
        """Yield ``([x, mask], y)`` batches for one epoch."""
        self.rng.shuffle(self.order)
        order = self.order
        fill = -len(order) % self.batch_size
        if fill and len(order) > self.batch_size:
            rest = order[: len(order) - self.batch_size + fill]
            order = np.concatenate([order, self.rng.choice(rest, fill, replace=False)])
        for b in range(len(self)):
            idx = order[b * self.batch_size : (b + 1) * self.batch_size]
            xs, ms = [], []
            for i in idx:
                f = self.features[i]
                if self.copies is not None and len(self.copies[i]):
                    version = int(self.rng.integers(0, 1 + len(self.copies[i])))
                    f = f if version == 0 else self.copies[i][version - 1]
                start = int(self.rng.integers(0, max(f.shape[0] - self.crop_frames, 0) + 1))
                x, m = crop_or_pad(f, self.crop_frames, start)
                x = x.copy()
                if self.augment:
                    spec_augment(x[: int(m.sum())], self.rng, **self.mask_kwargs)
                xs.append(x)
                ms.append(m)
            yield [np.stack(xs), np.stack(ms)], self.labels[idx]
