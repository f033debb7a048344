"""Tests of ser.classifier: loading models, whole and windowed classification."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import json
import re
import zipfile

import numpy as np
import pytest
import soundfile as sf

import ser
from ser.classifier import EmotionClassifier, Prediction
from ser.errors import AudioError, ConfigError, ModelError
from ser.features import FrontendConfig, logmel, pad_batch
from ser.model import ModelConfig, build_model
from ser.normalization import feature_stats, standardize_utterance
from ser.preprocessor import model_features
from tests.signals import speaking_tone

LABELS = ["angry", "happy", "neutral", "sad"]
SR = 16000


def save_model(path, *, head="attention", labels=LABELS, info=None, **config):
    model = build_model(
        labels,
        64,
        ModelConfig(widths=(4, 4, 8, 8, 8), head=head, **config),
        frontend=FrontendConfig().to_dict(),
        info={"head": head, **(info or {})},
        seed=0,
    )
    model.save(path)
    return path


def noise(seconds, rate=SR, seed=0, scale=0.1):
    return (np.random.default_rng(seed).normal(0, scale, int(seconds * rate))).astype(np.float32)


def tone(seconds, freq, rate=SR, seed=0):
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * speaking_tone(t, freq) + noise(seconds, rate, seed, 0.01)).astype(np.float32)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("run")
    save_model(folder / "model.keras")
    return folder


@pytest.mark.parametrize("strided_blocks", [0, 1, 5])
def test_strides_count_pools_and_strided_convs(tmp_path, strided_blocks):
    path = save_model(tmp_path / "m.keras", strided_blocks=strided_blocks)
    loaded = EmotionClassifier.load(path)
    assert (loaded.time_stride, loaded.freq_stride) == (16, 8)


@pytest.fixture(scope="module")
def classifier(model_dir):
    return EmotionClassifier.load(model_dir / "model.keras")


# --- loading -------------------------------------------------------------------------


def test_load_file_and_run_folder(model_dir, classifier):
    from_folder = ser.load_model(model_dir)
    assert from_folder.labels == LABELS == classifier.labels
    assert from_folder.path == str(model_dir / "model.keras")
    assert classifier.frontend == FrontendConfig()
    assert classifier.head == "attention"
    assert (classifier.time_stride, classifier.freq_stride) == (16, 8)
    assert classifier.normalization == "global" and not classifier.standardizes_input


@pytest.fixture(scope="module")
def bad_models(tmp_path_factory, model_dir):
    d = tmp_path_factory.mktemp("bad")
    (d / "text.keras").write_text("this is not a model\n")
    (d / "random.keras").write_bytes(np.random.default_rng(0).bytes(4096))
    good = (model_dir / "model.keras").read_bytes()
    (d / "truncated.keras").write_bytes(good[: len(good) // 2])
    (d / "model.txt").write_bytes(good)
    with zipfile.ZipFile(d / "nojson.keras", "w") as z:
        z.writestr("hello.txt", "hi")
    (d / "empty_run").mkdir()
    (d / "no_final_run").mkdir()
    (d / "no_final_run" / "results.json").write_text("{}")
    import keras

    inp = keras.Input((3,))
    keras.Model(inp, keras.layers.Dense(2)(inp)).save(d / "plain.keras")
    inp = keras.Input((3,))
    keras.Model(inp, keras.layers.Lambda(lambda z: z * 2)(inp)).save(d / "lambda.keras")
    return d


@pytest.mark.parametrize(
    "name, match",
    [
        ("missing.keras", r"missing\.keras: not found; expected a model\.keras file"),
        ("empty_run", r"empty_run: folder holds no model\.keras"),
        ("no_final_run", r"no_final_run: run folder without a final model\.keras \(trained with --no-final"),
        ("text.keras", r"text\.keras: not a Keras model archive"),
        ("random.keras", r"random\.keras: not a Keras model archive"),
        ("truncated.keras", r"truncated\.keras: not a Keras model archive"),
        ("model.txt", r"model\.txt: not a \.keras file"),
        ("nojson.keras", r"nojson\.keras: zip archive without config\.json"),
        ("plain.keras", r"plain\.keras: not a ser model \(no 'ser_metadata' layer\)"),
        ("lambda.keras", r"lambda\.keras: cannot load the model \(.*Lambda"),
    ],
)
def test_bad_model_files(bad_models, name, match):
    with pytest.raises(ModelError, match=match):
        ser.load_model(bad_models / name)


@pytest.mark.parametrize("version, text", [(None, "no format version"), (0, "format version 0")])
def test_a_model_of_another_format_version_is_refused(tmp_path, version, text):
    from ser.constants import FORMAT_VERSION

    model = build_model(LABELS, 64, ModelConfig(widths=(4, 4, 8, 8, 8)), frontend=FrontendConfig().to_dict())
    info = model.get_layer("ser_metadata").info
    assert info["format_version"] == FORMAT_VERSION  # stamped where the model is built
    if version is None:
        del info["format_version"]
    else:
        info["format_version"] = version
    model.save(tmp_path / "old.keras")
    with pytest.raises(
        ModelError,
        match=rf"^{re.escape(str(tmp_path / 'old.keras'))}: written in {text}.*; this ser reads format",
    ):
        EmotionClassifier.load(tmp_path / "old.keras")


def test_unknown_normalization_is_refused(tmp_path):
    path = save_model(tmp_path / "odd.keras", info={"normalization": "cepstral"})
    with pytest.raises(ModelError, match=r"odd\.keras: unknown feature normalization 'cepstral'"):
        EmotionClassifier.load(path)


# --- whole utterances ----------------------------------------------------------------


def test_classify_array_at_8k(model_dir):
    prediction = ser.load_model(model_dir).classify(noise(3.0, rate=8000), sample_rate=8000)
    assert isinstance(prediction, Prediction)
    d = prediction.to_dict()
    assert list(d) == ["file", "duration", "label", "scores", "speech", "segments"]
    assert d["file"] is None and d["segments"] == []
    assert d["speech"] is False  # noise
    assert d["duration"] == pytest.approx(3.0)
    assert list(d["scores"]) == LABELS
    assert all(isinstance(p, float) for p in d["scores"].values())
    assert sum(d["scores"].values()) == pytest.approx(1.0, abs=1e-9)
    assert d["label"] == max(d["scores"], key=d["scores"].get)
    assert prediction.probability == d["scores"][d["label"]]
    assert json.loads(json.dumps(d)) == d


def test_classify_file_equals_array(classifier, tmp_path):
    y = noise(2.0, seed=3)
    sf.write(tmp_path / "a.wav", y, SR, subtype="FLOAT")
    from_file = classifier.classify(tmp_path / "a.wav")
    from_array = classifier.classify(y, sample_rate=SR)
    assert from_file.file == str(tmp_path / "a.wav")
    assert from_file.label == from_array.label
    for label in LABELS:
        assert from_file.scores[label] == pytest.approx(from_array.scores[label], abs=1e-6)


def test_silence_is_an_error_but_silent_windows_of_long_audio_are_classified(classifier, tmp_path):
    for audio in (np.zeros(SR, np.float32), np.zeros(20 * SR, np.int16)):  # whole, windowed
        with pytest.raises(AudioError, match=r"<array>: silent"):
            classifier.classify(audio, sample_rate=SR)
    sf.write(tmp_path / "silent.wav", np.zeros(SR, np.float32), SR)
    with pytest.raises(AudioError, match=r"silent\.wav: silent .*expected a recording of speech"):
        classifier.classify(tmp_path / "silent.wav")
    mostly_silent = np.zeros(20 * SR, np.float32)
    mostly_silent[: 2 * SR] = noise(2.0, seed=3)
    prediction = classifier.classify(mostly_silent, sample_rate=SR)  # windowed
    p = np.array(list(prediction.scores.values()))
    assert np.all(np.isfinite(p)) and p.sum() == pytest.approx(1.0)
    assert len(prediction.segments) > 5
    for seg in prediction.segments:
        assert np.all(np.isfinite(list(seg.scores.values())))


@pytest.mark.parametrize("normalization", ["utterance", "speaker"])
def test_inputs_standardised_by_their_own_statistics(tmp_path, normalization):
    path = save_model(tmp_path / "utt.keras", info={"normalization": normalization})
    c = EmotionClassifier.load(path)
    assert c.normalization == normalization and c.standardizes_input
    y = noise(1.5, seed=1)
    f = model_features(c, y)
    raw = logmel(y, c.frontend)
    assert f.shape == raw.shape == (151, 64)
    np.testing.assert_allclose(f.mean(axis=0), 0.0, atol=1e-4)
    np.testing.assert_allclose(f.std(axis=0), 1.0, atol=1e-3)
    np.testing.assert_allclose(f, standardize_utterance(raw), atol=1e-6)
    # silence: constant bands standardise to zeros, not NaN
    assert np.array_equal(model_features(c, np.zeros(SR, np.float32)), np.zeros((101, 64), np.float32))
    # classify feeds exactly these features
    expected = c.probabilities([f])[0]
    got = c.classify(y, sample_rate=SR).scores
    np.testing.assert_allclose([got[k] for k in LABELS], expected, atol=1e-6)


def test_padding_and_batching_do_not_change_probabilities(classifier):
    a = model_features(classifier, noise(2.5, seed=4))
    b = model_features(classifier, noise(1.0, seed=5))
    alone = classifier.probabilities([a])[0]
    together = classifier.probabilities([b, a, b])[1]
    np.testing.assert_allclose(alone, together, atol=1e-5)


def test_eager_and_compiled_calls_agree(classifier):
    c = EmotionClassifier(classifier.model, classifier.path)  # a fresh call count
    f = [model_features(c, noise(1.0, seed=6))]
    outputs = [c.logits(f) for _ in range(4)]  # the first calls are eager, then a traced graph
    assert c._graph is not None
    for out in outputs[1:]:
        np.testing.assert_allclose(out, outputs[0], atol=1e-5)


@pytest.mark.parametrize(
    "audio, rate, match",
    [
        (np.zeros(800, np.float32), 16000, r"too short \(50 ms\)"),
        (np.full(16000, np.nan, np.float32), 16000, r"16000 NaN or infinite samples"),
        (np.zeros(16000, np.float32), 16000, r"<array>: silent \(no sample above -80 dB full scale\)"),
        (np.full(16000, 3e-5, np.float32), 16000, r"silent"),
    ],
)
def test_bad_arrays(classifier, audio, rate, match):
    with pytest.raises(AudioError, match=match):
        classifier.classify(audio, sample_rate=rate)


def test_bad_arguments(classifier, tmp_path):
    with pytest.raises(ConfigError, match=r"sample_rate is required when audio is an array"):
        classifier.classify(noise(1.0))
    sf.write(tmp_path / "a.wav", noise(1.0), SR)
    with pytest.raises(ConfigError, match=r"sample_rate is for arrays.*Received: sample_rate=8000"):
        classifier.classify(tmp_path / "a.wav", sample_rate=8000)
    with pytest.raises(ConfigError, match=r"file path or a numpy array.*Received: list"):
        classifier.classify([0.0] * 16000, sample_rate=SR)
    with pytest.raises(AudioError, match=r"nothere\.wav: file not found"):
        classifier.classify(tmp_path / "nothere.wav")


# --- the right answer ----------------------------------------------------------------


def _train_low_high(path):
    """A tiny model that tells a low tone (250-400 Hz) from a high one (2.5-4 kHz)."""
    import keras

    rng = np.random.default_rng(0)
    clips, labels = [], []
    for i in range(24):
        cls = i % 2
        freq = rng.uniform(250, 400) if cls == 0 else rng.uniform(2500, 4000)
        clips.append(tone(1.0, freq, seed=i))
        labels.append(cls)
    frontend = FrontendConfig()
    feats = [logmel(y, frontend) for y in clips]
    mean, var = feature_stats(feats)
    model = build_model(
        ["low", "high"],
        64,
        ModelConfig(widths=(4, 4, 8, 8, 8), dropout=0.0),
        mean=mean,
        variance=var,
        frontend=frontend.to_dict(),
        info={"head": "attention"},
        seed=0,
    )
    for layer in model.layers:  # let the moving statistics settle within the few steps below
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = 0.5
    x, m = pad_batch(feats, multiple=16)
    model.compile(
        optimizer=keras.optimizers.Adam(1e-2),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        run_eagerly=True,  # tracing the train step costs more than 8 eager epochs
    )
    model.fit([x, m], np.array(labels), epochs=8, batch_size=24, verbose=0)
    model.save(path)
    return path


def test_trained_model_gives_the_right_answer(tmp_path):
    c = ser.load_model(_train_low_high(tmp_path / "lowhigh.keras"))
    assert c.classify(tone(2.0, 320.0, seed=100), sample_rate=SR).label == "low"
    assert c.classify(tone(2.0, 3200.0, seed=101), sample_rate=SR).label == "high"
    # 20 s low then 20 s high, streamed from disk: the timeline follows the change
    path = tmp_path / "low_then_high.wav"
    sf.write(path, np.concatenate([tone(20.0, 300.0, seed=7), tone(20.0, 3000.0, seed=8)]), SR)
    prediction = c.classify(path)
    labels = [s.label for s in prediction.segments]
    assert len(labels) == 19
    assert labels[:9] == ["low"] * 9 and labels[-9:] == ["high"] * 9
    assert prediction.segments[0].scores["low"] > 0.8 and prediction.segments[-1].scores["high"] > 0.8


def test_leading_and_trailing_silence_is_trimmed_as_in_training(classifier):
    # Training trims silence more than trim_db below the loudest frame; whole-utterance
    # classification must do the same, so added silence changes almost nothing (only the one
    # or two frames whose windows straddle the edge of the tone are added).
    y = tone(1.5, 440) + noise(1.5, scale=0.05)
    silence = np.zeros(SR, dtype=np.float32)
    a = classifier.classify(y, sample_rate=SR).scores
    b = classifier.classify(np.concatenate([silence, y, silence]), sample_rate=SR).scores
    for k in a:
        assert b[k] == pytest.approx(a[k], abs=0.01)


def test_speaker_reference_normalises_speaker_models(tmp_path):
    # A "speaker" model standardises inputs by the statistics of the speaker's reference files.
    from ser.classifier import EmotionClassifier
    from ser.features import FrontendConfig, logmel, trim_silence
    from ser.normalization import feature_stats
    from ser.preprocessor import model_features

    path = save_model(tmp_path / "spk.keras", info={"normalization": "speaker"})
    clf = EmotionClassifier.load(path)
    refs = [tone(1.0, 300), tone(1.2, 500, seed=1)]
    clf.set_speaker_reference(refs, sample_rate=SR)
    fe = FrontendConfig()
    mean, var = feature_stats([trim_silence(logmel(r, fe), fe.trim_db) for r in refs])
    y = tone(1.0, 400, seed=2)
    expected = (trim_silence(logmel(y, fe), fe.trim_db) - mean) / np.sqrt(var)
    np.testing.assert_allclose(model_features(clf, y), expected, rtol=1e-5, atol=1e-5)
    clf.set_speaker_reference(None)
    own = model_features(clf, y)
    np.testing.assert_allclose(own.mean(axis=0), 0, atol=1e-4)  # falls back to its own statistics
    for name, r in zip(("a.wav", "b.wav"), refs, strict=True):
        sf.write(tmp_path / name, r, SR)
    from ser.cli import main

    assert (
        main(["classify", str(path), str(tmp_path / "a.wav"), str(tmp_path / "b.wav"), "--same-speaker"]) == 0
    )


def test_same_speaker_adapts_batchnorm_of_adapting_models(tmp_path, capsys):
    # A model trained with adapt_blocks re-estimates those blocks' batch-norm statistics from
    # the speaker's recordings, exactly as ser.adaptation does in cross-validation.
    from ser.adaptation import adapted, batchnorm_state
    from ser.classifier import EmotionClassifier
    from ser.cli import main
    from ser.preprocessor import model_features

    path = save_model(tmp_path / "ada.keras", info={"adapt_blocks": [4, 5]})
    clf = EmotionClassifier.load(path)
    assert clf.adapt_blocks == (4, 5)
    refs = [tone(1.0 + 0.1 * i, 200 + 90 * i, seed=i) for i in range(6)]
    trained = batchnorm_state(clf.model, [4, 5])
    plain = clf.probabilities([model_features(clf, r) for r in refs])
    clf.set_speaker_reference(refs, sample_rate=SR)
    assert clf.adapted_files == 6
    # what the model heard in each recording before adapting is kept
    assert clf.reference_labels == [clf.labels[i] for i in plain.argmax(1)]
    feats = [model_features(clf, r) for r in refs]
    got = clf.probabilities(feats)
    clf.set_speaker_reference(None)  # back to the training statistics
    assert clf.adapted_files == 0
    for (m0, v0), (m1, v1) in zip(trained, batchnorm_state(clf.model, [4, 5]), strict=True):
        np.testing.assert_array_equal(m0, m1)
        np.testing.assert_array_equal(v0, v1)
    np.testing.assert_allclose(clf.probabilities(feats), plain, rtol=1e-5, atol=1e-6)
    with adapted(clf.model, feats, [4, 5]):
        np.testing.assert_allclose(got, clf.probabilities(feats), rtol=1e-5, atol=1e-6)
    assert not np.allclose(got, plain, atol=1e-4)
    # silent recordings take no part; only silent ones are no reference at all
    silent = np.zeros(SR, np.float32)
    clf.set_speaker_reference([silent, *refs[:5]], sample_rate=SR)
    assert clf.adapted_files == 5 and len(clf.reference_labels) == 5
    with pytest.raises(ConfigError, match="at least one recording that is not silent"):
        clf.set_speaker_reference([silent, silent], sample_rate=SR)
    # too few recordings: not adapted
    clf.set_speaker_reference(refs[:2], sample_rate=SR)
    assert clf.adapted_files == 0
    # the command line says what it did
    names = []
    for i, r in enumerate(refs):
        sf.write(tmp_path / f"r{i}.wav", r, SR)
        names.append(str(tmp_path / f"r{i}.wav"))
    assert main(["classify", str(path), *names, "--same-speaker"]) == 0
    assert "re-estimated from 6 recordings" in capsys.readouterr().err
    assert main(["classify", str(path), *names[:2], "--same-speaker"]) == 0
    assert "too few to adapt to" in capsys.readouterr().err


def test_models_without_adapt_blocks_are_not_adapted(classifier):
    assert classifier.adapt_blocks == ()
    classifier.set_speaker_reference([tone(1.0, 300 + 50 * i, seed=i) for i in range(6)], sample_rate=SR)
    assert classifier.adapted_files == 0
    classifier.set_speaker_reference(None)
