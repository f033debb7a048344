"""Tests of ser.windows: window settings, windows from blocks, the vote over voiced windows."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import pytest
import soundfile as sf

from ser.classifier import EmotionClassifier
from ser.errors import ConfigError
from ser.windows import DEFAULT_HOP, DEFAULT_WINDOW, check_window, iter_windows
from tests.test_classifier import LABELS, SR, noise, save_model, tone


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    return EmotionClassifier.load(save_model(tmp_path_factory.mktemp("run") / "model.keras"))


# --- windows -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "window, hop, match",
    [
        (0, None, r"window must be a positive number of seconds\. Received: window=0"),
        (-1.0, None, r"Received: window=-1\.0"),
        (float("nan"), None, r"Received: window=nan"),
        (None, 0, r"hop must be a positive number of seconds\. Received: hop=0"),
        (0.05, None, r"window must be at least 0\.1 s\. Received: window=0\.05"),
        (2.0, 3.0, r"hop must not exceed the window.*Received: window=2\.0, hop=3\.0"),
        (None, 5.0, r"Received: window=4\.0, hop=5\.0"),
        (601.0, None, r"window must be at most 600 s .*Received: window=601"),
        (None, 0.001, r"hop must be at least 0\.1 s\. Received: hop=0\.001"),
        (0.5, 0.05, r"hop must be at least 0\.1 s\. Received: hop=0\.05"),
    ],
)
def test_window_validation(classifier, window, hop, match):
    with pytest.raises(ConfigError, match=match):
        classifier.classify(noise(1.0), sample_rate=SR, window=window, hop=hop)


def test_window_defaults():
    assert check_window(None, None) == (DEFAULT_WINDOW, DEFAULT_HOP) == (4.0, 2.0)
    assert check_window(3.0, None) == (3.0, 1.5)
    assert check_window(None, 1.0) == (4.0, 1.0)
    assert check_window(0.15, None) == (0.15, 0.1)  # half a window, but at least 0.1 s


def test_long_windows_go_through_the_model_a_bounded_amount_of_audio_at_a_time(classifier, monkeypatch):
    # 16 windows of 120 s at once took 2.8 GB: a batch holds at most BATCH_SECONDS of audio
    from ser.windows import BATCH_SECONDS, BATCH_WINDOWS

    frames = []
    logits = classifier.logits
    monkeypatch.setattr(
        classifier, "logits", lambda feats: frames.append(sum(map(len, feats))) or logits(feats)
    )
    prediction = classifier.classify(noise(100.0), sample_rate=SR, window=30.0, hop=5.0)
    assert len(prediction.segments) == 15
    assert len(frames) > 1 and max(frames) <= BATCH_SECONDS * classifier.frontend.frame_rate + 1
    frames.clear()
    assert len(classifier.classify(noise(40.0), sample_rate=SR, window=2.0).segments) == 39
    assert len(frames) == 3 and BATCH_WINDOWS == 16  # short windows: still 16 at a time


def test_iter_windows_exact_spans():
    y = np.arange(10, dtype=np.float32)
    spans = [(s, len(w)) for s, w in iter_windows([y], 4, 2)]
    assert spans == [(0, 4), (2, 4), (4, 4), (6, 4)]  # the last one ends at the end
    spans = [(s, len(w)) for s, w in iter_windows([y], 4, 4)]
    assert spans == [(0, 4), (4, 4), (6, 4)]  # an end-aligned window covers the tail
    assert [(s, len(w)) for s, w in iter_windows([y[:3]], 4, 2)] == [(0, 3)]  # shorter than a window
    # any split into blocks gives the same windows, with the right samples
    blocks = [y[:1], y[1:2], y[2:7], y[7:]]
    for (s1, w1), (s2, w2) in zip(iter_windows(blocks, 4, 3), iter_windows([y], 4, 3), strict=True):
        assert s1 == s2 and np.array_equal(w1, w2) and np.array_equal(w1, y[s1 : s1 + 4])


def test_windows_without_speech_are_listed_but_do_not_vote(classifier):
    voiced = tone(20.0, 150.0)  # periodic at a speaking pitch: voiced frames
    hiss = noise(20.0, seed=3, scale=0.3)  # as loud, but no pitch: not speech
    prediction = classifier.classify(np.concatenate([voiced, hiss]), sample_rate=SR)
    segments = prediction.segments
    assert len(segments) == 19 and prediction.speech
    voting = [s for s in segments if s.start < 20.0]  # the windows with voiced audio in them
    assert [s.counted for s in segments] == [s.start < 20.0 for s in segments]
    mean = np.mean([[s.scores[k] for k in LABELS] for s in voting], axis=0)
    np.testing.assert_allclose([prediction.scores[k] for k in LABELS], mean / mean.sum(), atol=1e-6)
    everyone = np.mean([[s.scores[k] for k in LABELS] for s in segments], axis=0)
    assert not np.allclose([prediction.scores[k] for k in LABELS], everyone, atol=1e-3)
    # ordinary speech 30 dB under shouting still votes: loudness does not decide
    softer = classifier.classify(np.concatenate([voiced, 0.03 * tone(20.0, 180.0, seed=1)]), sample_rate=SR)
    assert all(s.counted for s in softer.segments) and softer.speech
    # no speech anywhere: every window votes, and the prediction says there is no speech
    only_hiss = classifier.classify(noise(20.0, seed=4), sample_rate=SR)
    assert all(s.counted for s in only_hiss.segments) and not only_hiss.speech
    assert not classifier.classify(noise(3.0, seed=4), sample_rate=SR).speech  # a whole file too
    assert classifier.classify(tone(3.0, 150.0), sample_rate=SR).speech


def test_long_file_is_windowed_and_streamed(classifier, tmp_path):
    path = tmp_path / "long.wav"
    sf.write(path, noise(60.0, rate=8000, seed=2), 8000)  # resampled while streaming
    prediction = classifier.classify(path)
    assert prediction.duration == pytest.approx(60.0)
    segments = prediction.segments
    assert len(segments) == 29
    assert [s.start for s in segments] == pytest.approx([2.0 * i for i in range(29)])
    assert all(s.end - s.start == pytest.approx(4.0) for s in segments)
    assert segments[0].start == 0.0 and segments[-1].end == pytest.approx(60.0)
    mean = np.mean([[s.scores[k] for k in LABELS] for s in segments], axis=0)
    np.testing.assert_allclose([prediction.scores[k] for k in LABELS], mean, atol=1e-9)
    assert prediction.label == LABELS[int(np.argmax(mean))]
    assert sum(prediction.scores.values()) == pytest.approx(1.0)
    d = prediction.to_dict()
    assert list(d["segments"][0]) == ["start", "end", "label", "scores", "counted"]
    assert all(s["counted"] for s in d["segments"])
    # a window scores what that stretch scores on its own
    alone = classifier.classify(_resampled(path)[6 * SR : 10 * SR], sample_rate=SR)
    for k in LABELS:
        assert segments[3].scores[k] == pytest.approx(alone.scores[k], abs=1e-5)


def _resampled(path):
    from ser.audio import load_audio

    return load_audio(path, SR)


def test_window_option_on_short_audio(classifier):
    prediction = classifier.classify(noise(3.0), sample_rate=SR, window=1.0, hop=0.5)
    assert [(s.start, s.end) for s in prediction.segments] == [
        (0.0, 1.0),
        (0.5, 1.5),
        (1.0, 2.0),
        (1.5, 2.5),
        (2.0, 3.0),
    ]
    # audio no longer than one window is classified whole (trimmed), as without --window
    one = classifier.classify(noise(3.0), sample_rate=SR, window=5.0)
    whole = classifier.classify(noise(3.0), sample_rate=SR)
    assert one.segments == [] and one.scores == pytest.approx(whole.scores)
    # a hop alone sets the hop of long audio's windows; a 5 s file is still classified whole
    hop_only = classifier.classify(noise(5.0), sample_rate=SR, hop=1.0)
    assert hop_only.segments == []
    assert len(classifier.classify(noise(14.0), sample_rate=SR, hop=1.0).segments) == 11
