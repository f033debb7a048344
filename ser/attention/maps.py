"""Attention maps: where in the spectrogram the model heard the emotion.

Attentional pooling scores class ``k`` as the inner product, over the Conv5 positions, of a
class-specific *top-down* map ``t_k`` and a class-agnostic *bottom-up* map ``h`` (see
:mod:`ser.layers`). :func:`compute_attention` returns both maps and their product on the
Conv5 grid and upsampled to the spectrogram's frames and mel bands. :func:`occlusion_map`
measures, for comparison, what the network's output depends on: the fall of the logit when
each cell's input region is hidden.

For the baseline heads (masked average or max pooling followed by a dense layer) the maps
are class activation maps: ``t_k`` is the dense layer applied at every position and ``h``
is the constant 1 (for the average head, exactly the special case ``h = 1`` of attentional
pooling; for the max head the logit uses the maximum of the map, not its mean).

Audio up to :data:`ser.windows.WHOLE_MAX_DURATION` seconds goes through the model in one
pass, as in classification; a longer range is cut into consecutive windows of about
:data:`ser.windows.DEFAULT_WINDOW` seconds (:func:`ser.windows.consecutive_bounds`) whose
maps are stitched along time, so the model's memory stays bounded; its label is the
classifier's prediction of the range, from overlapping windows. One figure shows at most
:data:`MAX_ATTENTION_DURATION` seconds; choose a range (``start``, ``end``) within longer
files.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ser.attention.output import write_checked
from ser.audio import is_silent
from ser.classifier import EmotionClassifier, Prediction
from ser.constants import MAX_LOAD_DURATION, MIN_DURATION
from ser.errors import AudioError, ConfigError, ModelError
from ser.features import logmel, pad_batch, trim_bounds, voiced_fraction
from ser.preprocessor import audio_source, model_features, silent_error
from ser.windows import (
    BATCH_WINDOWS,
    DEFAULT_HOP,
    DEFAULT_WINDOW,
    WHOLE_MAX_DURATION,
    consecutive_bounds,
    counted_windows,
)

#: Longest stretch of audio (seconds) one attention figure shows.
MAX_ATTENTION_DURATION = MAX_LOAD_DURATION

#: Occluded copies of the input per forward pass of :func:`occlusion_map`.
OCCLUSION_BATCH = 32


@dataclass(frozen=True, eq=False)
class AttentionMaps:
    """The maps of one input, on the Conv5 grid and on the spectrogram's axes.

    Attributes
    ----------
    spectrogram : np.ndarray [shape=(frames, n_mels)]
        Log-mel spectrogram (:func:`ser.features.logmel`, before any normalisation).
    times : np.ndarray [shape=(frames,)]
        Centre of each frame in seconds from the start of the file.
    freqs : np.ndarray [shape=(n_mels,)]
        Centre frequency of each mel band in Hz.
    bottom_up : np.ndarray [shape=(t', f', rank)]
        Class-agnostic map ``h`` (ones for pooling heads), zero on padding. For an ensemble
        of ``members`` models, ``rank`` counts the maps of all members (member ``j``'s
        rank-``r`` map is channel ``j * rank_per_member + r``).
    top_down : np.ndarray [shape=(t', f', n_classes * rank)]
        Class maps ``t_{k,r}`` of every class, channel ``k * rank + r``.
    product : np.ndarray [shape=(t', f')]
        ``sum_r t_{k,r} * h_r / members`` for the explained class ``k``: its logit is the
        mean of this over the valid positions (linear bottom-up and average head) or its
        sum (softmax bottom-up), per window. For an ensemble this is the mean of the
        members' products, as its logit is the mean of theirs.
    bottom_up_up, top_down_up, product_up : np.ndarray [shape=(frames, n_mels)]
        ``bottom_up`` summed over rank, ``top_down`` of the explained class summed over
        rank (both divided by ``members``: means over the members of an ensemble), and
        ``product``, each repeated over the frames and bands its Conv5 cell covers.
    labels : list of str
    label : str
        Predicted class. For a stitched range, what :meth:`EmotionClassifier.classify`
        gives the range: the mean over its overlapping windows, those without speech left out.
    probability : float
        Probability of ``label``.
    explained_class : str
        Class whose top-down map and product are shown.
    scores : dict
        Class -> probability.
    file : str or None
    start, end : float
        The range shown, in seconds.
    head : str
        ``"attention"``, ``"average"`` or ``"max"``.
    bottom_up_mode : str
        ``"linear"``, ``"softmax"`` or ``"constant"`` (pooling heads).
    time_stride, freq_stride : int
        Frames and mel bands per Conv5 cell.
    window_starts : list of float
        Start (s) of each window stitched together (one entry for a single pass).
    window_counted : list of bool
        Per window, False for one without speech (a pause or noise, see
        :func:`ser.windows.counted_windows`), drawn greyed out; ``ser classify`` leaves
        such stretches out of the label.
    speech : bool
        False where the audio holds no voiced speech (as :attr:`ser.classifier.Prediction.speech`):
        the label is a guess about something the model was not trained on.
    members : int
        Models of the ensemble whose maps these are (1: a single model).
    functionals : bool
        Whether ``scores`` (and ``label``) fuse the CNN with the model's functionals head
        (:mod:`ser.fusion`), as ``ser classify`` does; the maps are the CNN's.
    cnn_weight : float
        The CNN's weight in that fusion (1.0 without a functionals head): how much of the
        score the maps explain; at 0 the functionals decide alone.
    adapted_to : int
        Recordings of the speaker the model was adapted to (``--same-speaker``; see
        :meth:`EmotionClassifier.set_speaker_reference`); 0: not adapted.
    occlusion, occlusion_up : np.ndarray [shape=(t', f') and (frames, n_mels)] or None
        With ``occlusion=True``: per Conv5 cell, how far the CNN's logit for the explained
        class falls when the cell's input region alone is replaced by the model's training
        mean (:func:`occlusion_map`), and the same repeated over the cell's frames and bands;
        ``None`` otherwise.
    """

    spectrogram: np.ndarray
    times: np.ndarray
    freqs: np.ndarray
    bottom_up: np.ndarray
    top_down: np.ndarray
    product: np.ndarray
    bottom_up_up: np.ndarray
    top_down_up: np.ndarray
    product_up: np.ndarray
    labels: list
    label: str
    probability: float
    explained_class: str
    scores: dict
    file: str | None = None
    start: float = 0.0
    end: float = 0.0
    head: str = "attention"
    bottom_up_mode: str = "linear"
    time_stride: int = 1
    freq_stride: int = 1
    window_starts: list = field(default_factory=list)
    window_counted: list = field(default_factory=list)
    speech: bool = True
    members: int = 1
    functionals: bool = False
    cnn_weight: float = 1.0
    adapted_to: int = 0
    occlusion: np.ndarray | None = None
    occlusion_up: np.ndarray | None = None

    @property
    def agreement(self) -> float | None:
        """Spearman rank correlation between ``product`` and ``occlusion`` over the cells:
        how well the attention's evidence ranks the regions the CNN's output depends on
        (``None`` without ``occlusion``, or where either map is constant)."""
        if self.occlusion is None:
            return None
        from scipy.stats import spearmanr

        a, b = self.product.ravel(), self.occlusion.ravel()
        if a.size < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
            return None
        return float(spearmanr(a, b).statistic)

    def save_npz(self, path: str | os.PathLike) -> None:
        """Write the maps, axes and labels to ``path`` (compressed ``.npz``, atomically)."""
        arrays = {
            "spectrogram": self.spectrogram,
            "times": self.times,
            "freqs": self.freqs,
            "bottom_up": self.bottom_up,
            "top_down": self.top_down,
            "product": self.product,
            "bottom_up_up": self.bottom_up_up,
            "top_down_up": self.top_down_up,
            "product_up": self.product_up,
            "labels": np.asarray(self.labels),
            "scores": np.asarray([self.scores[label] for label in self.labels]),
            "label": np.asarray(self.label),
            "explained_class": np.asarray(self.explained_class),
            "head": np.asarray(self.head),
            "bottom_up_mode": np.asarray(self.bottom_up_mode),
            "strides": np.asarray([self.time_stride, self.freq_stride]),
            "window_starts": np.asarray(self.window_starts, dtype=np.float64),
            "window_counted": np.asarray(self.window_counted, dtype=bool),
            "speech": np.asarray(self.speech),
            "members": np.asarray(self.members),
            "functionals": np.asarray(self.functionals),
            "cnn_weight": np.asarray(self.cnn_weight),
            "adapted_to": np.asarray(self.adapted_to),
        }
        if self.occlusion is not None:
            arrays["occlusion"] = self.occlusion
            arrays["occlusion_up"] = self.occlusion_up
        write_checked(path, lambda f: np.savez_compressed(f, **arrays))


def mel_band_centers(frontend) -> np.ndarray:
    """Centre frequency (Hz) of each mel filter of a :class:`ser.features.FrontendConfig`."""
    import librosa

    edges = librosa.mel_frequencies(n_mels=frontend.n_mels + 2, fmin=frontend.fmin, fmax=frontend.fmax)
    return edges[1:-1].astype(np.float64)


def upsample(grid: np.ndarray, time_stride: int, freq_stride: int, frames: int, bands: int) -> np.ndarray:
    """Repeat each Conv5 cell over the frames and bands it covers (nearest neighbour).

    Parameters
    ----------
    grid : np.ndarray [shape=(t', f', ...)]
    time_stride, freq_stride : int
        Frames and bands per cell.
    frames, bands : int
        Size of the result (the last cells may cover padding, which is cut off).

    Returns
    -------
    np.ndarray [shape=(frames, bands, ...)]
    """
    up = np.repeat(np.repeat(grid, time_stride, axis=0), freq_stride, axis=1)
    if up.shape[0] < frames or up.shape[1] < bands:
        raise ValueError(
            f"grid {grid.shape} x strides ({time_stride}, {freq_stride}) does not cover {frames}x{bands}"
        )
    return up[:frames, :bands]


def occlusion_map(
    classifier: EmotionClassifier,
    features: np.ndarray,
    k: int,
    time_stride: int,
    freq_stride: int,
    progress: Callable[[int], None] | None = None,
) -> np.ndarray:
    """How far the CNN's logit for class ``k`` falls when each Conv5 cell's input region is hidden.

    The occlusion test of Zeiler & Fergus (ECCV 2014), cell by cell: for each cell of the
    Conv5 grid, the ``time_stride`` frames x ``freq_stride`` bands it covers are replaced by
    the model's training mean of each band (the value its input normalisation maps to zero),
    and the input goes through the whole network again. Unlike ``t_k * h``, which is what the
    pooling sums at each cell, this measures what the output depends on: the conv layers
    before the pooling let each cell see its neighbours' regions, so the two can differ.

    Parameters
    ----------
    classifier : EmotionClassifier
        For an ensemble, each member's fall (with its own training mean) is averaged, as its
        logits are.
    features : np.ndarray [shape=(frames, n_mels)]
        One input as the model takes it (:func:`ser.preprocessor.model_features`).
    k : int
        Class index.
    time_stride, freq_stride : int
        Frames and bands per Conv5 cell.
    progress : callable or None
        Called with the number of occluded copies just run, after each forward pass
        (``rows * cols * members`` in all): a server reports its progress with it.

    Returns
    -------
    np.ndarray [shape=(ceil(frames / time_stride), ceil(n_mels / freq_stride)), dtype=float32]
        Original logit minus the logit with the cell hidden: positive where the region
        supported class ``k``, negative where it spoke against it. One forward pass per cell
        (batched by :data:`OCCLUSION_BATCH`).
    """
    backend, name = classifier.backend, classifier.path
    frames, n_mels = features.shape
    rows, cols = -(-frames // time_stride), -(-n_mels // freq_stride)
    x, m = pad_batch([features], multiple=classifier.time_stride)
    cells = [(i, j) for i in range(rows) for j in range(cols)]
    fall = np.zeros(len(cells), dtype=np.float64)
    for member in range(backend.n_members):
        fill = backend.occlusion_fill(member)
        base = float(np.asarray(backend.member_logits(member, x, m))[0, k])
        for a in range(0, len(cells), OCCLUSION_BATCH):
            chunk = cells[a : a + OCCLUSION_BATCH]
            xs = np.repeat(x, len(chunk), axis=0)
            for n, (i, j) in enumerate(chunk):
                bands = slice(j * freq_stride, (j + 1) * freq_stride)
                xs[n, i * time_stride : min((i + 1) * time_stride, frames), bands] = fill[bands]
            out = backend.member_logits(member, xs, np.repeat(m, len(chunk), axis=0))
            fall[a : a + len(chunk)] += base - np.asarray(out, dtype=np.float64)[:, k]
            if progress is not None:
                progress(len(chunk))
    if not np.all(np.isfinite(fall)):
        raise ModelError(f"{name}: the model produced NaN or infinite outputs; is the file corrupted?")
    return (fall / backend.n_members).reshape(rows, cols).astype(np.float32)


def compute_attention(
    classifier: EmotionClassifier,
    audio,
    sample_rate: int | None = None,
    *,
    class_name: str | None = None,
    start: float | None = None,
    end: float | None = None,
    occlusion: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> AttentionMaps:
    """Attention maps of a file or waveform (or of a time range of it).

    Parameters
    ----------
    classifier : EmotionClassifier
    audio : str, PathLike or np.ndarray [shape=(n,) or (n, channels)]
    sample_rate : int or None
        Rate of an array in Hz (required for arrays).
    class_name : str or None
        Class to explain; default the predicted one.
    start, end : float or None
        Range in seconds (default: the whole input, at most :data:`MAX_ATTENTION_DURATION` s).
    occlusion : bool
        Also compute :func:`occlusion_map` for the explained class (one forward pass per
        Conv5 cell; a long range's windows each on their own, as their maps are).
    progress : callable or None
        With ``occlusion``, called as ``progress(done, total)`` with the occluded copies run
        so far and in all, after each forward pass.

    Returns
    -------
    AttentionMaps

    Raises
    ------
    ConfigError
        Unknown class, bad range, or a range longer than :data:`MAX_ATTENTION_DURATION`.
    AudioError
        Unreadable or unusable audio.
    """
    labels = classifier.labels
    if class_name is not None and class_name not in labels:
        raise ConfigError(f"unknown class {class_name!r}; this model knows {', '.join(labels)}")
    source = audio_source(audio, sample_rate, classifier.sample_rate)
    t0, t1 = check_range(start, end, source.duration, source.label)
    y, t0, t1 = source.read_range(t0, t1)
    if is_silent(y):
        # as classify does: no picture of a guess about silence
        raise silent_error(source.name, None if start is None and end is None else (t0, t1))
    pieces = _pieces(classifier, y)
    run = _run_pieces(classifier, pieces, t0, t1)
    if len(pieces) == 1:
        prediction = classifier.predict_whole(y, source.name, logits=run.logits)
    else:
        # The label is the classifier's prediction of the range: overlapping windows of
        # DEFAULT_WINDOW s every DEFAULT_HOP s, those without speech not voting. The maps come
        # from consecutive windows, so that every frame is drawn once.
        prediction = classifier.predict_windows([y], source.name, DEFAULT_WINDOW, DEFAULT_HOP)
    explained = class_name or prediction.label
    hidden = None
    if occlusion:
        k = labels.index(explained)
        st, sf_ = classifier.time_stride, classifier.freq_stride
        step = _progress_counter(progress, run.inputs, classifier)
        hidden = np.concatenate([occlusion_map(classifier, f, k, st, sf_, step) for f in run.inputs])
    window_starts = [run.t0 + a / classifier.sample_rate for a, _ in pieces]
    return _assemble(classifier, run, prediction, explained, hidden, window_starts)


def _progress_counter(progress, inputs: list, classifier: EmotionClassifier):
    """The per-pass callback of :func:`occlusion_map` that reports ``progress(done, total)``
    over all ``inputs`` (None without ``progress``)."""
    if progress is None:
        return None
    st, sf_ = classifier.time_stride, classifier.freq_stride
    cells = sum(-(-f.shape[0] // st) * -(-f.shape[1] // sf_) for f in inputs)
    total, done = cells * classifier.backend.n_members, [0]

    def step(n: int) -> None:
        done[0] += n
        progress(done[0], total)

    return step


def class_maps(
    top_down: np.ndarray, bottom_up: np.ndarray, k: int, members: int
) -> tuple[np.ndarray, np.ndarray]:
    """The top-down map of class ``k`` and its product with the bottom-up map, on the Conv5 grid.

    Parameters
    ----------
    top_down : np.ndarray [shape=(t', f', n_classes * rank)]
        As :attr:`AttentionMaps.top_down`.
    bottom_up : np.ndarray [shape=(t', f', rank)]
    k : int
        Class index.
    members : int
        Models of the ensemble (both maps are means over them).

    Returns
    -------
    top_down_k : np.ndarray [shape=(t', f', rank)]
        The class's channels (not divided by ``members``).
    product : np.ndarray [shape=(t', f'), dtype=float32]
        ``sum_r t_{k,r} * h_r / members`` (:attr:`AttentionMaps.product`).
    """
    rank = bottom_up.shape[-1]
    td_k = top_down[..., k * rank : (k + 1) * rank]
    return td_k, ((td_k * bottom_up).sum(axis=-1) / members).astype(np.float32)


def _pieces(classifier: EmotionClassifier, y: np.ndarray) -> list[tuple[int, np.ndarray]]:
    """``(first sample, samples)`` of the whole range, or of consecutive windows of a whole
    number of Conv5 cells (about :data:`ser.windows.DEFAULT_WINDOW` s each)."""
    sr = classifier.sample_rate
    if y.size <= WHOLE_MAX_DURATION * sr:
        return [(0, y)]
    cell = classifier.frontend.hop_length * classifier.time_stride
    step = max(1, int(round(DEFAULT_WINDOW * sr / cell))) * cell
    bounds = consecutive_bounds(y.size, step)
    return [(a, y[a:b]) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


@dataclass
class _Run:
    """The pieces' spectrograms and maps, in time order, and the range they cover."""

    t0: float
    t1: float
    spectra: list = field(default_factory=list)
    top_down: list = field(default_factory=list)
    bottom_up: list = field(default_factory=list)
    voiced: list = field(default_factory=list)
    inputs: list = field(default_factory=list)
    logits: np.ndarray | None = None  # of a single piece


def _piece_features(classifier: EmotionClassifier, w: np.ndarray, one: bool, last: bool, run: _Run):
    """The model input of one piece and the spectrogram drawn for it.

    A whole utterance (``one``) is trimmed of leading/trailing silence, as in training and in
    classify; the time axis of ``run`` then runs from the first to the last kept frame. A
    window of ``n`` samples that is not the ``last`` has ``n // hop`` frames, not
    ``1 + n // hop``.
    """
    hop, sr = classifier.frontend.hop_length, classifier.sample_rate
    if one:
        raw = logmel(w, classifier.frontend)
        a, b = trim_bounds(raw, classifier.frontend.trim_db)
        run.t0 += a * hop / sr
        run.t1 = min(run.t1, run.t0 + (b - a) * hop / sr)
        return model_features(classifier, w), raw[a:b]
    f = model_features(classifier, w, trim=False)
    s = logmel(w, classifier.frontend) if classifier.standardizes_input else f
    if not last:
        f, s = f[: w.size // hop], s[: w.size // hop]
    return f, s


def _run_pieces(classifier: EmotionClassifier, pieces: list, t0: float, t1: float) -> _Run:
    """Run the pieces through the attention sub-model, :data:`ser.windows.BATCH_WINDOWS` at a time."""
    run = _Run(t0, t1)
    st = classifier.time_stride
    for i in range(0, len(pieces), BATCH_WINDOWS):
        batch = pieces[i : i + BATCH_WINDOWS]
        feats, specs = [], []
        for j, (_, w) in enumerate(batch):
            f, s = _piece_features(classifier, w, len(pieces) == 1, i + j == len(pieces) - 1, run)
            feats.append(f)
            specs.append(s)
        run.inputs.extend(feats)
        logits, top_down, bottom_up = classifier.head_maps(feats)
        for f, s, td, bu in zip(feats, specs, top_down, bottom_up, strict=True):
            cells = -(-f.shape[0] // st)
            run.spectra.append(s)
            run.top_down.append(td[:cells])
            run.bottom_up.append(bu[:cells])
        if len(pieces) == 1:
            run.logits = logits
        run.voiced.extend(voiced_fraction(w, classifier.sample_rate) for _, w in batch)
    return run


def _assemble(
    classifier: EmotionClassifier,
    run: _Run,
    prediction: Prediction,
    explained: str,
    hidden: np.ndarray | None,
    window_starts: list,
) -> AttentionMaps:
    """The :class:`AttentionMaps` of a run of pieces and the range's prediction."""
    labels = classifier.labels
    k = labels.index(explained)
    spectrogram = np.concatenate(run.spectra).astype(np.float32)
    top_down = np.concatenate(run.top_down).astype(np.float32)
    bottom_up = np.concatenate(run.bottom_up).astype(np.float32)
    members = classifier.n_members
    td_k, product = class_maps(top_down, bottom_up, k, members)
    frames, n_mels = spectrogram.shape
    st, sf_ = classifier.time_stride, classifier.freq_stride
    hop, sr = classifier.frontend.hop_length, classifier.sample_rate
    return AttentionMaps(
        spectrogram=spectrogram,
        times=(run.t0 + np.arange(frames) * hop / sr).astype(np.float64),
        freqs=mel_band_centers(classifier.frontend),
        bottom_up=bottom_up,
        top_down=top_down,
        product=product.astype(np.float32),
        bottom_up_up=upsample(bottom_up.sum(axis=-1) / members, st, sf_, frames, n_mels),
        top_down_up=upsample(td_k.sum(axis=-1) / members, st, sf_, frames, n_mels),
        product_up=upsample(product, st, sf_, frames, n_mels).astype(np.float32),
        labels=list(labels),
        label=prediction.label,
        probability=prediction.probability,
        explained_class=explained,
        scores=dict(prediction.scores),
        file=prediction.file,
        start=run.t0,
        end=run.t1,
        head=classifier.head,
        bottom_up_mode=classifier.bottom_up_mode,
        time_stride=st,
        freq_stride=sf_,
        window_starts=window_starts,
        window_counted=[bool(c) for c in counted_windows(run.voiced)],
        speech=bool(prediction.speech),
        members=members,
        functionals=classifier.functionals is not None,
        cnn_weight=classifier.cnn_weight,
        adapted_to=classifier.adapted_to,
        occlusion=hidden,
        occlusion_up=None if hidden is None else upsample(hidden, st, sf_, frames, n_mels),
    )


def check_range(start, end, duration: float, name: str) -> tuple[float, float]:
    """Validate a ``start``/``end`` range (seconds) against the input's duration."""
    for key, value in (("start", start), ("end", end)):
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)
        ):
            raise ConfigError(f"{key} must be a number of seconds. Received: {key}={value!r}")
    t0 = 0.0 if start is None else float(start)
    t1 = duration if end is None else min(float(end), duration)
    if t0 < 0:
        raise ConfigError(f"start must be >= 0 s. Received: start={start}")
    if t0 >= duration:
        raise ConfigError(f"{name}: start {t0:g} s is past the end of the audio ({duration:.2f} s)")
    if end is not None and float(end) <= t0:
        raise ConfigError(f"end must be after start. Received: start={t0:g}, end={end:g}")
    if t1 - t0 < MIN_DURATION - 1e-9:  # 4.1 - 4.0 is 0.0999...: a range of 0.1 s as typed is enough
        if start is None and end is None:  # the whole input: as classify says it
            raise AudioError(
                f"{name}: too short ({duration * 1000:.0f} ms); expected at least {MIN_DURATION * 1000:.0f} ms"
            )
        raise ConfigError(
            f"{name}: range {t0:g}-{t1:g} s is shorter than {MIN_DURATION} s; expected a range of at "
            f"least {MIN_DURATION} s"
        )
    if t1 - t0 > MAX_ATTENTION_DURATION:
        hint = "" if start is not None or end is not None else f" (the audio is {duration:.0f} s long)"
        raise ConfigError(
            f"{name}: a figure shows at most {MAX_ATTENTION_DURATION:.0f} s{hint}; choose a range with "
            f"--start and --end (start/end), e.g. --start {t0:g} --end {t0 + 60:g}"
        )
    return t0, t1
