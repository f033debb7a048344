import pytest

from ser.corpora import CANONICAL_LABELS
from ser.errors import ConfigError
from ser.labels import SYNONYMS, canonical_label, match_labels, normalize_label, parse_map

RAVDESS = ["angry", "calm", "disgust", "fear", "happy", "neutral", "sad", "surprise"]


def test_every_loader_label_is_canonical_in_the_table():
    for label in CANONICAL_LABELS:
        assert canonical_label(label) == label


def test_each_synonym_names_one_emotion():
    names = [name for group in SYNONYMS.values() for name in group]
    assert len(names) == len(set(names))
    assert all(normalize_label(name) == name for name in names)


@pytest.mark.parametrize(
    ("name", "canonical"),
    [
        ("Anger", "angry"),
        ("happiness", "happy"),
        ("Sadness", "sad"),
        ("fearful", "fear"),
        ("Pleasant_Surprise", "surprise"),
        ("pleasant-surprise", "surprise"),
        ("ps", "surprise"),
        ("surprised", "surprise"),
        ("disgusted", "disgust"),
        ("bored", "boredom"),
        ("excitement", "excited"),
        ("frustrated", "frustration"),
        (" Neutral ", "neutral"),
        ("calm", "calm"),
        ("contempt", "contempt"),
        ("jealousy", None),
    ],
)
def test_canonical_label(name, canonical):
    assert canonical_label(name) == canonical


def test_tess_style_labels_meet_a_ravdess_model():
    corpus = ["angry", "disgust", "fear", "happy", "neutral", "ps", "sad"]
    match = match_labels(RAVDESS, corpus)
    assert match.pairs["ps"] == "surprise"
    assert len(match.pairs) == 7
    assert match.corpus_only == ()
    assert match.model_only == ("calm",)
    assert "ps->surprise" in match.describe() and "calm" in match.describe()


def test_unmatched_corpus_labels_are_listed_in_corpus_order():
    match = match_labels(["angry", "happy", "sad"], ["frustrated", "anger", "jealous", "joy"])
    assert match.pairs == {"anger": "angry", "joy": "happy"}
    assert match.corpus_only == ("frustrated", "jealous")
    assert match.model_only == ("sad",)


def test_names_outside_the_table_match_when_equal():
    match = match_labels(["Jealousy", "angry"], ["jealousy", "angry"])
    assert match.pairs == {"jealousy": "Jealousy", "angry": "angry"}


def test_map_adds_overrides_and_drops():
    model = ["angry", "happy", "neutral", "sad"]
    corpus = ["angry", "calm", "excited", "happy", "neutral", "sad"]
    match = match_labels(model, corpus, parse_map(["calm=neutral", "excited=happy", "sad="]))
    assert match.pairs == {
        "angry": "angry",
        "calm": "neutral",
        "excited": "happy",
        "happy": "happy",
        "neutral": "neutral",
    }
    assert match.corpus_only == ("sad",)
    assert match.model_only == ("sad",)
    assert match.to_dict()["overrides"] == {"calm": "neutral", "excited": "happy", "sad": None}


def test_map_errors_name_the_value():
    with pytest.raises(ConfigError, match="FROM=TO.*'calm'"):
        parse_map(["calm"])
    with pytest.raises(ConfigError, match="twice"):
        parse_map(["calm=neutral", "calm=sad"])
    with pytest.raises(ConfigError, match="'bliss' is not a model class"):
        match_labels(RAVDESS, ["calm"], {"calm": "bliss"})
    with pytest.raises(ConfigError, match="'ennui' is not a corpus label"):
        match_labels(RAVDESS, ["calm"], {"ennui": "neutral"})
    assert match_labels(RAVDESS, ["calm"], {"ennui": "neutral"}, strict=False).pairs == {"calm": "calm"}
