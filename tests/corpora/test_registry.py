"""ser.corpora.CORPORA and load_corpus: names, options, the lazy synthetic corpus, light imports."""

from __future__ import annotations

import inspect
import subprocess
import sys

import pytest

import ser.corpora as corpora
from ser.corpora import CANONICAL_LABELS, CORPORA, get_corpus, load_corpus
from ser.errors import ConfigError
from tests.corpora import fixtures as fx

NAMES = ["cremad", "custom", "emodb", "iemocap", "ravdess", "savee", "tess", "urdu"]


def test_names():
    assert sorted(CORPORA) == sorted([*NAMES, "synthetic"])


@pytest.mark.parametrize("name", NAMES)
def test_module_contract(name):
    module = CORPORA[name]
    assert isinstance(module.CLASSES, tuple)
    assert list(module.CLASSES) == sorted(module.CLASSES)
    if name == "custom":
        assert module.CLASSES == () and module.EXPECTED_COUNT is None
    else:
        assert set(module.CLASSES) <= set(CANONICAL_LABELS)
        assert isinstance(module.EXPECTED_COUNT, int)
    assert module.PROTOCOL["kind"] in {"leave_one_group_out", "group_kfold"}
    assert module.PROTOCOL["group"] in {"speaker", "session"}
    parameters = inspect.signature(module.load).parameters
    assert list(parameters)[0] == "root"
    assert parameters["skip_bad"].kind is inspect.Parameter.KEYWORD_ONLY
    assert parameters["skip_bad"].default is False
    assert parameters["find_unusable"].kind is inspect.Parameter.KEYWORD_ONLY  # load_corpus passes it
    assert parameters["find_unusable"].default is None


def test_published_sizes_and_protocols():
    sizes = {name: CORPORA[name].EXPECTED_COUNT for name in NAMES if name != "custom"}
    assert sizes == {
        "cremad": 7442,
        "emodb": 535,
        "iemocap": 5531,
        "ravdess": 1440,
        "savee": 480,
        "tess": 2800,
        "urdu": 400,
    }
    assert corpora.iemocap.PROTOCOL == {"kind": "leave_one_group_out", "group": "session"}
    assert corpora.ravdess.PROTOCOL == {"kind": "group_kfold", "group": "speaker", "k": 6}


def test_unknown_corpus_lists_the_valid_names(tmp_path):
    with pytest.raises(
        ConfigError, match=r"unknown corpus 'emo-db'; expected one of: cremad, custom, emodb, iemocap"
    ):
        load_corpus("emo-db", tmp_path)


def test_names_are_case_insensitive(tmp_path):
    assert get_corpus(" RAVDESS ") is corpora.ravdess


def test_unknown_option_names_it_and_the_accepted_ones(tmp_path):
    with pytest.raises(
        ConfigError,
        match=r"unknown option\(s\) 'improvised' for corpus 'iemocap'; accepted options: improvised_only, merge_excited",
    ):
        load_corpus("iemocap", tmp_path, improvised=True)
    with pytest.raises(ConfigError, match=r"'merge_calm' for corpus 'emodb'; it accepts no options"):
        load_corpus("emodb", tmp_path, merge_calm=True)


def test_option_values_are_checked(tmp_path):
    with pytest.raises(ConfigError, match=r"merge_calm must be true or false\. Received: merge_calm='yes'"):
        load_corpus("ravdess", tmp_path, merge_calm="yes")
    with pytest.raises(ConfigError, match=r"skip_bad must be true or false"):
        load_corpus("ravdess", tmp_path, skip_bad=1)


@pytest.mark.filterwarnings("ignore:.*the full release has:UserWarning")
def test_options_reach_the_loader(tmp_path):
    manifest = load_corpus("ravdess", fx.make_ravdess(tmp_path, actors=(1, 2)), merge_calm=True)
    assert "calm" not in set(manifest["label"])


def test_missing_synthetic_module_fails_only_when_asked_for(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "ser.corpora.synthetic", None)  # as if the module did not exist
    assert "synthetic" in CORPORA
    with pytest.raises(ConfigError, match=r"corpus 'synthetic' is not available"):
        load_corpus("synthetic", tmp_path)


def test_import_is_light():
    code = (
        "import sys, corpora; "
        "heavy = [m for m in ('tensorflow', 'keras', 'ser.corpora.synthetic', 'librosa') if m in sys.modules]; "
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
