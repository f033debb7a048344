"""``--same-speaker``: adapt a loaded classifier to one speaker's recordings.

Used by ``ser classify`` and ``ser attention``: the usable files take part
(:meth:`ser.classifier.EmotionClassifier.set_speaker_reference`), the others are returned to
be reported, and notes say what was done.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ser import preprocessor
from ser.audio import is_silent
from ser.classifier import EmotionClassifier
from ser.constants import MIN_ADAPTATION_FILES
from ser.errors import SerError
from ser.preprocessor import error_text, reference_audio, silent_error

#: A note when the unadapted model hears at least this share of the speaker's recordings as
#: one class (see :func:`one_emotion_note`).
ONE_EMOTION_SHARE = 0.6


@dataclass(frozen=True)
class Adaptation:
    """What :func:`adapt_to_speaker` did.

    Attributes
    ----------
    skipped : dict
        Path -> error message (without the path) of each file that cannot be classified.
    notes : list of str
        Lines for the user, in order.
    """

    skipped: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)


def one_emotion_note(heard: list[str]) -> str | None:
    """A note when the unadapted model heard most of a speaker's recordings as one class.

    Adaptation takes what a speaker's recordings share as their voice; recordings of one
    emotion would have that emotion taken for the voice and erased. Labels are unknown, so
    the unadapted predictions stand in for them.

    Parameters
    ----------
    heard : list of str
        :attr:`ser.classifier.EmotionClassifier.reference_labels`.
    """
    label, count = max(((c, heard.count(c)) for c in set(heard)), key=lambda lc: lc[1])
    if count < ONE_EMOTION_SHARE * len(heard):
        return None
    return (
        f"note: --same-speaker: without adaptation the model hears {count} of {len(heard)} "
        f"recordings as {label}; adaptation assumes several emotions and erases one they all "
        "share: if they are mostly one emotion, run without --same-speaker"
    )


def _adaptation_note(classifier: EmotionClassifier, usable: int, skipped: int, cut: int) -> str:
    """What was adapted, from how many recordings (or too few to adapt to)."""
    blocks = ", ".join(map(str, classifier.adapt_blocks))
    done = []
    if classifier.adapted_files:
        done.append(f"batch-norm statistics of Conv blocks {blocks} re-estimated")
    if classifier.functionals_reference is not None:
        done.append("functionals standardised")
    note = (
        f"note: adapted to this speaker: {' and '.join(done)} from {usable} recordings"
        if done
        else f"note: --same-speaker: {usable} usable recording(s) are too few to adapt "
        f"to (at least {MIN_ADAPTATION_FILES}, of several emotions); using the model without "
        "speaker adaptation"
    )
    if skipped:
        note += f" ({skipped} file(s) that cannot be classified left out)"
    if cut:
        note += f" ({preprocessor.REFERENCE_MAX_SECONDS:.0f} s of each of {cut} longer file(s))"
    return note


def adapt_to_speaker(classifier: EmotionClassifier, audio_paths) -> Adaptation:
    """Adapt ``classifier`` to the usable ones of one speaker's files.

    Files that cannot be classified (unreadable, too short, non-finite, silent) take no part:
    they would spoil the statistics the other files are scored with. A model with nothing to
    adapt (global normalisation, no adapted blocks, no functionals head) reads no file.

    Parameters
    ----------
    classifier : EmotionClassifier
    audio_paths : iterable of str or PathLike
        Repeated paths count once.

    Returns
    -------
    Adaptation
        The files skipped, and notes: what was adapted from how many recordings (or too few
        to adapt to), or that the model has nothing to adapt.
    """
    if not (
        classifier.normalization == "speaker" or classifier.adapt_blocks or classifier.functionals is not None
    ):
        return Adaptation(
            notes=[
                f"note: --same-speaker: {classifier.path} has nothing to adapt to a speaker (no batch-norm "
                "blocks to adapt, no functionals head, no per-speaker normalisation); ignored"
            ]
        )
    usable, skipped, cut = [], {}, 0
    for path in dict.fromkeys(str(p) for p in audio_paths):
        try:
            y, truncated = reference_audio(path, classifier.sample_rate)
            if is_silent(y):
                raise silent_error(path)
            usable.append(y)
            cut += truncated
        except SerError as exc:
            skipped[path] = error_text(path, exc)
    notes = []
    if usable:
        classifier.set_speaker_reference(usable, sample_rate=classifier.sample_rate)
    if len(usable) >= MIN_ADAPTATION_FILES:
        notes.append(one_emotion_note(classifier.reference_labels))
    if classifier.adapt_blocks or classifier.functionals is not None:
        notes.append(_adaptation_note(classifier, len(usable), len(skipped), cut))
    return Adaptation(skipped=skipped, notes=[n for n in notes if n is not None])
