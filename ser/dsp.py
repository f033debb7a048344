"""The signal processing of the features, in numpy alone.

One home for the short-time analysis behind :func:`ser.features.logmel`,
:func:`ser.features.voiced_fraction` and :func:`ser.functionals.utterance_functionals`, used
by training and inference alike, so their features cannot drift apart. Each function follows
the librosa (0.11) or SciPy function named in its docstring, with the same conventions
(centred frames, zero padding, periodic Hann window, Slaney mel scale, the same dtypes), and
``tests/test_dsp.py`` checks it against that function. Importing it costs nothing beyond
numpy: classifying with an export never loads librosa, numba or scipy.

Arrays of frames are laid out like librosa's: ``(bins, frames)`` for spectra.
"""

from __future__ import annotations

import functools

import numpy as np

#: Frames of the STFT computed at once, to bound the float64 working memory of long audio.
_STFT_BLOCK = 2048
#: Samples per block of :func:`sosfilt` (see there).
_FILTER_BLOCK = 128


def frame(y: np.ndarray, frame_length: int, hop_length: int) -> np.ndarray:
    """Overlapping frames of ``y`` (a view, no copy): row ``i`` is ``y[i*hop : i*hop + frame_length]``.

    Returns ``np.ndarray [shape=(1 + (n - frame_length) // hop_length, frame_length)]``;
    ``y`` must hold at least ``frame_length`` samples.
    """
    return np.lib.stride_tricks.sliding_window_view(y, frame_length)[::hop_length]


@functools.lru_cache(maxsize=16)
def hann(win_length: int, n_fft: int) -> np.ndarray:
    """The periodic Hann window of ``win_length`` samples centred in ``n_fft`` zeros, as
    ``librosa.stft`` builds it (``scipy.signal.get_window("hann", win_length, fftbins=True)``
    then ``librosa.util.pad_center``). Returns float64 ``(n_fft,)``, read-only."""
    fac = np.linspace(-np.pi, np.pi, win_length + 1)[:-1]
    window = 0.5 + 0.5 * np.cos(fac)
    left = (n_fft - win_length) // 2
    window = np.pad(window, (left, n_fft - win_length - left))
    window.flags.writeable = False
    return window


def stft(y: np.ndarray, n_fft: int, hop_length: int, win_length: int | None = None) -> np.ndarray:
    """Short-time Fourier transform as ``librosa.stft(y, n_fft=..., hop_length=...,
    win_length=...)`` computes it: periodic Hann window, frames centred on ``t * hop_length``
    (the signal padded with ``n_fft // 2`` zeros at each end), float64 FFTs.

    Parameters
    ----------
    y : np.ndarray [shape=(n,)]
    n_fft, hop_length : int
    win_length : int or None
        Window length (<= ``n_fft``); ``None`` for ``n_fft``.

    Returns
    -------
    np.ndarray [shape=(1 + n_fft // 2, 1 + n // hop_length), dtype=complex64]
    """
    y = np.pad(np.asarray(y), n_fft // 2)
    frames = frame(y, n_fft, hop_length)
    window = hann(win_length or n_fft, n_fft)
    out = np.empty((frames.shape[0], 1 + n_fft // 2), dtype=np.complex64)
    for start in range(0, frames.shape[0], _STFT_BLOCK):
        block = frames[start : start + _STFT_BLOCK]
        out[start : start + _STFT_BLOCK] = np.fft.rfft(window * block, axis=-1)
    return out.T


def fft_frequencies(sample_rate: float, n_fft: int) -> np.ndarray:
    """Centre frequency (Hz) of each STFT bin, ``(1 + n_fft // 2,)`` (``librosa.fft_frequencies``)."""
    return np.fft.rfftfreq(n=n_fft, d=1.0 / sample_rate)


_F_SP = 200.0 / 3  # Slaney mel scale: linear (this many Hz per mel) below 1 kHz, log above
_MIN_LOG_HZ = 1000.0
_MIN_LOG_MEL = _MIN_LOG_HZ / _F_SP
_LOGSTEP = np.log(6.4) / 27.0


def hz_to_mel(frequencies) -> np.ndarray:
    """Hz to Slaney mels (``librosa.hz_to_mel``, ``htk=False``): linear below 1 kHz, log above."""
    frequencies = np.asanyarray(frequencies)
    mels = frequencies / _F_SP
    if frequencies.ndim:
        log_t = frequencies >= _MIN_LOG_HZ
        mels[log_t] = _MIN_LOG_MEL + np.log(frequencies[log_t] / _MIN_LOG_HZ) / _LOGSTEP
    elif frequencies >= _MIN_LOG_HZ:
        mels = _MIN_LOG_MEL + np.log(frequencies / _MIN_LOG_HZ) / _LOGSTEP
    return mels


def mel_to_hz(mels) -> np.ndarray:
    """Slaney mels to Hz (``librosa.mel_to_hz``, ``htk=False``), the inverse of :func:`hz_to_mel`."""
    mels = np.asanyarray(mels)
    freqs = _F_SP * mels
    if mels.ndim:
        log_t = mels >= _MIN_LOG_MEL
        freqs[log_t] = _MIN_LOG_HZ * np.exp(_LOGSTEP * (mels[log_t] - _MIN_LOG_MEL))
    elif mels >= _MIN_LOG_MEL:
        freqs = _MIN_LOG_HZ * np.exp(_LOGSTEP * (mels - _MIN_LOG_MEL))
    return freqs


def mel_frequencies(n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    """``n_mels`` frequencies (Hz) evenly spaced in Slaney mels from ``fmin`` to ``fmax``
    (``librosa.mel_frequencies``)."""
    return mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels))


@functools.lru_cache(maxsize=16)
def mel_filterbank(
    sample_rate: float, n_fft: int, n_mels: int, fmin: float = 0.0, fmax: float | None = None
) -> np.ndarray:
    """Triangular Slaney-normalised mel filters (``librosa.filters.mel`` with its defaults:
    ``htk=False, norm="slaney", dtype=float32``); ``fmax=None`` means ``sample_rate / 2``.

    Returns ``np.ndarray [shape=(n_mels, 1 + n_fft // 2), dtype=float32]``, read-only.
    """
    fmax = sample_rate / 2 if fmax is None else fmax
    weights = np.zeros((n_mels, 1 + n_fft // 2), dtype=np.float32)
    mel_f = mel_frequencies(n_mels + 2, fmin, fmax)
    fdiff = np.diff(mel_f)
    ramps = np.subtract.outer(mel_f, fft_frequencies(sample_rate, n_fft))
    for i in range(n_mels):
        weights[i] = np.maximum(0, np.minimum(-ramps[i] / fdiff[i], ramps[i + 2] / fdiff[i + 1]))
    weights *= 2.0 / (mel_f[2 : n_mels + 2] - mel_f[:n_mels])[:, np.newaxis]
    weights.flags.writeable = False
    return weights


def power_to_db(power: np.ndarray, amin: float = 1e-10, top_db: float = 80.0) -> np.ndarray:
    """``10 log10(max(power, amin))``, floored ``top_db`` under its maximum
    (``librosa.power_to_db`` with ``ref=1.0``). Same shape and float dtype as ``power``."""
    log_spec = 10.0 * np.log10(np.maximum(amin, power))
    return np.maximum(log_spec, log_spec.max() - top_db)


@functools.lru_cache(maxsize=8)
def _dct_matrix(n: int, n_out: int) -> np.ndarray:
    """Rows 0..n_out-1 of the orthonormal DCT-II matrix of size ``n`` (float64)."""
    k = np.arange(n_out)[:, np.newaxis]
    m = np.cos(np.pi * k * (2 * np.arange(n) + 1) / (2 * n)) * np.sqrt(2.0 / n)
    m[0] /= np.sqrt(2.0)
    m.flags.writeable = False
    return m


def mfcc(db: np.ndarray, n_mfcc: int) -> np.ndarray:
    """The first ``n_mfcc`` cepstral coefficients of a log-mel spectrogram ``(n_mels, frames)``:
    its orthonormal DCT-II along the bands (``librosa.feature.mfcc(S=db, n_mfcc=...)``, which
    calls ``scipy.fft.dct(type=2, norm="ortho")``). Returns ``(n_mfcc, frames)``, ``db``'s dtype."""
    return (_dct_matrix(db.shape[0], n_mfcc) @ db).astype(db.dtype, copy=False)


def _unit_sum(magnitude: np.ndarray) -> np.ndarray:
    """Columns divided by their sum; all-zero columns stay zero (``librosa.util.normalize(norm=1)``)."""
    total = np.sum(np.abs(magnitude), axis=0, keepdims=True)
    total[total < np.finfo(magnitude.dtype).tiny] = 1.0
    return magnitude / total


def spectral_centroid(magnitude: np.ndarray, sample_rate: float, n_fft: int) -> np.ndarray:
    """Magnitude-weighted mean frequency (Hz) of each column of ``magnitude`` ``(bins, frames)``;
    0 for a silent frame (``librosa.feature.spectral_centroid(S=...)``). Returns ``(frames,)``."""
    freqs = fft_frequencies(sample_rate, n_fft)[:, np.newaxis]
    return np.sum(freqs * _unit_sum(magnitude), axis=0)


def spectral_flatness(magnitude: np.ndarray, amin: float = 1e-10) -> np.ndarray:
    """Geometric over arithmetic mean of each column's power (``librosa.feature.spectral_flatness(S=...)``).
    Returns ``(frames,)``."""
    power = np.maximum(amin, magnitude**2.0)
    return np.exp(np.mean(np.log(power), axis=0)) / np.mean(power, axis=0)


def spectral_rolloff(
    magnitude: np.ndarray, sample_rate: float, n_fft: int, roll_percent: float = 0.85
) -> np.ndarray:
    """Lowest bin frequency (Hz) under which ``roll_percent`` of each column's magnitude lies
    (``librosa.feature.spectral_rolloff(S=...)``). Returns ``(frames,)``."""
    freqs = fft_frequencies(sample_rate, n_fft)[:, np.newaxis]
    total = np.cumsum(magnitude, axis=0)
    ind = np.where(total < roll_percent * total[-1], np.nan, 1)
    return np.nanmin(ind * freqs, axis=0)


def zero_crossing_rate(
    y: np.ndarray, frame_length: int, hop_length: int, threshold: float = 1e-10
) -> np.ndarray:
    """Fraction of sign changes in each centred frame (``librosa.feature.zero_crossing_rate``:
    the signal edge-padded by ``frame_length // 2``, samples within ``threshold`` of 0 count
    as positive, the first sample of a frame is never a crossing). Returns ``(frames,)``."""
    y = np.pad(y, frame_length // 2, mode="edge")
    frames = frame(y, frame_length, hop_length)
    negative = np.signbit(np.where(np.abs(frames) <= threshold, 0, frames))
    return np.count_nonzero(negative[:, 1:] != negative[:, :-1], axis=1) / frame_length


def _next_fast_len(n: int) -> int:
    """Smallest 5-smooth integer >= n (``scipy.fft.next_fast_len(n, real=True)``)."""
    best = 1 << max(0, (n - 1).bit_length())
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            m = p35
            while m < n:
                m *= 2
            best = min(best, m)
            p35 *= 3
        p5 *= 5
    return best


def autocorrelate(frames: np.ndarray, max_size: int) -> np.ndarray:
    """Autocorrelation of each row of ``frames`` at lags ``0 .. max_size - 1``, through a
    zero-padded FFT (``librosa.autocorrelate(frames, max_size=..., axis=-1)``).
    Returns ``(rows, max_size)`` in ``frames``' float dtype."""
    n_pad = _next_fast_len(2 * frames.shape[-1] - 1)
    spectrum = np.fft.rfft(frames, n=n_pad, axis=-1)
    power = np.square(spectrum.real) + np.square(spectrum.imag)
    return np.fft.irfft(power, n=n_pad, axis=-1)[..., :max_size]


def _cumulative_mean_normalized_difference(
    frames: np.ndarray, min_period: int, max_period: int
) -> np.ndarray:
    """YIN's d'(tau) (equation 8 of de Cheveigne and Kawahara, 2002) for tau in
    ``[min_period, max_period]`` of each row of ``frames``: ``(rows, periods)``, float64 (the
    sums in ``frames``' dtype, as librosa's)."""
    acf = autocorrelate(frames, max_period + 1)
    energy = np.cumsum(np.square(frames), axis=1)
    diff = np.empty((frames.shape[0], max_period + 1), dtype=energy.dtype)
    diff[:, 0] = 0
    diff[:, 1:] = 2 * (acf[:, :1] - acf[:, 1:]) - energy[:, :max_period]
    cumulative_mean = np.cumsum(diff[:, 1:], axis=1) / np.arange(1, max_period + 1)
    denominator = cumulative_mean[:, min_period - 1 : max_period]
    return diff[:, min_period:] / (denominator + np.finfo(denominator.dtype).tiny)


def _parabolic_shifts(x: np.ndarray) -> np.ndarray:
    """Offset (in bins, within +-1) of the vertex of the parabola through each point of the
    rows of ``x`` and its two neighbours; 0 at the ends or where the vertex lies further."""
    a = x[:, 2:] + x[:, :-2] - 2 * x[:, 1:-1]
    b = (x[:, 2:] - x[:, :-2]) / 2
    shifts = np.zeros_like(x)
    with np.errstate(divide="ignore", invalid="ignore"):
        shifts[:, 1:-1] = np.where(np.abs(b) >= np.abs(a), 0, -b / a)
    return shifts


def yin(
    y: np.ndarray,
    fmin: float,
    fmax: float,
    sample_rate: float,
    frame_length: int,
    hop_length: int,
    trough_threshold: float = 0.1,
) -> np.ndarray:
    """F0 (Hz) of each centred frame by YIN, as ``librosa.yin(y, fmin=..., fmax=..., sr=...,
    frame_length=..., hop_length=...)`` computes it: the first trough of d' under
    ``trough_threshold`` (else its global minimum), refined by parabolic interpolation. Where
    there is no period in range the result sits at a bound of ``[fmin, fmax]``.

    Parameters
    ----------
    y : np.ndarray [shape=(n,)]
    fmin, fmax : float
        Search range in Hz.
    sample_rate : float
    frame_length, hop_length : int
        Analysis frame and hop in samples; frames are centred (zero padding).

    Returns
    -------
    np.ndarray [shape=(1 + n // hop_length,), dtype=float64]
    """
    frames = frame(np.pad(y, frame_length // 2), frame_length, hop_length)
    min_period = int(np.floor(sample_rate / fmax))
    max_period = min(int(np.ceil(sample_rate / fmin)), frame_length - 1)
    d = _cumulative_mean_normalized_difference(frames, min_period, max_period)
    shifts = _parabolic_shifts(d)
    trough = np.zeros(d.shape, dtype=bool)
    trough[:, 1:-1] = (d[:, 1:-1] < d[:, :-2]) & (d[:, 1:-1] <= d[:, 2:])
    trough[:, 0] = d[:, 0] < d[:, 1]
    trough[:, -1] = d[:, -1] < d[:, -2]
    below = trough & (d < trough_threshold)
    period = np.where(below.any(axis=1), np.argmax(below, axis=1), np.argmin(d, axis=1))
    shift = np.take_along_axis(shifts, period[:, np.newaxis], axis=1)[:, 0]
    return sample_rate / (min_period + period + shift)


def butter_bandpass(order: int, low: float, high: float, sample_rate: float) -> np.ndarray:
    """Digital Butterworth band-pass in second-order sections, as
    ``scipy.signal.butter(order, (low, high), btype="band", fs=sample_rate, output="sos")``
    designs it: the analog prototype pre-warped, moved to the band, mapped by the bilinear
    transform, and paired into sections with SciPy's ``"nearest"`` rule (the poles nearest
    the unit circle last, each pole pair with the nearest two remaining zeros).

    Returns ``np.ndarray [shape=(order, 6)]``: rows ``(b0, b1, b2, 1, a1, a2)``.
    """
    fs = 2.0  # SciPy designs at fs=2 after normalising the band edges
    warped = 2 * fs * np.tan(np.pi * (2 * np.array([low, high]) / sample_rate) / fs)
    bw, wo = warped[1] - warped[0], np.sqrt(warped[0] * warped[1])
    p_lp = (-np.exp(1j * np.pi * np.arange(-order + 1, order, 2) / (2 * order))) * bw / 2
    root = np.sqrt(p_lp**2 - wo**2)
    p = np.concatenate((p_lp + root, p_lp - root))
    k = bw**order * np.real((2 * fs) ** order / np.prod(2 * fs - p))
    p = (2 * fs + p) / (2 * fs - p)
    zeros = [1.0] * order + [-1.0] * order
    upper = p[p.imag > 0]
    upper = upper[np.lexsort((np.abs(upper.imag), upper.real))]
    sections = []
    while upper.size:
        i = int(np.argmin(np.abs(1 - np.abs(upper))))
        pole, upper = upper[i], np.delete(upper, i)
        zero = min(zeros, key=lambda z: abs(z - pole))  # both zeros of a section are equal
        zeros.remove(zero)
        zeros.remove(zero)
        sections.append(([1.0, -2 * zero, zero * zero], [1.0, -2 * pole.real, pole.real**2 + pole.imag**2]))
    sos = np.array([b + a for b, a in sections[::-1]])
    sos[0, :3] *= k
    return sos


@functools.lru_cache(maxsize=16)
def _block_operators(section: tuple) -> tuple:
    """For one biquad (``(b0, b1, b2, 1, a1, a2)``) in transposed direct form II: the
    matrices that run it on a block of :data:`_FILTER_BLOCK` samples from a given state.
    Returns ``(T, O, R, A_L)``: block output ``y = T x + O s``, next state ``A_L s + R x``."""
    b0, b1, b2, _, a1, a2 = section
    a = np.array([[-a1, 1.0], [-a2, 0.0]])
    b = np.array([b1 - a1 * b0, b2 - a2 * b0])
    size = _FILTER_BLOCK
    powers = [np.eye(2)]
    for _ in range(size):
        powers.append(a @ powers[-1])
    impulse = np.array([b0] + [powers[i][0] @ b for i in range(size - 1)])
    lags = np.subtract.outer(np.arange(size), np.arange(size))
    t = np.where(lags >= 0, impulse[np.clip(lags, 0, None)], 0.0)
    o = np.array([powers[i][0] for i in range(size)])
    r = np.array([powers[size - 1 - m] @ b for m in range(size)])
    return t, o, r, powers[size]


def sosfilt(sos: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``x`` filtered by the cascade of second-order sections ``sos`` from rest, as
    ``scipy.signal.sosfilt(sos, x)`` (float64): each section is run a block of
    :data:`_FILTER_BLOCK` samples at a time (the block's response to its input as one
    matrix product, plus its response to the state carried from the previous block), so
    the loop is over blocks, not samples. Returns float64 ``(n,)``."""
    y = np.asarray(x, dtype=np.float64)
    n = y.size
    blocks = np.pad(y, (0, -n % _FILTER_BLOCK)).reshape(-1, _FILTER_BLOCK)
    for section in np.asarray(sos, dtype=np.float64):
        t, o, r, a_l = _block_operators(tuple(section.tolist()))
        pushed = (blocks @ r).tolist()
        states = np.zeros((len(blocks), 2))
        s0 = s1 = 0.0
        (m00, m01), (m10, m11) = a_l.tolist()
        for j, (u0, u1) in enumerate(pushed[:-1]):
            s0, s1 = m00 * s0 + m01 * s1 + u0, m10 * s0 + m11 * s1 + u1
            states[j + 1] = s0, s1
        blocks = blocks @ t.T + states @ o.T
    return blocks.reshape(-1)[:n]
