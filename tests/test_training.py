"""End-to-end recipe runs on the tiny synthetic corpus: outputs, resume, honesty of folds."""

import json

import pytest

from ser.errors import ConfigError
from tests.conftest import TINY


def test_results_json_schema(tiny_run):
    out, results = tiny_run
    on_disk = json.loads((out / "results.json").read_text())
    assert on_disk["recipe"] == "synthetic"
    assert on_disk["corpus"] == "synthetic"
    assert "leave" in on_disk["protocol"] or "fold" in on_disk["protocol"]
    assert on_disk["classes"] == ["angry", "happy", "neutral", "sad"]
    assert len(on_disk["folds"]) == 3
    for f in on_disk["folds"]:
        assert set(f) >= {"fold", "test_speakers", "n", "wa", "ua", "macro_f1"}
        assert 0 <= f["wa"] <= 1 and 0 <= f["ua"] <= 1
        assert len(f["test_speakers"]) == 1
    assert sum(f["n"] for f in on_disk["folds"]) == 36
    for key in ("wa_mean", "wa_std", "ua_mean", "ua_std", "seconds"):
        assert isinstance(on_disk[key], float)
    pooled = on_disk["pooled"]
    assert set(pooled) == {"wa", "ua", "macro_f1", "confusion"}
    assert sum(map(sum, pooled["confusion"])) == 36
    assert on_disk["complete"] is True


def test_run_writes_all_artefacts(tiny_run):
    out, _ = tiny_run
    for name in ("results.md", "confusion.png", "model.keras", "manifest.csv", "run.json"):
        assert (out / name).is_file(), name
    md = (out / "results.md").read_text()
    assert "| fold | test speakers |" in md
    assert (
        "CNN crops also cut from copies at speeds 0.9, 1.1; "
        "functionals head also fitted on copies at speeds 0.9, 1.1;" in md
    )
    assert any((out / "tensorboard").rglob("events.out.tfevents.*"))
    # no temporary files left behind
    assert not [p for p in out.rglob(".*") if p.is_file()]


def test_each_speaker_is_tested_once_and_never_trained_on(tiny_run):
    out, _ = tiny_run
    tested = []
    for d in sorted((out / "folds").iterdir()):
        r = json.loads((d / "result.json").read_text())
        tested += r["test_speakers"]
        assert not set(r["test_speakers"]) & set(r["validation_speakers"])
    assert sorted(tested) == ["spk01", "spk02", "spk03"]


def test_predictions_hold_class_probabilities(tiny_run):
    import numpy as np
    import pandas as pd

    from ser.evaluation import scores

    out, results = tiny_run
    for d in sorted((out / "folds").iterdir()):
        pred = pd.read_csv(d / "predictions.csv")
        r = json.loads((d / "result.json").read_text())
        columns = [f"p_{c}" for c in results["classes"]]
        assert list(pred.columns) == ["path", "speaker", "label", "predicted", *columns, "predicted_adapted"]
        p = pred[columns].to_numpy()
        np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-3)
        assert (p >= 0).all()
        # the predicted class is the most probable one, and matches result.json
        assert [results["classes"][i] for i in p.argmax(axis=1)] == pred["predicted"].tolist()
        assert [results["classes"][i] for i in r["y_pred"]] == pred["predicted"].tolist()
        assert set(pred["speaker"]) == set(r["test_speakers"])
        # the CNN's own logits, before the fusion, for the same test rows
        logits = np.load(d / "logits.npz")
        assert logits["cnn"].shape == logits["cnn_adapted"].shape == (len(pred), len(columns))
        assert len(logits["rows"]) == len(pred) == r["n"]
        assert scores(r["y_true"], logits["cnn"].argmax(1), len(columns))["ua"] == pytest.approx(
            r["cnn"]["ua"]
        )
        # and on the validation speakers, disjoint from the test rows
        val = logits["validation_rows"]
        assert val.size and not set(val) & set(logits["rows"])
        assert (
            logits["validation_cnn"].shape
            == logits["validation_cnn_adapted"].shape
            == (val.size, len(columns))
        )


def test_speaker_adapted_scores_are_reported_beside_the_plain_ones(tiny_run):
    import numpy as np
    import pandas as pd

    from ser.evaluation import scores

    out, results = tiny_run
    sa = results["speaker_adapted"]
    assert "batch-norm statistics of Conv blocks 4, 5" in sa["protocol"]
    assert set(sa) == {"protocol", "wa_mean", "wa_std", "ua_mean", "ua_std", "pooled"}
    assert sum(map(sum, sa["pooled"]["confusion"])) == 36
    classes = results["classes"]
    uas = []
    for entry in results["folds"]:
        d = out / "folds" / f"fold_{entry['fold']:02d}"
        r = json.loads((d / "result.json").read_text())
        pred = pd.read_csv(d / "predictions.csv")
        assert [classes[i] for i in r["adapted"]["y_pred"]] == pred["predicted_adapted"].tolist()
        s = scores(r["y_true"], r["adapted"]["y_pred"], len(classes))
        assert entry["adapted"] == {"wa": s["wa"], "ua": s["ua"]}
        uas.append(s["ua"])
    assert sa["ua_mean"] == pytest.approx(np.mean(uas))
    md = (out / "results.md").read_text()
    assert "| WA adapted | UA adapted |" in md and "Adapted to each test speaker" in md


def test_final_model_carries_labels_and_frontend(tiny_run):
    out, _ = tiny_run
    import keras

    import ser.layers  # noqa: F401  (registers the custom layers)

    model = keras.saving.load_model(out / "model.keras", compile=False, safe_mode=True)
    meta = model.get_layer("ser_metadata")
    assert meta.labels == ["angry", "happy", "neutral", "sad"]
    assert meta.frontend["n_mels"] == 64
    assert meta.info["recipe"] == "synthetic"
    assert meta.info["head"] == "attention"
    assert meta.info["adapt_blocks"] == [4, 5]


def test_rerun_skips_finished_work(tiny_run, tiny_corpus, capsys):
    out, results = tiny_run
    from ser.training import run_recipe

    before = {p: p.stat().st_mtime_ns for p in (out / "folds").rglob("result.json")}
    model_mtime = (out / "model.keras").stat().st_mtime_ns
    again = run_recipe("synthetic", data_root=tiny_corpus, out_dir=out, overrides=TINY, progress=False)
    assert {p: p.stat().st_mtime_ns for p in (out / "folds").rglob("result.json")} == before
    assert (out / "model.keras").stat().st_mtime_ns == model_mtime
    assert again["ua_mean"] == results["ua_mean"]
    log = capsys.readouterr()
    ua = results["folds"][0]["ua"]
    assert f"fold 1/3 done in an earlier run (UA {ua:.3f}): kept" in log.out + log.err


def test_rerun_with_other_settings_is_refused(tiny_run, tiny_corpus):
    out, _ = tiny_run
    from ser.training import run_recipe

    with pytest.raises(ConfigError, match="different settings"):
        run_recipe("synthetic", data_root=tiny_corpus, out_dir=out, overrides=[*TINY, "model.head=average"])


def test_average_head_and_fold_subset(tiny_corpus, tmp_path, warm_cache):
    from ser.training import run_recipe

    res = run_recipe(
        "synthetic",
        data_root=tiny_corpus,
        out_dir=tmp_path / "avg",
        folds="2",
        overrides=[*TINY, "model.head=average", "model.adapt_blocks=[]", "model.functionals=false"],
        final_model=True,  # but not before every fold is done
        progress=False,
    )
    assert [f["fold"] for f in res["folds"]] == [2]
    # the functionals head turned off: the scores are the CNN's, with no parts to report
    assert "parts" not in res and "cnn" not in res["folds"][0] and "functionals" not in res["folds"][0]
    # speaker adaptation turned off: no adapted scores anywhere
    assert "speaker_adapted" not in res and "adapted" not in res["folds"][0]
    assert "adapted" not in json.loads((tmp_path / "avg" / "folds" / "fold_02" / "result.json").read_text())
    # no fusion weights to choose: the validation speakers are not scored again after training
    import numpy as np

    logits = np.load(tmp_path / "avg" / "folds" / "fold_02" / "logits.npz")
    assert sorted(logits.files) == ["cnn", "rows"]
    assert res["complete"] is False
    assert not (tmp_path / "avg" / "model.keras").exists()


def test_without_cnn_adaptation_the_functionals_head_still_adapts(tiny_corpus, tmp_path, warm_cache):
    from ser.training import run_recipe

    res = run_recipe(
        "synthetic",
        data_root=tiny_corpus,
        out_dir=tmp_path / "head-only",
        folds="1",
        overrides=[*TINY, "model.adapt_blocks=[]"],
        final_model=False,
        progress=False,
    )
    fold = res["folds"][0]
    # the CNN is not adapted (its adapted scores are its plain ones); the head is, per speaker
    assert fold["cnn"]["adapted_ua"] == fold["cnn"]["ua"] and "adapted_ua" in fold["functionals"]
    protocol = res["speaker_adapted"]["protocol"]
    assert "functionals standardised" in protocol and "batch-norm" not in protocol


def test_bad_folds_and_recipe_errors(tiny_corpus, tmp_path):
    from ser.training import run_recipe

    with pytest.raises(ConfigError, match="--folds must be between 1 and 3"):
        run_recipe("synthetic", data_root=tiny_corpus, out_dir=tmp_path / "x", folds="7", overrides=TINY)
    with pytest.raises(ConfigError, match="recipe 'nope' not found"):
        run_recipe("nope", data_root=tiny_corpus, out_dir=tmp_path / "y")


def test_out_folder_errors_are_config_errors(tiny_corpus, tmp_path):
    from ser.training import run_recipe

    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    with pytest.raises(ConfigError, match=f"{a_file}: is a file; expected an output folder"):
        run_recipe("synthetic", data_root=tiny_corpus, out_dir=a_file, progress=False)
    with pytest.raises(ConfigError, match="cannot write here"):
        run_recipe("synthetic", data_root=tiny_corpus, out_dir=a_file / "sub", progress=False)


def test_a_run_that_produced_nothing_can_be_restarted_with_other_settings(tmp_path):
    """A first try stopped by a wrong --data-root must not lock the output folder."""
    from ser.constants import FORMAT_VERSION
    from ser.errors import CorpusError
    from ser.io import write_json
    from ser.training import run_recipe

    out = tmp_path / "out"
    with pytest.raises(CorpusError, match="corpus root not found"):
        run_recipe("synthetic", data_root=tmp_path / "typo", out_dir=out)
    assert not out.exists()  # a refused run writes nothing
    # nor does the run.json of such a try (older versions wrote it first) lock the folder
    out.mkdir()
    write_json(out / "run.json", {"recipe": "synthetic", "settings": {}, "data_root": str(tmp_path / "typo")})
    with pytest.raises(CorpusError, match="corpus root not found"):  # not "different settings"
        run_recipe("synthetic", data_root=tmp_path / "right", out_dir=out, overrides=TINY)
    (out / "folds" / "fold_01").mkdir(parents=True)
    (out / "folds" / "fold_01" / "result.json").write_text("{}")
    # with finished work, it is refused: a run.json of no format version ...
    with pytest.raises(ConfigError, match="written in no format version"):
        run_recipe("synthetic", data_root=tmp_path / "typo", out_dir=out)
    # ... and one of this format with other settings or data
    write_json(
        out / "run.json",
        {
            "format_version": FORMAT_VERSION,
            "recipe": "synthetic",
            "settings": {},
            "data_root": str(tmp_path / "typo"),
        },
    )
    with pytest.raises(ConfigError, match="different settings"):
        run_recipe("synthetic", data_root=tmp_path / "typo", out_dir=out)


def test_ensemble_run_averages_members_trained_like_runs_of_their_seeds(
    tiny_corpus, tmp_path, monkeypatch, warm_cache
):
    """``training.members=2``: each fold and the final model average two members, member j
    trained as a run with seed + j - 1 would be; test speakers stay out of every member."""
    import numpy as np
    import pandas as pd

    import ser.training.fit
    from ser.classifier import EmotionClassifier
    from ser.protocol import make_folds
    from ser.recipe import load_recipe
    from ser.training import run_recipe

    trained = []
    real_train_model = ser.training.fit.train_model

    def spy(train_features, *args, train_copies=None, **kwargs):
        trained.append((train_features, train_copies))
        return real_train_model(train_features, *args, train_copies=train_copies, **kwargs)

    monkeypatch.setattr(ser.training.fit, "train_model", spy)
    out = tmp_path / "ens"
    results = run_recipe(
        "synthetic",
        data_root=tiny_corpus,
        out_dir=out,
        overrides=[*TINY, "training.members=2"],
        progress=False,
    )
    assert results["complete"] and "speaker_adapted" in results
    manifest = pd.read_csv(out / "manifest.csv")
    recipe = load_recipe("synthetic", TINY)
    folds = {seed: make_folds(manifest, recipe["protocol"], seed=seed) for seed in (0, 1)}
    # every member of every fold and of the final model cut crops from its training files'
    # copies at 0.9 and 1.1 speed (training.speeds), one pair per training file
    assert len(trained) == 2 * len(folds[0]) + 2
    for features, copies in trained:
        assert copies is not None and len(copies) == len(features)
        for f, (slow, fast) in zip(features, copies, strict=True):
            assert slow.shape[0] > f.shape[0] > fast.shape[0]
    for fold in folds[0]:
        r = json.loads((out / "folds" / f"fold_{fold.number:02d}" / "result.json").read_text())
        assert [m["member"] for m in r["members"]] == [1, 2] and [m["seed"] for m in r["members"]] == [0, 1]
        assert r["history"] == r["members"][0]["history"]
        for m in r["members"]:
            assert 0 <= m["ua"] <= 1 and 0 <= m["adapted_ua"] <= 1
            assert not set(m["validation_speakers"]) & set(r["test_speakers"])
    # one member reproduces the run of its seed: member 2 of a 2-member run is a 1-member run with seed 1
    single = run_recipe(
        "synthetic",
        data_root=tiny_corpus,
        out_dir=tmp_path / "seed1",
        folds="1",
        overrides=[*TINY, "training.seed=1"],
        final_model=False,
        progress=False,
    )
    r1 = json.loads((out / "folds" / "fold_01" / "result.json").read_text())
    # members' scores are the CNN's alone (the fold's "ua" fuses the functionals head)
    assert r1["members"][1]["ua"] == pytest.approx(single["folds"][0]["cnn"]["ua"])
    # each member chose its fusion weights on its own validation speakers, as the run of its
    # seed did; the ensemble fuses with their mean
    assert r1["members"][1]["fusion_weights"] == pytest.approx(single["folds"][0]["fusion_weights"])
    for kind in ("single", "adapted"):
        chosen = [m["fusion_weights"][kind] for m in r1["members"]]
        assert r1["fusion_weights"][kind] == pytest.approx(np.mean(chosen))
    c = EmotionClassifier.load(out / "model.keras")
    assert len(c.members) == 2 and c.info["members"] == 2 and c.info["member_seeds"] == [0, 1]
    assert c.head == "attention" and c.adapt_blocks == (4, 5) and c.time_stride == 16
    wavs = sorted(str(p) for p in tiny_corpus.rglob("*.wav"))
    before = c.classify(wavs[0]).scores
    means = [np.array(m.get_layer("bn5").moving_mean.numpy()) for m in c.members]
    c.set_speaker_reference(wavs[:6])  # both members adapt, and are restored
    assert c.adapted_files == 6
    for member, mean in zip(c.members, means, strict=True):
        assert not np.allclose(member.get_layer("bn5").moving_mean.numpy(), mean)
    c.set_speaker_reference(None)
    for member, mean in zip(c.members, means, strict=True):
        np.testing.assert_array_equal(member.get_layer("bn5").moving_mean.numpy(), mean)
    assert c.classify(wavs[0]).scores == pytest.approx(before, abs=1e-6)


def test_member_splits_keep_test_rows_out():
    import numpy as np
    import pandas as pd

    from ser.protocol import make_folds, member_splits
    from ser.recipe import TrainingConfig

    manifest = pd.DataFrame(
        {
            "path": [f"{i}.wav" for i in range(120)],
            "label": np.arange(120) % 4,
            "speaker": [f"s{i % 12}" for i in range(120)],
        }
    )
    protocol = {"kind": "group_kfold", "group": "speaker", "k": 4, "seed": 0}
    training = TrainingConfig(seed=3, members=3)
    folds = make_folds(manifest, protocol, seed=3)
    for fold in folds:
        splits = member_splits(manifest, fold, protocol, training)
        assert [s.seed for s in splits] == [3, 4, 5]
        assert (
            np.array_equal(splits[0].train, fold.train)
            and splits[0].validation_groups == fold.validation_groups
        )
        for s, other in zip(
            splits[1:],
            (make_folds(manifest, protocol, seed=4), make_folds(manifest, protocol, seed=5)),
            strict=True,
        ):
            same = other[fold.number - 1]
            assert np.array_equal(s.train, same.train) and np.array_equal(s.validation, same.validation)
        for s in splits:
            assert not set(s.train) & set(fold.test) and not set(s.validation) & set(fold.test)
            assert sorted([*s.train, *s.validation]) == sorted([*fold.train, *fold.validation])
    final = member_splits(manifest, None, protocol, training)
    assert all(len(s.train) + len(s.validation) == 120 for s in final)
    assert len({s.validation_groups for s in final}) > 1  # members hold out different speakers


def test_functionals_head_is_fused_and_each_expert_is_reported(tiny_run, tiny_corpus):
    import numpy as np

    from ser.audio import load_audio
    from ser.classifier import EmotionClassifier
    from ser.functionals import utterance_functionals
    from ser.fusion import FUSION_GRID, fuse
    from ser.preprocessor import model_features
    from ser.runtime import softmax

    out, results = tiny_run
    assert set(results["parts"]) == {"cnn", "functionals"}
    assert {"ua_mean", "adapted_ua_mean"} <= set(results["parts"]["cnn"])
    for f in results["folds"]:
        r = json.loads((out / "folds" / f"fold_{f['fold']:02d}" / "result.json").read_text())
        assert r["cnn"] == f["cnn"] and 0 <= r["cnn"]["adapted_ua"] <= 1
        assert 0 <= r["functionals"]["ua"] <= 1 and 0 <= r["functionals"]["adapted_ua"] <= 1
        # the CNN's weights, chosen on the fold's validation speakers
        assert r["fusion_weights"] == f["fusion_weights"]
        assert {r["fusion_weights"]["single"], r["fusion_weights"]["adapted"]} <= set(FUSION_GRID)
    md = (out / "results.md").read_text()
    assert "Alone, the CNN scores UA" in md and "chosen on the fold's validation speakers" in md
    c = EmotionClassifier.load(out)
    assert c.functionals is not None and c.functionals.n_classes == len(c.labels)
    assert {c.functionals.weight, c.functionals.speaker_weight} <= set(FUSION_GRID)
    wavs = sorted(str(p) for p in tiny_corpus.rglob("*.wav"))
    y = load_audio(wavs[0], c.sample_rate, max_duration=None)
    logits = c.logits([model_features(c, y)])
    own = c.functionals.log_probabilities(utterance_functionals(y, c.sample_rate)[None])
    expected = softmax(fuse(logits, own, c.functionals.weight))[0]
    assert list(c.classify(wavs[0]).scores.values()) == pytest.approx(expected.tolist(), abs=1e-6)
    c.set_speaker_reference(wavs[:4])  # too few to adapt to
    assert c.functionals_reference is None and c.adapted_files == 0
    c.set_speaker_reference(wavs[:6])
    assert c.functionals_reference is not None and c.adapted_files == 6
    adapted = c.classify(wavs[0]).scores
    reference = c.functionals.log_probabilities(
        utterance_functionals(y, c.sample_rate)[None], c.functionals_reference
    )
    expected = softmax(fuse(c.logits([model_features(c, y)]), reference, c.functionals.speaker_weight))[0]
    assert list(adapted.values()) == pytest.approx(expected.tolist(), abs=1e-6)
    c.set_speaker_reference(None)
    assert c.functionals_reference is None
    assert np.allclose(
        list(c.classify(wavs[0]).scores.values()),
        softmax(fuse(logits, own, c.functionals.weight))[0],
        atol=1e-6,
    )


@pytest.mark.parametrize(
    ("speeds", "message"),
    [
        ([1.0], r"training\.speeds must be a list of distinct speed factors from 0\.5 to 2, other than 1"),
        (0.9, r"Received: training\.speeds=0\.9"),
        ([0.9, 0.9], r"Received: training\.speeds=\[0\.9, 0\.9\]"),
        (["fast"], r"training\.speeds must be a list"),
    ],
)
def test_bad_training_speeds_are_refused(speeds, message):
    from ser.recipe import TrainingConfig

    with pytest.raises(ConfigError, match=message):
        TrainingConfig(speeds=speeds)


def test_silent_windows_get_the_cnn_alone_and_a_head_without_speakers_is_never_referenced(
    tiny_run, tiny_corpus
):
    import numpy as np

    from ser.audio import load_audio
    from ser.classifier import EmotionClassifier
    from ser.fusion import FunctionalsHead
    from ser.runtime import softmax

    c = EmotionClassifier.load(tiny_run[0])
    wavs = sorted(str(p) for p in tiny_corpus.rglob("*.wav"))
    y = load_audio(wavs[0], c.sample_rate)
    logits = np.random.default_rng(0).normal(0, 1, (2, len(c.labels)))
    probs = c.fused(logits, [np.zeros_like(y), y])
    np.testing.assert_allclose(probs[0], softmax(logits[:1])[0])
    assert not np.allclose(probs[1], softmax(logits[1:])[0])
    h = c.functionals
    c.functionals = FunctionalsHead(h.mean, h.std, h.coef, h.intercept)  # no per-speaker variant
    c.set_speaker_reference(wavs[:6])
    assert c.functionals_reference is None and c.adapted_files == 6


def test_a_quieter_or_louder_recording_gets_the_same_prediction(tiny_run, tiny_corpus, tmp_path):
    """The level normalisation end to end: whole files, windows and a speaker scaled as a whole."""
    import numpy as np
    import soundfile as sf

    from ser.audio import load_audio
    from ser.classifier import EmotionClassifier

    c = EmotionClassifier.load(tiny_run[0])
    assert c.frontend.level_db is not None and c.functionals is not None
    wavs = sorted(str(p) for p in tiny_corpus.rglob("*.wav"))
    y = load_audio(wavs[0], c.sample_rate)
    y = 0.5 * y / np.abs(y).max()
    long = np.concatenate([y] * 6)
    for gain in (0.01, 0.3, 1.9):
        for a, b in ((y, gain * y), (long, gain * long)):
            base, scaled = c.classify(a, sample_rate=c.sample_rate), c.classify(b, sample_rate=c.sample_rate)
            assert list(scaled.scores.values()) == pytest.approx(list(base.scores.values()), abs=1e-4)
            assert len(scaled.segments) == len(base.segments)
    # adapted: the level against the speaker's other recordings counts, the gain of all of them not
    quiet = []
    for i, w in enumerate(wavs[:6]):
        quiet.append(str(tmp_path / f"quiet{i}.wav"))
        sf.write(quiet[-1], 0.1 * load_audio(w, c.sample_rate), c.sample_rate, subtype="FLOAT")
    c.set_speaker_reference(wavs[:6])
    adapted = c.classify(y, sample_rate=c.sample_rate).scores
    c.set_speaker_reference(quiet)
    assert list(c.classify(0.1 * y, sample_rate=c.sample_rate).scores.values()) == pytest.approx(
        list(adapted.values()), abs=1e-4
    )


def test_folds_that_cannot_be_made_fail_before_any_feature(tmp_path, capsys):
    from ser.cli import main
    from tests.corpora import fixtures as fx

    root = fx.make_ravdess(tmp_path / "ravdess")  # 3 actors: too few for the recipe's 6 folds
    out = tmp_path / "runs" / "r"
    assert main(["train", "ravdess", "--data-root", str(root), "--out", str(out)]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"ser train: error: ravdess at {root}: 6 folds need at least 6 speakers; found 3: "
        "set fewer folds, e.g. --set protocol.k=3"
    )
    assert (
        main(
            [
                "train",
                "ravdess",
                "--data-root",
                str(root),
                "--out",
                str(out),
                "--set",
                "protocol.k=3",
                "--folds",
                "4",
            ]
        )
        == 2
    )
    assert "--folds must be between 1 and 3" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()  # nothing extracted, nothing written


def test_files_whose_audio_is_unusable_are_reported_together_and_skipped_on_request(
    tiny_corpus, tmp_path, capsys, warm_cache
):
    # headers fine, audio not: found by check's decoding and while extracting features, all
    # of them named at once
    import shutil

    import numpy as np
    import pandas as pd
    import soundfile as sf

    from ser.cli import main

    root = tmp_path / "corpus"
    shutil.copytree(tiny_corpus, root)
    sf.write(root / "spk01" / "spk01_angry_01.wav", np.zeros(16000, np.float32), 16000)
    sf.write(root / "spk02" / "spk02_sad_02.wav", np.full(8000, np.nan, np.float32), 16000, subtype="FLOAT")
    settings = [a for s in TINY for a in ("--set", s)]
    args = ["train", "synthetic", "--data-root", str(root), "--folds", "1", "--no-final", *settings]
    check = ["check", "synthetic", "--data-root", str(root), *settings]
    for command in ([*args, "--out", str(tmp_path / "a")], check):
        assert main(command) == 2
        err = capsys.readouterr().err
        assert "2 problem(s) in 2 file(s)" in err
        assert "spk01/spk01_angry_01.wav: silent (no sample above -80 dB full scale); expected speech" in err
        assert "spk02/spk02_sad_02.wav: contains 8000 NaN or infinite samples; expected finite audio" in err
        assert "Traceback" not in err
    assert main([*check, "--skip-bad"]) == 0
    out, err = capsys.readouterr()
    assert "--skip-bad: skipped the 2 file(s) listed out of 36; using the remaining 34 utterance(s)" in err
    assert "34 utterances" in out
    assert main([*args, "--out", str(tmp_path / "b"), "--skip-bad"]) == 0
    assert "--skip-bad: skipped the 2 file(s) listed out of 36; using the remaining 34 utterance(s)" in (
        capsys.readouterr().err
    )
    manifest = pd.read_csv(tmp_path / "b" / "manifest.csv")
    assert len(manifest) == 34 and not manifest["path"].str.contains("spk01_angry_01|spk02_sad_02").any()
    # the files fixed, a rerun does not keep a fold trained or tested without them
    for name in ("spk01/spk01_angry_01.wav", "spk02/spk02_sad_02.wav"):
        shutil.copy(tiny_corpus / name, root / name)
    assert main([*args, "--out", str(tmp_path / "b")]) == 0
    assert "done in an earlier run" not in capsys.readouterr().err
    assert main([*args, "--out", str(tmp_path / "b")]) == 0
    assert "done in an earlier run" in capsys.readouterr().err


def test_check_shows_the_table_when_skipping_unusable_files_leaves_too_few_speakers(
    tiny_corpus, tmp_path, capsys
):
    import shutil

    import numpy as np
    import soundfile as sf

    from ser.cli import main

    root = tmp_path / "corpus"
    shutil.copytree(tiny_corpus, root)
    for path in (root / "spk03").glob("*.wav"):
        sf.write(path, np.zeros(16000, np.float32), 16000)
    assert main(["check", "synthetic", "--data-root", str(root), "--skip-bad"]) == 2
    out, err = capsys.readouterr()
    assert "utterances per speaker and label:" in out and "spk03" not in out
    assert "--skip-bad: skipped the 12 file(s) listed" in err
    assert f"error: synthetic at {root}: 3 folds need at least 3 speakers; found 2: set fewer folds" in err


def _broken_ravdess(root):
    """A 3-actor RAVDESS copy of 31 files, 7 of them bad in every way a user review found."""
    import numpy as np
    import soundfile as sf

    from tests.corpora import fixtures as fx

    for actor in (1, 2, 3):
        for emotion in range(1, 9):
            fx.write_wav(root / f"Actor_{actor:02d}" / fx.ravdess_name(emotion, actor))
    folder = root / "Actor_01"
    fx.write_wav(folder / "hello.wav")  # misnamed
    fx.write_wav(folder / fx.ravdess_name(3, 2, statement=2))  # actor 02 in Actor_01
    fx.write_wav(folder / fx.ravdess_name(9, 1, statement=2))  # emotion 09
    fx.write_text_as_wav(folder / fx.ravdess_name(4, 1, statement=2))
    fx.write_empty(folder / fx.ravdess_name(5, 1, statement=2))
    fx.write_wav(folder / fx.ravdess_name(6, 1, statement=2), seconds=0.05)
    sf.write(folder / fx.ravdess_name(7, 1, statement=2), np.zeros(8000, np.float32), 16000)  # silent
    return root


def test_one_check_lists_every_problem_and_a_refused_train_writes_nothing(tmp_path, monkeypatch, capsys):
    from ser.cli import main

    root = _broken_ravdess(tmp_path / "fake")
    monkeypatch.chdir(tmp_path)  # a relative --data-root is named by its absolute path throughout
    assert main(["check", "ravdess", "--data-root", "fake"]) == 2
    error = capsys.readouterr().err.split("ser check: error: ", 1)[1]
    lines = error.splitlines()
    assert lines[0] == f"ravdess at {root}: 7 problem(s) in 7 file(s)"
    assert "unusable audio (1):" in lines
    assert (
        "  Actor_01/03-01-07-01-02-01-01.wav: silent (no sample above -80 dB full scale); expected speech to train on"
        in lines
    )
    assert "  Actor_01/hello.wav: expected MM-VC-EE-II-SS-RR-AA.wav such as 03-01-05-02-01-01-12.wav" in lines
    assert lines[-2].startswith("without the files listed: 24 utterances, but the full release has 1440 (")
    assert "; actors missing: Actor_04, Actor_05, " in lines[-2]
    assert str(tmp_path) not in "\n".join(lines[1:])  # paths relative to the root
    # train refuses with the same list, and leaves no trace in --out (nor creates it)
    assert main(["train", "ravdess", "--data-root", "fake", "--out", "runs/t"]) == 2
    assert capsys.readouterr().err.split("ser train: error: ", 1)[1] == error
    assert not (tmp_path / "runs").exists()
    # a refused rerun of an existing folder deletes nothing there and adds nothing
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "notes.txt").write_text("mine")
    assert main(["train", "ravdess", "--data-root", "fake", "--out", "old"]) == 2
    assert capsys.readouterr().err.split("ser train: error: ", 1)[1] == error
    assert [p.name for p in (tmp_path / "old").iterdir()] == ["notes.txt"]
    # --skip-bad: one list, counts that add up, then the folds' error in words
    assert main(["check", "ravdess", "--data-root", "fake", "--skip-bad"]) == 2
    out, err = capsys.readouterr()
    assert "ravdess: 24 utterances, 3 speakers, 8 labels" in out
    assert err.count("problem(s)") == 1
    assert "--skip-bad: skipped the 7 file(s) listed out of 31; using the remaining 24 utterance(s)." in err
    assert err.splitlines()[-1] == (
        f"ser check: error: ravdess at {root}: 6 folds need at least 6 speakers; found 3: "
        "set fewer folds, e.g. --set protocol.k=3"
    )


def test_check_and_train_name_a_linked_corpus_the_same_way(tmp_path, monkeypatch, capsys):
    from ser.cli import main

    root = _broken_ravdess(tmp_path / "fake")
    (tmp_path / "link").symlink_to(root)
    monkeypatch.chdir(tmp_path)
    assert main(["check", "ravdess", "--data-root", "link"]) == 2
    error = capsys.readouterr().err.split("ser check: error: ", 1)[1]
    assert error.startswith(f"ravdess at {root}: 7 problem(s) in 7 file(s)\n")
    assert main(["train", "ravdess", "--data-root", "link", "--out", "runs/t"]) == 2
    assert capsys.readouterr().err.split("ser train: error: ", 1)[1] == error


def test_a_corpus_of_one_class_is_refused_before_any_feature(tmp_path, capsys):
    from ser.cli import main
    from tests.corpora import fixtures as fx

    rows = ["path,label,speaker"]
    for i in range(6):
        fx.write_wav(tmp_path / "data" / f"{i}.wav")
        rows.append(f"{i}.wav,angry,s{i % 3}")
    csv = tmp_path / "data" / "m.csv"
    csv.write_text("\n".join(rows) + "\n")
    expected = f"custom at {csv}: every usable utterance is labelled 'angry'; expected at least 2 classes"
    assert main(["check", "custom", "--data-root", str(csv)]) == 2
    assert expected in capsys.readouterr().err
    assert main(["train", "custom", "--data-root", str(csv), "--out", str(tmp_path / "runs" / "r")]) == 2
    assert expected in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()
