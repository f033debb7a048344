"""The JSON that ``ser serve`` answers with: a prediction, and attention maps with their axes."""

from __future__ import annotations

import dataclasses

import numpy as np

from ser.attention.maps import AttentionMaps, class_maps
from ser.classifier import Prediction

#: Significant digits kept of the maps and the spectrogram (relative to each array's largest
#: magnitude): more than a picture can show, a fraction of the bytes.
DIGITS = 4


def prediction_json(prediction: Prediction, name: str) -> dict:
    """The object ``ser classify --json`` prints for a file (:meth:`Prediction.to_dict`),
    the file named ``name``."""
    return dataclasses.replace(prediction, file=name).to_dict()


def rounded(a: np.ndarray, digits: int = DIGITS) -> list:
    """``a`` as nested lists of floats, rounded to ``digits`` significant digits of its
    largest magnitude."""
    a = np.asarray(a, dtype=np.float64)
    peak = float(np.max(np.abs(a))) if a.size else 0.0
    decimals = digits - 1 - int(np.floor(np.log10(peak))) if peak > 0 else 0
    return np.round(a, max(decimals, 0)).tolist()


def attention_json(maps: AttentionMaps, name: str) -> dict:
    """The maps of :func:`ser.attention.maps.compute_attention` for the page and the API.

    Returns
    -------
    dict
        ``file, start, end, label, probability, scores, labels, explained_class, speech,
        head, members, functionals, cnn_weight`` as in :class:`AttentionMaps`;
        ``times`` (frames,) and ``freqs`` (n_mels,): the spectrogram's axes in s and Hz;
        ``spectrogram`` [frames][n_mels] (log-mel); ``time_stride, freq_stride``: frames and
        bands per Conv5 cell; on the Conv5 grid [t'][f']: ``bottom_up`` (``h``),
        ``top_down`` and ``product`` (``t_k``, ``t_k * h``) as ``{class: grid}`` for every
        class (means over an ensemble's members); ``window_starts, window_counted``;
        ``occlusion`` (the explained class's grid, or None) and ``agreement``.
    """
    members = maps.members
    top_down, product = {}, {}
    for k, label in enumerate(maps.labels):
        td_k, product_k = class_maps(maps.top_down, maps.bottom_up, k, members)
        top_down[label] = rounded(td_k.sum(axis=-1) / members)
        product[label] = rounded(product_k)
    return {
        "file": name,
        "start": maps.start,
        "end": maps.end,
        "label": maps.label,
        "probability": maps.probability,
        "scores": dict(maps.scores),
        "labels": list(maps.labels),
        "explained_class": maps.explained_class,
        "speech": maps.speech,
        "head": maps.head,
        "members": members,
        "functionals": maps.functionals,
        "cnn_weight": maps.cnn_weight,
        "times": np.round(maps.times, 4).tolist(),
        "freqs": np.round(maps.freqs, 1).tolist(),
        "spectrogram": rounded(maps.spectrogram),
        "time_stride": maps.time_stride,
        "freq_stride": maps.freq_stride,
        "bottom_up": rounded(maps.bottom_up.sum(axis=-1) / members),
        "top_down": top_down,
        "product": product,
        "window_starts": [float(s) for s in maps.window_starts],
        "window_counted": [bool(c) for c in maps.window_counted],
        "occlusion": None if maps.occlusion is None else rounded(maps.occlusion),
        "agreement": maps.agreement,
    }
