"""``ser attention``: the maps of one file, drawn to a picture (and saved to an ``.npz``)."""

from __future__ import annotations

from ser import interrupts
from ser.attention.maps import compute_attention
from ser.attention.output import check_outputs
from ser.attention.plot import plot_attention
from ser.audio import audio_info
from ser.classifier import NO_SPEECH_NOTE, EmotionClassifier
from ser.errors import AudioError
from ser.io import log
from ser.preprocessor import audio_notes, error_text
from ser.speaker import adapt_to_speaker


def attention_command(
    model_path: str,
    audio_path: str,
    *,
    out: str,
    class_name: str | None = None,
    npz: str | None = None,
    start: float | None = None,
    end: float | None = None,
    same_speaker=None,
    occlusion: bool = False,
) -> int:
    """``ser attention``: draw the maps of one file to a PNG (and save them to an ``.npz``).

    Parameters
    ----------
    same_speaker : list of str or None
        Other recordings of the file's speaker: the model adapts to them and the file itself
        (as ``ser classify --same-speaker`` does) before the maps are computed.
    occlusion : bool
        Add the occlusion map (:func:`ser.attention.maps.occlusion_map`) as a fifth panel and to the ``.npz``.

    Returns
    -------
    int
        0; 1 if the file, or one of ``same_speaker``, cannot be used (unreadable, too short,
        silent, ...): each such file is named on a line of stderr, as ``ser classify`` names
        its files, and the picture is still drawn from the others.

    Raises
    ------
    ConfigError
        A bad ``out`` or ``npz`` (checked first), an unknown class or a bad range.
    ModelError
        The model cannot be loaded.
    """
    check_outputs(out, npz)
    classifier = EmotionClassifier.load(model_path)
    failed = 0
    if same_speaker:
        adaptation = adapt_to_speaker(classifier, [audio_path, *same_speaker])
        for note in adaptation.notes:
            log(note)
        for path, message in adaptation.skipped.items():
            if path != str(audio_path):  # the file itself is reported below
                failed += 1
                log(f"{path}: error: {message}")
    try:
        maps = compute_attention(
            classifier, audio_path, class_name=class_name, start=start, end=end, occlusion=occlusion
        )
    except AudioError as exc:
        log(f"{audio_path}: error: {error_text(str(audio_path), exc)}")
        return 1
    interrupts.check()  # a Ctrl-C during the maps stops before anything is written
    for note in audio_notes(classifier.frontend, audio_path):
        log(note)
    if not maps.speech:
        log(f"note: {audio_path}: {NO_SPEECH_NOTE}")
    if (start is not None or end is not None) and len(maps.window_starts) == 1:
        duration = audio_info(audio_path).duration
        asked = (
            0.0 if start is None else float(start),
            duration if end is None else min(float(end), duration),
        )
        if maps.start > asked[0] + 0.05 or maps.end < asked[1] - 0.05:
            log(
                f"note: leading and trailing silence trimmed, as the model sees it: showing "
                f"{maps.start:.2f}-{maps.end:.2f} s of the {asked[0]:.2f}-{asked[1]:.2f} s asked for"
            )
    plot_attention(maps, out)
    written = f"wrote {out}"
    if npz is not None:
        maps.save_npz(npz)
        written += f" and {npz}"
    explained = "" if maps.explained_class == maps.label else f", explaining {maps.explained_class}"
    print(f"{written} ({audio_path}: {maps.label} {maps.probability:.2f}{explained})")
    return 1 if failed else 0
