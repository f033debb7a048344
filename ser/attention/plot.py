"""Pictures of attention maps: the spectrogram with the maps beneath it, to a file."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ser import dsp
from ser.attention.maps import AttentionMaps
from ser.attention.output import figure_format, write_checked

#: Candidate frequency ticks of the figure, in Hz (those on the axis and not crowded are used).
FREQ_TICKS_HZ = (100, 200, 300, 500, 1000, 2000, 3000, 4000, 6000, 8000, 12000, 16000)

#: The figure's t·h colours span +-this percentile of |t·h| over the Conv5 cells; stronger
#: cells get the end colours, so one strong cell does not wash out the rest.
PRODUCT_COLOR_PERCENTILE = 98.0


def _freq_ticks(freqs: np.ndarray, min_gap: float = 1 / 12) -> tuple[list, list]:
    """Hz ticks and their positions on a mel-band axis (band ``i`` at ``i``), not crowded.

    Band centres are equally spaced in mel, so a frequency's position is its mel value in
    units of that spacing; ticks closer than ``min_gap`` of the axis are dropped, from the top.
    """
    mels = dsp.hz_to_mel(np.asarray(freqs, dtype=np.float64))
    step = (mels[-1] - mels[0]) / max(len(freqs) - 1, 1)
    chosen, positions = [], []
    for f in sorted(FREQ_TICKS_HZ, reverse=True):
        pos = float((dsp.hz_to_mel(float(f)) - mels[0]) / step)
        if -0.5 <= pos <= len(freqs) - 0.5 and all(abs(pos - p) >= min_gap * len(freqs) for p in positions):
            chosen.append(f)
            positions.append(pos)
    return chosen[::-1], positions[::-1]


def _symmetric_limit(a: np.ndarray, percentile: float = 100.0) -> float:
    """Colour limit of a map drawn from ``-limit`` to ``+limit`` (zero in the middle): the
    ``percentile`` of ``|a|`` (its maximum at 100), the maximum where that is 0, 1.0 for an
    all-zero or empty map."""
    magnitude = np.abs(np.asarray(a, dtype=np.float64)).ravel()
    if not magnitude.size:
        return 1.0
    limit = float(np.percentile(magnitude, percentile))
    if limit <= 0:
        limit = float(magnitude.max())
    return limit if limit > 0 else 1.0


def _extend(a: np.ndarray, limit: float) -> str:
    """The colour bar's ``extend`` for a map drawn within ``+-limit``: the ends ``a`` goes beyond."""
    below, above = bool(np.any(a < -limit)), bool(np.any(a > limit))
    return {(False, False): "neither", (True, False): "min", (False, True): "max"}.get((below, above), "both")


def figure_title(maps: AttentionMaps) -> str:
    """The default title of :func:`plot_attention`: the file, the predicted class and its
    probability (and the explained class if different), then notes: an ensemble, the speaker
    adaptation, the CNN's weight beside the functionals, the range and windows."""
    name = Path(maps.file).name if maps.file else "audio"
    title = f"{name}: predicted {maps.label} ({maps.probability:.2f})"
    if maps.explained_class != maps.label:
        title += f"; explaining {maps.explained_class} ({maps.scores[maps.explained_class]:.2f})"
    notes = []
    if not maps.speech:
        notes.append("no voiced speech found: the label is a guess")
    if maps.members > 1:
        notes.append(f"ensemble of {maps.members} models, maps averaged over them")
    if maps.adapted_to:  # scores and maps are those of the adapted model
        notes.append(f"adapted to the speaker ({maps.adapted_to} recordings)")
    if maps.functionals and maps.cnn_weight > 0:
        notes.append(f"CNN weight {maps.cnn_weight:.2f} beside the functionals; the maps are the CNN's")
    elif maps.functionals:
        notes.append("decided by the functionals alone (CNN weight 0); the maps show what the CNN heard")
    if len(maps.window_starts) > 1:
        left = sum(not c for c in maps.window_counted)
        notes.append(
            f"{maps.start:.1f}-{maps.end:.1f} s in {len(maps.window_starts)} windows (dashed lines)"
            + (f", {left} without speech greyed out (not voting)" if left else "")
        )
    elif maps.start > 0:
        notes.append(f"{maps.start:.1f}-{maps.end:.1f} s")
    lines = notes[:1]
    for note in notes[1:]:  # as many notes to a line as fit in about 100 characters
        if len(lines[-1]) + 2 + len(note) <= 100:
            lines[-1] += f"; {note}"
        else:
            lines.append(note)
    return "\n".join([title, *lines])


def _overlay(
    fig, ax, spec: np.ndarray, grid: np.ndarray, grid_up: np.ndarray, label: str, image_kw: dict
) -> None:
    """Draw a signed map over the spectrogram in grey: red for, blue against, opacity growing
    with strength up to +-the :data:`PRODUCT_COLOR_PERCENTILE` percentile of ``|grid|``."""
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    ax.imshow(spec.T, cmap="Greys", **image_kw)
    lim = _symmetric_limit(grid, PRODUCT_COLOR_PERCENTILE)
    norm = Normalize(-lim, lim, clip=True)
    cmap = colormaps["RdBu_r"]
    rgba = cmap(norm(grid_up.T))
    rgba[..., 3] = 0.85 * np.minimum(np.abs(grid_up.T) / lim, 1.0)
    ax.imshow(rgba, **image_kw)
    fig.colorbar(
        ScalarMappable(norm=norm, cmap=cmap), ax=ax, pad=0.01, label=label, extend=_extend(grid_up, lim)
    )


def _bottom_up_panel(fig, ax, maps: AttentionMaps, image_kw: dict) -> None:
    """The bottom-up map ``h``: constant for the pooling heads, else its values."""
    bu = maps.bottom_up_up
    if maps.bottom_up_mode == "constant":
        im = ax.imshow(bu.T, cmap="Greys", vmin=0.0, vmax=2.0, **image_kw)
        text = f"bottom-up h = 1 everywhere ({maps.head}-pooling head: no attention)"
        ax.text(
            0.5, 0.5, "h = 1", transform=ax.transAxes, ha="center", va="center", fontsize=14, color="white"
        )
    elif maps.bottom_up_mode == "softmax":
        im = ax.imshow(bu.T, cmap="viridis", vmin=0.0, **image_kw)
        text = "bottom-up attention h (class-agnostic; softmax over positions, per window)"
    else:
        lim = _symmetric_limit(bu)
        im = ax.imshow(bu.T, cmap="PuOr_r", vmin=-lim, vmax=lim, **image_kw)
        text = "bottom-up attention h (class-agnostic; its sign matters only in t·h)"
    fig.colorbar(im, ax=ax, pad=0.01, label="h")
    ax.set_title(text, loc="left", fontsize=10)


def _class_panels(fig, axes, maps: AttentionMaps, image_kw: dict) -> None:
    """The explained class's panels: its top-down map, ``t·h`` over the spectrogram (a robust
    colour limit, so one strong cell does not wash out the rest) and, where computed, the
    occlusion map on the same grid."""
    explained = maps.explained_class
    k = maps.labels.index(explained)
    ax = axes[2]
    lim = _symmetric_limit(maps.top_down_up)
    im = ax.imshow(maps.top_down_up.T, cmap="RdBu_r", vmin=-lim, vmax=lim, **image_kw)
    fig.colorbar(im, ax=ax, pad=0.01, label=f"t[{explained}]")
    what = "class activation map" if maps.head != "attention" else "top-down attention"
    ax.set_title(f"{what} t for '{explained}' (class {k})", loc="left", fontsize=10)

    ax = axes[3]
    _overlay(fig, ax, maps.spectrogram, maps.product, maps.product_up, "t·h", image_kw)
    if maps.head == "max":
        text = f"class activation map for '{explained}' (red for, blue against; max head: logit uses peaks)"
    else:
        how = "sum" if maps.bottom_up_mode == "softmax" else "mean"
        text = f"t·h: evidence for '{explained}' (red for, blue against; the logit is its {how})"
    ax.set_title(text, loc="left", fontsize=10)

    if maps.occlusion is not None:
        ax = axes[4]
        _overlay(fig, ax, maps.spectrogram, maps.occlusion, maps.occlusion_up, "logit fall", image_kw)
        agreement = maps.agreement
        agrees = "" if agreement is None else f"; rank correlation with t·h {agreement:.2f}"
        ax.set_title(
            f"occlusion: fall of the CNN's '{explained}' logit with the region set to the training mean{agrees}",
            loc="left",
            fontsize=10,
        )


def _mark_windows(axes, maps: AttentionMaps) -> None:
    """Frequency ticks on every panel; dashed lines between stitched windows, and windows
    without speech (which classify leaves out of the label) greyed out."""
    ticks, positions = _freq_ticks(maps.freqs)
    for ax in axes:
        ax.set_yticks(positions)
        ax.set_yticklabels([f"{f / 1000:g}k" if f >= 1000 else f"{f:g}" for f in ticks])
        ax.set_ylabel("frequency (Hz)")
        for t in maps.window_starts[1:]:
            ax.axvline(t, color="white" if ax is axes[0] else "0.4", lw=0.6, ls="--", alpha=0.7)
    bounds = [*maps.window_starts, maps.end]
    for i in [i for i, c in enumerate(maps.window_counted) if not c]:
        for ax in axes[1:]:
            ax.axvspan(bounds[i], bounds[i + 1], color="0.5", alpha=0.35, lw=0)


def plot_attention(maps: AttentionMaps, out_png: str | os.PathLike, title: str | None = None) -> None:
    """Draw the spectrogram and the attention maps, one above the other, to a picture file.

    Four panels share the time axis: the log-mel spectrogram (frequency ticks in Hz on the
    mel-spaced axis), the bottom-up map, the top-down map of the explained class, and their
    product over the spectrogram (red: evidence for the class, blue: against; opacity grows
    with strength up to +-the :data:`PRODUCT_COLOR_PERCENTILE` percentile of ``|t·h|``, beyond
    which cells get the end colours, shown by the colour bar's pointed ends). Maps computed
    with ``occlusion=True`` get a fifth panel, drawn the same way: the occlusion map, with its
    rank correlation with ``t·h`` (:attr:`AttentionMaps.agreement`) in its title. The file is
    written atomically, as PNG, PDF, SVG or JPEG by its suffix
    (:func:`ser.attention.output.figure_format`).

    Parameters
    ----------
    maps : AttentionMaps
    out_png : str or PathLike
    title : str or None
        Default: :func:`figure_title`.

    Raises
    ------
    ConfigError
        ``out_png`` cannot be written, or names another picture format.
    """
    from matplotlib.figure import Figure  # no pyplot: no global state, Agg canvas

    spec = maps.spectrogram
    frames, n_mels = spec.shape
    duration = maps.end - maps.start
    half = (maps.times[1] - maps.times[0]) / 2 if frames > 1 else 0.005
    extent = (maps.times[0] - half, maps.times[-1] + half, -0.5, n_mels - 0.5)
    width = float(np.clip(6.0 + 0.5 * duration, 9.0, 22.0))
    panels = 4 if maps.occlusion is None else 5
    fig = Figure(figsize=(width, 2.75 * panels), dpi=110, layout="constrained")
    axes = fig.subplots(panels, 1, sharex=True, sharey=True)
    image_kw = {"origin": "lower", "aspect": "auto", "extent": extent, "interpolation": "nearest"}

    im = axes[0].imshow(spec.T, cmap="magma", **image_kw)
    fig.colorbar(im, ax=axes[0], pad=0.01, label="log mel power")
    axes[0].set_title("log-mel spectrogram", loc="left", fontsize=10)
    _bottom_up_panel(fig, axes[1], maps, image_kw)
    _class_panels(fig, axes, maps, image_kw)
    axes[-1].set_xlabel("time (s)")
    _mark_windows(axes, maps)
    axes[0].set_xlim(extent[0], extent[1])

    fig.suptitle(figure_title(maps) if title is None else title, fontsize=12)
    fmt = figure_format(out_png)
    write_checked(out_png, lambda f: fig.savefig(f, format=fmt))
