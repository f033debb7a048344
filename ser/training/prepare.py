"""The corpus a run trains on: loaded and checked, its features (cached), labels and folds.

Everything here is checked before anything is written or computed, so that a run that
cannot be made (too few classes or speakers for the folds, unusable files without
``--skip-bad``) is refused with one message and leaves nothing behind.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from ser.corpora import describe_manifest, load_corpus
from ser.corpora.base import FIX_HINT, UNUSABLE, Report, detail_of, skipped_line, warn
from ser.data import UnusableAudio, extract_all, find_unusable, pack_features, speed_copies
from ser.errors import ConfigError, CorpusError
from ser.protocol import describe_protocol, fold_splits, make_folds
from ser.recipe import load_recipe
from ser.store import CopiesView, normalized_view
from ser.training.report import groups_text
from ser.training.sources import (
    extend_folds,
    is_several,
    load_several,
    resolve_roots,
    tested_part,
    train_only_rows,
)


@dataclass
class Prepared:
    """A corpus ready to train on (what :func:`prepare_corpus` returns).

    Attributes
    ----------
    manifest : pandas.DataFrame
        One row per utterance kept (``attrs["root"]``: the corpus root, absolute).
    labels : list of str
        The classes, in the order of the model's outputs.
    features : ser.store.FeatureView
        Each file's normalised log-mel features (a sequence of float32 ``(frames_i, n_mels)``
        arrays read from the feature cache's pack when indexed, :mod:`ser.store`).
    y : np.ndarray [shape=(files,), dtype=int32]
        Each file's class index in ``labels``.
    seconds : float
        Time spent computing or reading the features.
    functionals : np.ndarray [shape=(files, 1 + speeds, N)] or None
        Each file's functionals (:mod:`ser.functionals`), then those of its copies at
        ``model.functionals_speeds``; None unless ``model.functionals``.
    copies : ser.store.CopiesView or None
        Each file's features played at ``training.speeds`` (``copies[i][j]``), normalised
        by the statistics of its speaker at that speed, read when indexed; None unless
        ``training.speeds`` has any.
    """

    manifest: object
    labels: list
    features: list
    y: np.ndarray
    seconds: float
    functionals: np.ndarray | None
    copies: list | None

    @property
    def speakers(self) -> np.ndarray:
        """Each file's speaker, as strings."""
        return self.manifest["speaker"].astype(str).to_numpy()


def parse_folds(folds, n: int) -> list[int]:
    """``--folds`` (None or ``"all"``: every one; else a comma list such as ``"1,3"``) as
    sorted fold numbers between 1 and ``n``; a :class:`ConfigError` otherwise."""
    if folds in (None, "all"):
        return list(range(1, n + 1))
    try:
        chosen = sorted({int(v) for v in str(folds).split(",") if v.strip()})
    except ValueError:
        raise ConfigError(
            f"--folds expects 'all' or a comma list of numbers, e.g. 1,3. Received: {folds!r}"
        ) from None
    bad = [f for f in chosen if not 1 <= f <= n]
    if bad or not chosen:
        raise ConfigError(f"--folds must be between 1 and {n}. Received: {folds!r}")
    return chosen


def _where(manifest, recipe: dict) -> str:
    """``"<corpus> at <root>"``, as the corpus's own messages name it (the root made absolute)."""
    return f"{recipe['corpus']['name']} at {manifest.attrs.get('root')}"


def recipe_fold_splits(manifest, recipe: dict) -> list:
    """The recipe's folds of ``manifest`` (:func:`ser.protocol.fold_splits`); an error names
    the corpus, since the protocol may suit the full release and not this copy of it."""
    part, rows = tested_part(manifest, recipe)  # (without the corpora only trained on)
    try:
        return [(groups, rows[test]) for groups, test in fold_splits(part, recipe["protocol"])]
    except ConfigError as exc:
        raise ConfigError(f"{_where(manifest, recipe)}: {exc}") from None


def run_folds(manifest, recipe: dict, *, warn_for=None) -> list:
    """The run's folds (:func:`ser.protocol.make_folds` with the recipe's protocol and seed),
    made without the rows of its train-only corpora, which are added to every training set
    (:mod:`ser.training.sources`)."""
    extra = train_only_rows(manifest, recipe)
    seed = recipe["training"].seed
    if not extra.any():
        return make_folds(manifest, recipe["protocol"], seed=seed, warn_for=warn_for)
    part, rows = tested_part(manifest, recipe)
    folds = make_folds(part, recipe["protocol"], seed=seed, warn_for=warn_for)
    return extend_folds(folds, rows, np.flatnonzero(extra))


def chosen_folds(manifest, recipe: dict, folds) -> list[int]:
    """The folds asked for (``--folds``, see :func:`parse_folds`), checked against the folds
    the recipe's protocol makes of ``manifest`` (which must be possible)."""
    return parse_folds(folds, len(recipe_fold_splits(manifest, recipe)))


def load_manifest(recipe: dict, data_root, *, skip_bad: bool, decode: bool = True, progress: bool = True):
    """The recipe's corpus as a manifest (:func:`ser.corpora.load_corpus`); of several
    corpora, ``data_root`` gives each one's root (:func:`ser.training.sources.resolve_roots`)
    and their manifests are joined (:func:`ser.training.sources.load_several`).

    With ``decode``, every file whose header is fine is also decoded as training will decode
    it (:func:`ser.data.find_unusable`), so that the files whose samples are unusable (NaN,
    silent, ...) are listed with the corpus's other problems: one run names every file to
    fix, and ``skip_bad`` leaves them all out at once. Feature extraction (:func:`prepare_corpus`)
    decodes each file not in the cache once more: a small share of the extraction, and
    nothing is computed before the folds are checked.
    """
    rate = recipe["frontend"].sample_rate
    unusable = partial(find_unusable, sample_rate=rate, progress=progress) if decode else None

    def load_one(name, root, options):
        return load_corpus(name, root, skip_bad=skip_bad, find_unusable=unusable, **options)

    roots = resolve_roots(recipe, data_root, absolute=False)
    if is_several(recipe):  # several corpora, one root each (ser.training.sources)
        manifest = load_several(recipe, roots, load_one)
    else:
        manifest = load_one(recipe["corpus"]["name"], roots, recipe["corpus"]["options"])
    return keep_speakers(manifest, recipe["corpus"].get("speakers"), recipe)


def keep_speakers(manifest, speakers, recipe: dict):
    """``manifest``'s rows of ``speakers`` (``corpus.speakers``; all when empty or None),
    with ``attrs["classes"]`` narrowed to the labels left. A :class:`ConfigError` names the
    speakers the corpus does not have."""
    if not speakers:
        return manifest
    present = set(manifest["speaker"].astype(str))
    missing = sorted(set(speakers) - present)
    if missing:
        raise ConfigError(
            f"{_where(manifest, recipe)}: corpus.speakers names {', '.join(missing)}, not in the corpus; "
            f"expected some of {', '.join(sorted(present))}"
        )
    attrs = dict(manifest.attrs)
    kept = manifest[manifest["speaker"].astype(str).isin(set(speakers))].reset_index(drop=True)
    kept.attrs.update(attrs)
    found = set(kept["label"])
    kept.attrs["classes"] = tuple(c for c in attrs.get("classes") or sorted(found) if c in found)
    return kept


def require_two_classes(manifest, recipe: dict) -> None:
    """A :class:`CorpusError` unless ``manifest`` holds at least two labels."""
    labels = sorted(set(manifest["label"]))
    if len(labels) < 2:
        raise CorpusError(
            f"{_where(manifest, recipe)}: every usable utterance is labelled "
            f"{labels[0]!r}; expected at least 2 classes to train on"
        )


def check_labels(manifest, recipe: dict, folds=None) -> list[str]:
    """The labels a run on ``manifest`` learns, in order, once it is checked that the run can
    be made: two classes or more, all among the recipe's, and the recipe's folds (and
    ``folds``, those asked for) possible."""
    labels = list(manifest.attrs.get("classes") or sorted(manifest["label"].unique()))
    require_two_classes(manifest, recipe)
    unknown = sorted(set(manifest["label"]) - set(labels))
    if unknown:
        raise ConfigError(f"manifest labels {unknown} are not among the recipe classes {labels}")
    chosen_folds(manifest, recipe, folds)
    return labels


def drop_unusable(manifest, failures: dict, recipe: dict, skip_bad: bool, folds):
    """``(manifest, keep)``: the manifest without the files of ``failures`` (manifest row ->
    :class:`AudioError`, as :class:`ser.data.UnusableAudio` holds them) and the mask of the
    rows kept; or, unless ``skip_bad``, a :class:`CorpusError` naming them all. The folds
    asked for (``folds``, as :func:`chosen_folds` takes them) must still be possible."""
    root = Path(manifest.attrs["root"])  # absolute, as the loader named it
    # a CSV (custom): paths are shown relative to its folder, as the loader does
    report = Report(recipe["corpus"]["name"], root, base=root.parent if root.is_file() else root)
    paths = manifest["path"].tolist()
    for i, error in failures.items():
        report.add(UNUSABLE, paths[i], detail_of(error, paths[i]))
    if not skip_bad:
        raise CorpusError(report.summary(FIX_HINT))
    keep = np.array([i not in failures for i in range(len(paths))])
    if not keep.any():
        raise CorpusError(report.summary("--skip-bad, but no usable utterance is left."))
    warn(report.summary(skipped_line(len(failures), int(keep.sum()))))
    attrs = dict(manifest.attrs)
    manifest = manifest[keep].reset_index(drop=True)
    manifest.attrs.update(attrs)
    lost = [c for c in attrs.get("classes") or () if c not in set(manifest["label"])]
    if lost:
        raise CorpusError(
            f"{_where(manifest, recipe)}: skipping the unusable files leaves no "
            f"utterance of {', '.join(lost)}; expected at least one per class"
        )
    chosen_folds(manifest, recipe, folds)  # the folds must still be possible
    return manifest, keep


def _extract(recipe: dict, manifest, *, skip_bad, cache_dir, progress, folds, n_jobs):
    """``(manifest, keys, functionals)``: each file's cache key (its raw features and speed
    copies are in the cache, :func:`ser.data.extract_all` with ``keys``), and functionals;
    files found unusable only now are dropped with ``skip_bad``."""
    use_functionals = recipe["model"].functionals
    try:
        extracted = extract_all(
            manifest["path"].tolist(),
            recipe["frontend"],
            cache_dir=cache_dir,
            progress=progress,
            functionals=use_functionals,
            speeds=recipe["model"].functionals_speeds,
            n_jobs=n_jobs,
            keys=True,
        )
    except UnusableAudio as exc:
        # files whose audio changed since load_manifest decoded them, or that a worker (which
        # does not decode) meets: reported together, and skipped with --skip-bad
        manifest, keep = drop_unusable(manifest, exc.failures, recipe, skip_bad, folds)
        features, func = exc.results if use_functionals else (exc.results, None)
        features = [f for f, k in zip(features, keep, strict=True) if k]
        extracted = (features, func[keep]) if use_functionals else features
    features, functionals = extracted if use_functionals else (extracted, None)
    if functionals is not None and functionals.ndim == 2:
        functionals = functionals[:, None]  # (files, 1 + speeds, N): each file's own first
    speeds = recipe["training"].speeds
    if speeds:
        # the training files' copies are cut into crops (speed perturbation)
        try:
            speed_copies(
                manifest["path"].tolist(),
                recipe["frontend"],
                speeds,
                cache_dir=cache_dir,
                progress=progress,
                n_jobs=n_jobs,
                keys=True,
            )
        except UnusableAudio as exc:  # (a file whose features were cached and whose audio changed)
            manifest, keep = drop_unusable(manifest, exc.failures, recipe, skip_bad, folds)
            features = [f for f, k in zip(features, keep, strict=True) if k]
            functionals = None if functionals is None else functionals[keep]
    return manifest, features, functionals


def prepare_corpus(
    recipe: dict, manifest, *, skip_bad: bool, cache_dir, progress: bool, folds=None, n_jobs: int = -1
) -> Prepared:
    """The normalised features of ``manifest`` (as :func:`load_manifest` returns it).

    The run is checked first (:func:`check_labels`), so a corpus the folds cannot be made
    from fails before any feature is computed. The returned manifest lacks the files whose
    audio turned out unusable only now (with ``skip_bad``). ``n_jobs``: processes computing
    features (joblib; -1: one per core).
    """
    labels = check_labels(manifest, recipe, folds)
    t0 = time.time()
    if cache_dir is None:  # the features are read from disk during training: a cache is needed
        cache_dir = tempfile.mkdtemp(prefix="ser-cache-")
    manifest, keys, functionals = _extract(
        recipe,
        manifest,
        skip_bad=skip_bad,
        cache_dir=cache_dir,
        progress=progress,
        folds=folds,
        n_jobs=n_jobs,
    )
    speakers = manifest["speaker"].astype(str).tolist()
    normalization = recipe["features"]["normalization"]
    speeds = recipe["training"].speeds
    store = pack_features(keys, recipe["frontend"], cache_dir, speeds)
    # each speed of a speaker is normalised as another speaker (its own statistics)
    copies = (
        CopiesView([normalized_view(store, j, speakers, normalization) for j in range(1, 1 + len(speeds))])
        if speeds
        else None
    )
    features = normalized_view(store, 0, speakers, normalization)
    seconds = time.time() - t0
    y = np.array([labels.index(label) for label in manifest["label"]], dtype=np.int32)
    return Prepared(manifest, labels, features, y, seconds, functionals, copies)


def check_corpus(
    recipe_name: str,
    *,
    data_root,
    overrides=(),
    skip_bad: bool = False,
    decode: bool = True,
    progress: bool = True,
) -> str:
    """Load a corpus with a recipe's settings and describe it (counts, speaker x label table, folds).

    The loader reads every file's header; with ``decode`` (the default), every file's audio
    is also decoded as training will decode it (:func:`load_manifest`), and the files it
    could not use are listed with the corpus's other problems (or, with ``skip_bad``, left
    out with them), as ``ser train`` lists them.
    """
    recipe = load_recipe(recipe_name, list(overrides or []))
    manifest = load_manifest(recipe, data_root, skip_bad=skip_bad, decode=decode, progress=progress)
    description = describe_manifest(manifest)
    try:
        require_two_classes(manifest, recipe)
        recipe_fold_splits(manifest, recipe)  # an error that names the corpus
        folds = run_folds(manifest, recipe)  # warns of gaps
    except (ConfigError, CorpusError):
        # the table is what shows why the folds cannot be made: print it before the error
        print(description, end="\n\n", flush=True)
        raise
    lines = [description, "", f"protocol: {describe_protocol(recipe['protocol'], len(folds))}"]
    for fold in folds:
        validation = f"; validation {groups_text(fold.validation_groups)}" if fold.validation_groups else ""
        lines.append(
            f"  fold {fold.number}: test {groups_text(fold.test_groups)} ({len(fold.test)} files), "
            f"training {len(fold.train)} files{validation}"
        )
    return "\n".join(lines)
