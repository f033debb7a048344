import warnings

import numpy as np
import pandas as pd
import pytest

from ser.errors import ConfigError
from ser.protocol import fold_splits, make_folds, validation_split


def _manifest(n_speakers=12, per_speaker=8, labels=("a", "b", "c", "d")):
    rows = []
    for s in range(n_speakers):
        for i in range(per_speaker):
            rows.append(
                {
                    "path": f"/x/{s}_{i}.wav",
                    "label": labels[i % len(labels)],
                    "speaker": f"spk{s:02d}",
                    "session": f"S{s // 2}",
                }
            )
    return pd.DataFrame(rows)


@pytest.mark.parametrize(
    "protocol, n_folds",
    [
        ({"kind": "group_kfold", "group": "speaker", "k": 4}, 4),
        ({"kind": "leave_one_group_out", "group": "speaker"}, 12),
        ({"kind": "leave_one_group_out", "group": "session"}, 6),
    ],
)
def test_test_speakers_never_leak_into_training_or_validation(protocol, n_folds):
    m = _manifest()
    folds = make_folds(m, protocol)
    assert len(folds) == n_folds
    group = protocol["group"]
    seen_test = []
    for f in folds:
        test_groups = set(m[group].iloc[f.test])
        assert set(f.test_groups) == test_groups
        assert not test_groups & set(m[group].iloc[f.train])
        assert not test_groups & set(m[group].iloc[f.validation])
        # train, validation and test partition the corpus
        all_rows = np.concatenate([f.train, f.validation, f.test])
        assert sorted(all_rows) == list(range(len(m)))
        seen_test.extend(f.test.tolist())
    assert sorted(seen_test) == list(range(len(m)))  # every utterance tested exactly once


def test_validation_holds_out_whole_training_speakers():
    m = _manifest(n_speakers=12)
    f = make_folds(m, {"kind": "group_kfold", "group": "speaker", "k": 4})[0]
    val_speakers = set(m.speaker.iloc[f.validation])
    assert val_speakers == set(f.validation_groups)
    assert len(val_speakers) == 1  # round(0.15 * 9)
    assert not val_speakers & set(m.speaker.iloc[f.train])


def test_validation_falls_back_to_utterances_with_few_speakers():
    m = _manifest(n_speakers=2)
    with pytest.warns(UserWarning, match="only 1 training speaker: "):
        folds = make_folds(m, {"kind": "leave_one_group_out", "group": "speaker"})
    f = folds[0]
    assert f.validation_groups == ()
    assert len(f.validation) > 0
    assert set(m.label.iloc[f.validation]) == {"a", "b", "c", "d"}  # stratified


def test_kfold_is_deterministic_and_balanced():
    m = _manifest(n_speakers=24)
    a = fold_splits(m, {"kind": "group_kfold", "group": "speaker", "k": 6, "seed": 0})
    b = fold_splits(m, {"kind": "group_kfold", "group": "speaker", "k": 6, "seed": 0})
    assert [g for g, _ in a] == [g for g, _ in b]
    assert all(len(g) == 4 for g, _ in a)


def test_protocol_errors():
    m = _manifest(n_speakers=3)
    with pytest.raises(ConfigError, match="kind must be one of"):
        fold_splits(m, {"kind": "random"})
    with pytest.raises(
        ConfigError,
        match=r"^5 folds need at least 5 speakers; found 3: set fewer folds, e.g. --set protocol.k=3$",
    ):
        fold_splits(m, {"kind": "group_kfold", "group": "speaker", "k": 5})
    with pytest.raises(ConfigError, match=r"protocol.k must be an integer >= 2. Received: k=1"):
        fold_splits(m, {"kind": "group_kfold", "group": "speaker", "k": 1})
    with pytest.raises(ConfigError, match="no such column"):
        fold_splits(m, {"kind": "group_kfold", "group": "dialect", "k": 2})
    with pytest.raises(ConfigError, match="at least 2 speakers"):
        fold_splits(_manifest(n_speakers=1), {"kind": "leave_one_group_out", "group": "speaker"})


def test_validation_split_seeded():
    m = _manifest(n_speakers=10)
    rows = np.arange(len(m))
    a = validation_split(m, rows, "speaker", seed=3)
    b = validation_split(m, rows, "speaker", seed=3)
    assert a[2] == b[2]


def test_validation_never_takes_every_training_group():
    m = _manifest(n_speakers=6)
    train, val, groups = validation_split(m, np.arange(len(m)), "speaker", fraction=0.99, min_groups=6)
    assert len(groups) == 5 and len(train) == 8 and len(val) == 40


def test_check_protocol():
    from ser.protocol import check_protocol

    ok = {"kind": "group_kfold", "group": "speaker", "k": 5, "seed": 0}
    assert check_protocol(ok) is ok
    with pytest.raises(ConfigError, match=r"protocol.k must be an integer >= 2. Received: k=True"):
        check_protocol({**ok, "k": True})
    with pytest.raises(
        ConfigError, match=r"protocol.group must be a manifest column name. Received: group=3"
    ):
        check_protocol({**ok, "group": 3})
    with pytest.raises(ConfigError, match=r"kind must be one of .* Received: kind=None"):
        check_protocol({"group": "speaker"})


def test_validation_warnings_only_for_the_folds_asked_for():
    import warnings

    m = pd.DataFrame(
        {
            "speaker": [f"s{i // 4}" for i in range(24)],
            "label": ["a", "b"] * 12,
        }
    )
    protocol = {"kind": "leave_one_group_out", "group": "speaker"}  # 5 training speakers: warns
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        make_folds(m, protocol, warn_for=[2])
    assert len(caught) == 1 and "only 5 training speakers" in str(caught[0].message)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        make_folds(m, protocol)
    assert len(caught) == 6


def _confounded(n_speakers=12, labels=("angry", "happy", "neutral", "sad"), sizes=None):
    """Speakers each recording mostly one emotion: speaker s records labels[s % 4] 8 times
    and each other label once (sizes: files of the main emotion per speaker)."""
    rows = []
    for s in range(n_speakers):
        main = labels[s % len(labels)]
        n_main = sizes[s] if sizes else 8
        for i, label in enumerate([main] * n_main + [c for c in labels if c != main]):
            rows.append({"path": f"/x/{s}_{i}.wav", "label": label, "speaker": f"spk{s:02d}"})
    return pd.DataFrame(rows)


def test_kfold_keeps_every_class_in_about_the_corpus_proportions():
    m = _confounded(sizes=[8, 8, 8, 8, 4, 4, 4, 4, 12, 12, 12, 12])
    share = m.label.value_counts(normalize=True)
    folds = make_folds(m, {"kind": "group_kfold", "group": "speaker", "k": 3, "seed": 0})
    sizes = [len(f.test) for f in folds]
    assert max(sizes) - min(sizes) <= 0.2 * np.mean(sizes)  # folds of similar size
    for f in folds:
        for rows in (f.test, np.concatenate([f.train, f.validation])):
            fold_share = m.label.iloc[rows].value_counts(normalize=True)
            assert set(fold_share.index) == set(share.index)
            assert (fold_share - share).abs().max() < 0.1
    # every one of the 12 speakers is tested once, 4 per fold
    assert sorted(g for f in folds for g in f.test_groups) == sorted(m.speaker.unique())


def test_kfold_stratified_folds_follow_the_seed():
    m = _confounded()
    protocol = {"kind": "group_kfold", "group": "speaker", "k": 3}
    a = [f.test_groups for f in make_folds(m, {**protocol, "seed": 0})]
    assert a == [f.test_groups for f in make_folds(m, {**protocol, "seed": 0})]
    assert a != [f.test_groups for f in make_folds(m, {**protocol, "seed": 1})]


def test_validation_speakers_hold_every_class():
    m = _confounded(n_speakers=16)
    rows = np.arange(len(m))
    for seed in range(5):
        train, val, groups = validation_split(m, rows, "speaker", fraction=0.25, seed=seed)
        assert len(groups) == 4  # round(0.25 * 16)
        # one speaker per emotion: each emotion is the main one of a validation speaker
        assert m.label.iloc[val].value_counts().min() == 8 + 3
        assert set(m.label.iloc[train]) == set(m.label)


def test_a_class_from_one_speaker_is_named_with_its_fold():
    m = _confounded()
    m.loc[m.label == "sad", "label"] = "neutral"
    extra = pd.DataFrame(
        [{"path": f"/x/only_{i}.wav", "label": "fear", "speaker": "spk05"} for i in range(6)]
    )
    m = pd.concat([m, extra], ignore_index=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        folds = make_folds(m, {"kind": "group_kfold", "group": "speaker", "k": 3, "seed": 0})
    number = next(f.number for f in folds if "spk05" in f.test_groups)
    lines = [str(w.message) for w in caught]
    assert (
        f"fold {number}: its training set has no 'fear' (recorded by speaker spk05 only, tested in this fold)"
        in lines
    )
    # the other folds test no 'fear': each says so for its test set
    for f in folds:
        if f.number != number:
            assert f"fold {f.number}: its test set has no 'fear'" in lines
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        make_folds(m, {"kind": "group_kfold", "group": "speaker", "k": 3, "seed": 0}, warn_for=[number])
    assert all(str(w.message).startswith(f"fold {number}:") for w in caught) and caught
