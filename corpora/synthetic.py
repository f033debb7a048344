"""A synthetic, procedurally generated "emotional speech" corpus.

**This corpus is synthetic.** Nobody spoke it and it carries no real emotion: it exists so
that the whole pipeline (features, training with speaker-independent folds, evaluation,
inference, attention maps) can be demonstrated and tested on any machine without
downloading a corpus. Accuracy measured on it says nothing about accuracy on real speech.

The voice (a source-filter model whose prosody and voice quality follow the emotion) is
:mod:`ser.corpora.synthesis`.

Layout written by :func:`generate` and read by :func:`load`::

    root/synthetic.json                  parameters of the last complete run
    root/spk01/spk01_angry_01.wav        16-bit PCM, mono
    root/spk01/spk01_happy_01.wav
    ...
"""

from __future__ import annotations

import json
import os
import re
import zlib
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf

from ser.constants import SAMPLE_RATE
from ser.corpora.base import UNPARSEABLE, Record, Report, check_bool, check_root, finalize, scan_audio
from ser.corpora.synthesis import (
    CLASSES,
    MAX_SAMPLE_RATE,
    MAX_SPEAKERS,
    MIN_SAMPLE_RATE,
    SPEAKER_RE,
    check_int,
    speaker_profile,
    synthesize_utterance,
)
from ser.errors import ConfigError

__all__ = ["CLASSES", "EXPECTED_COUNT", "PROTOCOL", "generate", "load", "write_utterance"]

NAME = "synthetic"
LAYOUT = (
    "spkNN/spkNN_<label>_<nn>.wav files such as spk01/spk01_angry_01.wav (see ser.corpora.synthetic.generate)"
)

#: Kind of problem: a well-named file outside its speaker's folder.
MISPLACED = "not in its speaker folder"

#: Number of utterances a complete corpus has; ``None`` because it depends on the
#: parameters given to :func:`generate`.
EXPECTED_COUNT = None

#: Evaluation protocol: one fold per held-out speaker.
PROTOCOL = {"kind": "leave_one_group_out", "group": "speaker"}

#: Version of the synthesis algorithm. Stored in ``synthetic.json``; bump it whenever the
#: audio produced for given parameters changes, so that cached corpora are regenerated.
GENERATOR_VERSION = 1

#: Name of the parameter file :func:`generate` writes last.
PARAMS_FILE = "synthetic.json"

MAX_PER_CLASS = 999

_FILE_RE = re.compile(r"^(?P<speaker>spk(?P<spk>\d{2,}))_(?P<label>[a-z]+)_(?P<index>\d{2,})$")

# --------------------------------------------------------------------------------------
# Corpus on disk
# --------------------------------------------------------------------------------------


def _file_seed(seed: int, speaker: int, label: str, index: int) -> np.random.SeedSequence:
    """Seed of one file: independent of which other files or classes are generated."""
    return np.random.SeedSequence([seed, speaker, zlib.crc32(label.encode("ascii")), index])


def _render(task: tuple) -> None:
    path, label, speaker, index, seed, sr, *duration = task
    rng = np.random.default_rng(_file_seed(seed, speaker, label, index))
    y = synthesize_utterance(label, speaker, rng, sample_rate=sr, duration=duration[0] if duration else None)
    sf.write(path, y, sr, subtype="PCM_16", format="WAV")


def write_utterance(
    path, label: str, speaker: int, index: int = 1, *, seed: int = 0, sample_rate: int = 16000
) -> None:
    """Write the one file :func:`generate` would write for ``(speaker, label, index)`` with ``seed``.

    Useful for a single utterance of a speaker outside a generated corpus (``ser demo``'s
    held-out speaker) without generating the others.
    """
    _render((str(path), label, int(speaker), int(index), int(seed), int(sample_rate)))


def _check_classes(classes, name: str = "classes") -> tuple[str, ...]:
    if isinstance(classes, str) or not hasattr(classes, "__iter__"):
        raise ConfigError(
            f"{name} must be a list of labels from {list(CLASSES)}; Received: {name}={classes!r}"
        )
    classes = tuple(classes)
    unknown = [c for c in classes if c not in CLASSES]
    if unknown or not classes or len(set(classes)) != len(classes):
        raise ConfigError(
            f"{name} must be a non-empty list of distinct labels from {list(CLASSES)}; Received: {name}={list(classes)!r}"
        )
    return classes


def _read_params(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _remove_stale(root: Path, planned: set) -> None:
    """Remove the files of this naming scheme under ``root`` that are not ``planned`` (those
    of an earlier run with other parameters), and speaker folders left empty."""
    if not root.is_dir():
        return
    for folder in root.iterdir():
        if not (folder.is_dir() and SPEAKER_RE.match(folder.name)):
            continue
        for f in folder.glob("*.wav"):
            m = _FILE_RE.match(f.stem)
            if m and m["speaker"] == folder.name and str(f) not in planned:
                f.unlink()
        if not any(folder.iterdir()):
            folder.rmdir()


def generate(
    root: str | os.PathLike,
    *,
    n_speakers: int = 6,
    per_class: int = 10,
    seed: int = 0,
    sample_rate: int = SAMPLE_RATE,
    classes=CLASSES,
    workers: int = 1,
    duration: float | None = None,
) -> Path:
    """Write the synthetic corpus under ``root`` (or reuse it if already complete).

    Writes ``root/spkNN/spkNN_<label>_<nn>.wav`` (16-bit PCM) for ``n_speakers`` speakers
    x ``len(classes)`` labels x ``per_class`` utterances, then ``root/synthetic.json``
    with the parameters, last and atomically. When that file already holds the same
    parameters and every file is present, nothing is done. Otherwise (first run, a run
    interrupted before the end, other parameters) the corpus is regenerated and stale
    files of this naming scheme are removed; other files are left alone.

    The same parameters always give bit-identical files; each file's seed is derived from
    ``(seed, speaker, label, index)``, so a file does not depend on ``classes``,
    ``n_speakers``, ``per_class`` or ``workers``.

    Parameters
    ----------
    root : str or os.PathLike
        Folder to write into; created if missing.
    n_speakers : int, default 6
        Number of speakers, 1 to 99 (``spk01`` ...).
    per_class : int, default 10
        Utterances per speaker and class, 1 to 999.
    seed : int, default 0
        Non-negative seed of the whole corpus.
    sample_rate : int, default 16000
        Rate of the written files in Hz.
    classes : sequence of str, default CLASSES
        Labels to generate, a subset of :data:`CLASSES`.
    workers : int, default 1
        Processes used to render files; does not change the output.
    duration : float or None, default None
        Every file's length in seconds (0.3 to 60; e.g. short files for a benchmark of
        many); ``None`` draws each in 1.2-2.5 s.

    Returns
    -------
    pathlib.Path
        ``root``.

    Raises
    ------
    ConfigError
        For a parameter outside the accepted values.
    """
    n_speakers = check_int("n_speakers", n_speakers, 1, MAX_SPEAKERS)
    per_class = check_int("per_class", per_class, 1, MAX_PER_CLASS)
    seed = check_int("seed", seed, 0, 2**63 - 1)
    sample_rate = check_int("sample_rate", sample_rate, MIN_SAMPLE_RATE, MAX_SAMPLE_RATE)
    workers = check_int("workers", workers, 1)
    classes = _check_classes(classes)

    root = Path(root)
    params = {
        "generator": "ser.corpora.synthetic",
        "version": GENERATOR_VERSION,
        "n_speakers": n_speakers,
        "per_class": per_class,
        "seed": seed,
        "sample_rate": sample_rate,
        "classes": list(classes),
    }
    extra = ()
    if duration is not None:  # (absent otherwise: corpora generated before it existed are reused)
        params["duration"] = float(duration)
        extra = (float(duration),)
    tasks = [
        (
            str(root / f"spk{s:02d}" / f"spk{s:02d}_{label}_{i:02d}.wav"),
            label,
            s,
            i,
            seed,
            sample_rate,
            *extra,
        )
        for s in range(1, n_speakers + 1)
        for label in classes
        for i in range(1, per_class + 1)
    ]
    params_path = root / PARAMS_FILE
    if _read_params(params_path) == params and all(os.path.isfile(t[0]) for t in tasks):
        return root

    if root.exists() and not root.is_dir():
        raise ConfigError(f"root must be a folder; Received: root={str(root)!r} (an existing file)")
    params_path.unlink(missing_ok=True)  # from here on, the corpus is incomplete
    _remove_stale(root, {t[0] for t in tasks})
    for s in range(1, n_speakers + 1):
        (root / f"spk{s:02d}").mkdir(parents=True, exist_ok=True)

    if workers > 1 and len(tasks) > 1:
        with ProcessPoolExecutor(max_workers=min(workers, len(tasks))) as pool:
            list(pool.map(_render, tasks, chunksize=max(1, len(tasks) // (4 * workers))))
    else:
        for task in tasks:
            _render(task)

    tmp = params_path.with_name(PARAMS_FILE + ".tmp")
    tmp.write_text(json.dumps(params, indent=2) + "\n")
    os.replace(tmp, params_path)
    return root


def load(root: str | os.PathLike, *, skip_bad: bool = False, find_unusable=None, **options) -> pd.DataFrame:
    """Return the manifest of a synthetic corpus written by :func:`generate`.

    Parameters
    ----------
    root : str or os.PathLike
        Folder holding ``spkNN/spkNN_<label>_<nn>.wav``.
    skip_bad : bool, default False
        Drop (with a :class:`~corpora.base.CorpusWarning` listing them) audio files that are
        misnamed, misplaced or unreadable, instead of raising.
    find_unusable : callable, optional
        Decodes the files whose headers are fine and names those whose audio cannot be used,
        listed with the other problems (see :func:`corpora.base.finalize`).
    **options
        ``classes`` : sequence of str -- load only these labels, a subset of
        :data:`CLASSES` (files of the other labels are left out silently). Every class
        asked for needs at least one file.

    Returns
    -------
    pandas.DataFrame [shape=(n_utterances, 7)]
        Columns, in this order: ``path`` (absolute str), ``utt_id`` (file stem), ``label``,
        ``speaker`` (``"spk01"`` ...), ``session`` (``None``), ``gender`` (``"F"``/``"M"``),
        ``duration`` (float seconds); sorted by path. ``attrs`` holds ``corpus``
        (``"synthetic"``), ``root`` and ``classes``.

    Raises
    ------
    CorpusError
        If ``root`` is missing or holds no audio, or (unless ``skip_bad``) if audio files
        are misnamed, misplaced or unreadable, or a class has no file -- one error listing
        every problem.
    ConfigError
        For an unknown option, a bad ``classes`` or a non-bool ``skip_bad``.
    """
    check_bool("skip_bad", skip_bad)
    unknown = sorted(set(options) - {"classes"})
    if unknown:
        raise ConfigError(
            f"unknown option(s) {', '.join(repr(u) for u in unknown)} for corpus {NAME!r}; accepted options: classes"
        )
    classes = _check_classes(options.get("classes", CLASSES))
    root = check_root(NAME, root, LAYOUT)
    report = Report(NAME, root)
    records = []
    for path in scan_audio(NAME, root, LAYOUT):
        match = _FILE_RE.match(path.stem)
        if match is None or path.suffix.lower() != ".wav":
            report.add(
                UNPARSEABLE, path, f"expected spkNN_<label>_<nn>.wav such as spk01_{CLASSES[0]}_01.wav"
            )
            continue
        speaker = match["speaker"]
        if path.parent != root / speaker or not 1 <= int(match["spk"]) <= MAX_SPEAKERS:
            report.add(
                MISPLACED, path, f"expected it in the speaker folder {speaker}/ (speakers spk01 to spk99)"
            )
            continue
        gender = speaker_profile(int(match["spk"])).gender
        records.append(Record(str(path), path.stem, match["label"], speaker, None, gender))
    label_map = {label: (label if label in classes else None) for label in CLASSES}
    return finalize(
        NAME,
        root,
        records,
        report,
        classes=classes,
        label_map=label_map,
        skip_bad=skip_bad,
        find_unusable=find_unusable,
    )
