"""Tiny corpora in each corpus's real layout, written into a test's ``tmp_path``.

Every audio file is a real 16 kHz wav (0.3 s of a quiet tone with noise), so the loaders
read real headers. Each ``make_*`` function returns the corpus root; the file counts of
what it writes are in its docstring.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import soundfile as sf

SAMPLE_RATE = 16000


@functools.lru_cache(maxsize=8)
def wav_bytes(seconds: float = 0.3, sample_rate: int = SAMPLE_RATE) -> bytes:
    """The bytes of a mono 16-bit wav file of ``seconds`` of tone and noise."""
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    y = 0.1 * np.sin(2 * np.pi * 220.0 * t) + 0.01 * rng.standard_normal(t.size)
    buffer = io.BytesIO()
    sf.write(buffer, y.astype(np.float32), sample_rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def write_wav(path: Path, seconds: float = 0.3) -> Path:
    """Write a small real wav file at ``path`` (creating folders) and return ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(wav_bytes(seconds))
    return path


def write_text_as_wav(path: Path) -> Path:
    """A text file with an audio name, as left behind by a failed download."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("<html><body>403 Forbidden</body></html>\n")
    return path


def write_empty(path: Path) -> Path:
    """A zero-byte file with an audio name."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


# --- EmoDB -----------------------------------------------------------------------------


def make_emodb(
    root: Path, speakers: Iterable[str] = ("03", "08", "10"), emotions: str = "WLEAFTN", texts=("a01", "b02")
) -> Path:
    """``root/wav/<speaker><text><emotion>a.wav``: 3 speakers x 2 texts x 7 emotions = 42 files."""
    for speaker in speakers:
        for text in texts:
            for emotion in emotions:
                write_wav(root / "wav" / f"{speaker}{text}{emotion}a.wav")
    (root / "lablaut").mkdir(parents=True, exist_ok=True)
    (root / "lablaut" / "03a01Fa.lablaut").write_text("not audio\n")
    return root


# --- RAVDESS ---------------------------------------------------------------------------


def ravdess_name(
    emotion: int, actor: int, intensity=1, statement=1, repetition=1, modality=3, channel=1
) -> str:
    return f"{modality:02d}-{channel:02d}-{emotion:02d}-{intensity:02d}-{statement:02d}-{repetition:02d}-{actor:02d}.wav"


def make_ravdess(
    root: Path, actors: Iterable[int] = (1, 2, 3), emotions: Iterable[int] = range(1, 9)
) -> Path:
    """``root/Actor_XX/03-01-EE-01-SS-01-XX.wav``: 3 actors x 8 emotions x 2 statements = 48 files."""
    for actor in actors:
        for emotion in emotions:
            for statement in (1, 2):
                write_wav(root / f"Actor_{actor:02d}" / ravdess_name(emotion, actor, statement=statement))
    return root


# --- CREMA-D ---------------------------------------------------------------------------

CREMAD_EMOTIONS = ("ANG", "DIS", "FEA", "HAP", "NEU", "SAD")


def make_cremad(
    root: Path, actors: Iterable[int] = (1001, 1002, 1091), emotions: Iterable[str] = CREMAD_EMOTIONS
) -> Path:
    """``root/AudioWAV/<actor>_<sentence>_<emotion>_<level>.wav``: 3 actors x 6 emotions x 2 = 36 files."""
    for actor in actors:
        for emotion in emotions:
            write_wav(root / "AudioWAV" / f"{actor}_DFA_{emotion}_XX.wav")
            write_wav(root / "AudioWAV" / f"{actor}_IEO_{emotion}_{'LO' if emotion == 'NEU' else 'HI'}.wav")
    return root


# --- TESS ------------------------------------------------------------------------------

#: (folder emotion, file emotion) per speaker, with the spellings of the published release.
TESS_SPELLINGS = {
    "OAF": [
        ("angry", "angry"),
        ("disgust", "disgust"),
        ("Fear", "fear"),
        ("happy", "happy"),
        ("neutral", "neutral"),
        ("Pleasant_surprise", "ps"),
        ("Sad", "sad"),
    ],
    "YAF": [
        ("angry", "angry"),
        ("disgust", "disgust"),
        ("fear", "Fear"),
        ("happy", "happy"),
        ("neutral", "neutral"),
        ("pleasant_surprised", "pleasant_surprised"),
        ("sad", "sad"),
    ],
}


def make_tess(root: Path, words: Iterable[str] = ("back", "bar", "base")) -> Path:
    """``root/<spk>_<emotion>/<spk>_<word>_<emotion>.wav``: 2 speakers x 7 emotions x 3 words = 42 files."""
    for speaker, spellings in TESS_SPELLINGS.items():
        for folder, token in spellings:
            for word in words:
                write_wav(root / f"{speaker}_{folder}" / f"{speaker}_{word}_{token}.wav")
    return root


# --- SAVEE -----------------------------------------------------------------------------

SAVEE_CODES = ("a", "d", "f", "h", "n", "sa", "su")


def make_savee(
    root: Path, layout: str = "flat", speakers: Iterable[str] = ("DC", "JE", "JK"), numbers=(1, 2)
) -> Path:
    """``root/DC_sa01.wav`` (flat) or ``root/AudioData/DC/sa01.wav``: 3 x 7 x 2 = 42 files."""
    for speaker in speakers:
        for code in SAVEE_CODES:
            for number in numbers:
                if layout == "flat":
                    write_wav(root / f"{speaker}_{code}{number:02d}.wav")
                else:
                    write_wav(root / "AudioData" / speaker / f"{code}{number:02d}.wav")
    return root


# --- URDU ------------------------------------------------------------------------------

URDU_FOLDERS = {"A": "Angry", "H": "Happy", "N": "Neutral", "S": "Sad"}


def make_urdu(root: Path, speakers: Iterable[str] = ("SM1", "SF2", "SM12")) -> Path:
    """``root/<Emotion>/<speaker>_F<nn>_<E><nn>.wav``: 3 speakers x 4 emotions x 2 = 24 files."""
    for i, speaker in enumerate(speakers):
        for letter, folder in URDU_FOLDERS.items():
            for n in (1, 2):
                write_wav(root / folder / f"{speaker}_F{i + 1}_{letter}{n:02d}.wav")
    return root


# --- IEMOCAP ---------------------------------------------------------------------------

#: (turn suffix, category) of every utterance in each fixture dialog.
IEMOCAP_TURNS = (
    ("F000", "neu"),
    ("M000", "ang"),
    ("F001", "hap"),
    ("M001", "exc"),
    ("F002", "sad"),
    ("M002", "fru"),
    ("F003", "exc"),
    ("M003", "sad"),
    ("F004", "ang"),
    ("M004", "neu"),
    ("F005", "xxx"),
)


def iemocap_line(utt: str, code: str, start: float = 1.0) -> str:
    return f"[{start:.4f} - {start + 2.1:.4f}]\t{utt}\t{code}\t[2.5000, 3.0000, 2.5000]\n"


def make_iemocap(root: Path, sessions: Iterable[int] = (1, 2), turns=IEMOCAP_TURNS) -> Path:
    """``root/Session<n>/sentences/wav/<dialog>/<utt>.wav`` with EmoEvaluation labels.

    Per session two dialogs (``Ses0nF_impro01``, ``Ses0nM_script01_1``) of 11 turns each,
    of which 9 are kept: 2 neutral, 2 angry, 3 happy (1 hap, 2 exc), 2 sad; fru and xxx
    are left out. With sessions (1, 2): 36 utterances (28 without excited), 18 improvised.
    """
    for n in sessions:
        session = root / f"Session{n}"
        for dialog in (f"Ses{n:02d}F_impro01", f"Ses{n:02d}M_script01_1"):
            lines = ["% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]\n", "\n"]
            for i, (turn, code) in enumerate(turns):
                utt = f"{dialog}_{turn}"
                write_wav(session / "sentences" / "wav" / dialog / f"{utt}.wav")
                lines += [
                    iemocap_line(utt, code, 3.0 * i),
                    "C-E1:\tNeutral;\t()\n",
                    "A-E1:\tval 3; act 2;\t()\n",
                    "\n",
                ]
            evaluation = session / "dialog" / "EmoEvaluation"
            evaluation.mkdir(parents=True, exist_ok=True)
            (evaluation / f"{dialog}.txt").write_text("".join(lines))
        # the whole-dialog recordings live elsewhere and must not be picked up
        write_wav(session / "dialog" / "wav" / f"Ses{n:02d}F_impro01.wav")
    return root


# --- custom ----------------------------------------------------------------------------


def make_class_folders(root: Path, counts: dict[str, int] | None = None) -> Path:
    """``root/<Class>/<n>.wav``: by default Happy 3, sad 2, Angry 2 (one in a sub-folder) = 7 files."""
    counts = counts or {"Happy": 3, "sad": 2, "Angry": 2}
    for label, count in counts.items():
        for i in range(count):
            sub = "take2/" if label == "Angry" and i == 1 else ""
            write_wav(root / label / f"{sub}{i:03d}.wav")
    return root
