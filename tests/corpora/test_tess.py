"""TESS: the published spellings of emotions in folder and file names."""

from __future__ import annotations

import pytest

from ser.corpora import tess
from ser.errors import CorpusError
from tests.corpora import fixtures as fx

pytestmark = pytest.mark.filterwarnings("ignore:.*the full release has:UserWarning")


def test_every_published_spelling_maps_to_its_class(tmp_path):
    manifest = tess.load(fx.make_tess(tmp_path))
    assert len(manifest) == 42
    assert manifest["label"].value_counts().to_dict() == dict.fromkeys(tess.CLASSES, 6)
    rows = manifest.set_index("utt_id")
    assert rows.loc["OAF_back_ps", "label"] == "surprise"
    assert rows.loc["YAF_bar_pleasant_surprised", "label"] == "surprise"
    assert rows.loc["YAF_base_Fear", "label"] == "fear"
    assert rows.loc["OAF_back_sad", "label"] == "sad"  # in folder OAF_Sad
    assert manifest.groupby("speaker").size().to_dict() == {"OAF": 21, "YAF": 21}
    assert set(manifest["gender"]) == {"F"}


@pytest.mark.parametrize(
    ("folder", "stem", "label"),
    [
        ("OAF_Pleasant_surprise", "OAF_cab_Pleasant_surprise", "surprise"),
        ("YAF_pleasant_surprise", "YAF_cab_pleasant_surprise", "surprise"),
        ("OAF_Fear", "OAF_cab", "fear"),  # no emotion in the file name: the folder's
        ("YAF_happy", "yaf_cab_HAPPY", "happy"),
        ("OAF_neutral", "OA_bite_neutral", "neutral"),  # the release's one short prefix
    ],
)
def test_more_spellings(tmp_path, folder, stem, label):
    root = fx.make_tess(tmp_path)
    fx.write_wav(root / folder / f"{stem}.wav")
    row = tess.load(root).set_index("utt_id").loc[stem]
    assert row["label"] == label and row["speaker"] == folder[:3].upper()


def test_unknown_emotion_and_disagreement(tmp_path):
    root = fx.make_tess(tmp_path)
    fx.write_wav(root / "OAF_bored" / "OAF_cab_bored.wav")
    fx.write_wav(root / "OAF_angry" / "OAF_dog_bored.wav")  # the name's token decides, not the folder
    fx.write_wav(root / "YAF_sad" / "YAF_cab_angry.wav")
    with pytest.raises(CorpusError) as caught:
        tess.load(root)
    message = str(caught.value)
    assert (
        "unknown label (2):\n  OAF_angry/OAF_dog_bored.wav: label 'bored'; expected one of angry" in message
    )
    assert (
        "label disagrees with folder (1):\n  YAF_sad/YAF_cab_angry.wav: file name says 'angry' (angry) "
        "but folder YAF_sad says 'sad' (sad)" in message
    )
