"""The synthetic corpus: determinism, layout, caching, manifest, emotion cues, errors."""

from __future__ import annotations

import json
import os
import re

import librosa
import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from ser.corpora import synthetic
from ser.corpora.base import COLUMNS, CorpusWarning
from ser.corpora.synthesis import speaker_profile, synthesize_utterance
from ser.corpora.synthetic import CLASSES, generate, load
from ser.errors import ConfigError, CorpusError

SR = 16000
SMALL = dict(n_speakers=2, per_class=2, seed=3)  # 2 x 4 x 2 = 16 files


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def _wavs(root) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*.wav"))


def _mtimes(root) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}


def _age(root) -> None:
    """Set every file's mtime to a fixed past time, so that any rewrite shows."""
    for p in root.rglob("*"):
        if p.is_file():
            os.utime(p, ns=(1_000_000_000_000_000_000, 1_000_000_000_000_000_000))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return generate(tmp_path_factory.mktemp("synthetic"), **SMALL)


# --- synthesize_utterance -------------------------------------------------------------


def test_same_seed_same_audio_other_seed_other_audio():
    a = synthesize_utterance("happy", 3, _rng(7))
    b = synthesize_utterance("happy", 3, _rng(7))
    c = synthesize_utterance("happy", 3, _rng(8))
    np.testing.assert_array_equal(a, b)
    assert a.shape != c.shape or not np.array_equal(a, c)


@pytest.mark.parametrize("label", CLASSES)
def test_waveform_is_finite_float32_below_full_scale(label):
    for seed in range(3):
        y = synthesize_utterance(label, 1 + seed, _rng(seed), duration=1.5)
        assert y.dtype == np.float32 and y.shape == (24000,)
        assert np.all(np.isfinite(y))
        peak = np.abs(y).max()
        assert 10 ** (-20 / 20) - 1e-6 <= peak <= 10 ** (-1 / 20) + 1e-6  # the drawn peak level
        assert np.sqrt(np.mean(y**2)) > 0.005  # not silence


def test_default_duration_and_other_sample_rate():
    lengths = [synthesize_utterance("neutral", 2, _rng(s)).size / SR for s in range(20)]
    assert min(lengths) >= 1.2 and max(lengths) <= 2.5
    assert max(lengths) - min(lengths) > 0.4  # durations vary
    y = synthesize_utterance("sad", 2, _rng(0), sample_rate=8000, duration=1.0)
    assert y.shape == (8000,) and np.all(np.isfinite(y)) and np.abs(y).max() < 1.0


def test_speaker_accepted_as_index_id_or_profile():
    a = synthesize_utterance("angry", 4, _rng(1))
    b = synthesize_utterance("angry", "spk04", _rng(1))
    c = synthesize_utterance("angry", speaker_profile(4), _rng(1))
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, c)


def _voice_stats(y: np.ndarray) -> tuple[float, float, float]:
    """Median F0 (Hz) of voiced frames, RMS, and mean F0 slope (semitones/s) inside syllables."""
    f0 = librosa.yin(y, fmin=60, fmax=500, sr=SR, frame_length=1024, hop_length=160)
    rms = librosa.feature.rms(y=y, frame_length=1024, hop_length=160)[0]
    voiced = rms > 0.2 * rms.max()
    step = np.diff(12 * np.log2(f0))[voiced[1:] & voiced[:-1]]
    step = step[np.abs(step) < 1.0]  # drop octave errors and jumps between syllables
    return float(np.median(f0[voiced])), float(np.sqrt(np.mean(y**2))), float(step.mean() * 100)


@pytest.fixture(scope="module")
def cues():
    """Voice statistics of 6 utterances per class, for a female and a male speaker."""
    return {
        (speaker, label): np.array(
            [
                _voice_stats(synthesize_utterance(label, speaker, _rng(1000 + i), duration=1.5))
                for i in range(6)
            ]
        )
        for speaker in (1, 2)
        for label in CLASSES
    }


@pytest.mark.parametrize("speaker", [1, 2])
def test_emotions_differ_in_pitch_loudness_and_contour(cues, speaker):
    f0 = {label: cues[speaker, label][:, 0].mean() for label in CLASSES}
    rms = {label: cues[speaker, label][:, 1].mean() for label in CLASSES}
    slope = {label: cues[speaker, label][:, 2].mean() for label in CLASSES}
    assert f0["angry"] > 1.15 * f0["neutral"] > 1.15 * 1.05 * f0["sad"]
    assert f0["happy"] > 1.15 * f0["neutral"]
    assert rms["angry"] > 1.3 * rms["sad"] and rms["neutral"] > rms["sad"]
    assert slope["happy"] > 3.0 and slope["angry"] < -3.0  # rising vs falling accents
    assert slope["sad"] < slope["neutral"] < slope["happy"]


def test_classes_overlap_within_a_speaker(cues):
    # Not trivially separable: the loudest sad utterance is louder than the quietest angry one
    # of some speaker, and F0 ranges of neighbouring classes overlap.
    assert any(cues[s, "sad"][:, 1].max() > cues[s, "neutral"][:, 1].min() for s in (1, 2))
    assert any(cues[s, "angry"][:, 0].min() < cues[s, "happy"][:, 0].max() for s in (1, 2))


def test_speaker_profiles_are_deterministic_and_varied():
    profiles = [speaker_profile(i) for i in range(1, 9)]
    assert profiles == [speaker_profile(i) for i in range(1, 9)]
    assert [p.speaker_id for p in profiles[:3]] == ["spk01", "spk02", "spk03"]
    assert [p.gender for p in profiles] == ["F", "M"] * 4
    assert all(95 <= p.f0 <= 230 and 0.85 <= p.formant_scale <= 1.2 for p in profiles)
    assert all((p.f0 >= 160) == (p.gender == "F") for p in profiles)
    assert len({round(p.f0) for p in profiles}) == 8
    females = [p for p in profiles if p.gender == "F"]
    males = [p for p in profiles if p.gender == "M"]
    assert min(p.formant_scale for p in females) > max(p.formant_scale for p in males)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(label="joy"), r"label must be one of .*Received: label='joy'"),
        (dict(speaker=0), r"index must be between 1 and 99; Received: index=0"),
        (dict(speaker="bob"), r"speaker must look like 'spk01'; Received: speaker='bob'"),
        (dict(speaker=1.5), r"speaker must be a SpeakerProfile.*Received: speaker=1.5"),
        (dict(rng=42), r"rng must be a numpy.random.Generator; Received: rng=42"),
        (dict(sample_rate=4000), r"sample_rate must be between 8000 and 96000; Received: sample_rate=4000"),
        (dict(duration=0.1), r"duration must be .*; Received: duration=0.1"),
        (dict(duration=float("nan")), r"Received: duration=nan"),
    ],
)
def test_synthesize_rejects_bad_arguments(kwargs, message):
    args = dict(label="sad", speaker=1, rng=_rng(0)) | kwargs
    label, speaker, rng = args.pop("label"), args.pop("speaker"), args.pop("rng")
    with pytest.raises(ConfigError, match=message):
        synthesize_utterance(label, speaker, rng, **args)


# --- generate ---------------------------------------------------------------------------


def test_generate_layout_and_parameters(corpus):
    names = _wavs(corpus)
    assert len(names) == 16
    assert names[:3] == ["spk01/spk01_angry_01.wav", "spk01/spk01_angry_02.wav", "spk01/spk01_happy_01.wav"]
    assert {n.split("/")[0] for n in names} == {"spk01", "spk02"}
    info = sf.info(str(corpus / names[0]))
    assert (info.samplerate, info.channels, info.subtype) == (SR, 1, "PCM_16")
    params = json.loads((corpus / "synthetic.json").read_text())
    assert params == {
        "generator": "ser.corpora.synthetic",
        "version": synthetic.GENERATOR_VERSION,
        "n_speakers": 2,
        "per_class": 2,
        "seed": 3,
        "sample_rate": SR,
        "classes": list(CLASSES),
    }
    assert not list(corpus.glob("*.tmp"))


def test_file_matches_synthesize_utterance(corpus):
    y, sr = sf.read(str(corpus / "spk02" / "spk02_sad_01.wav"), dtype="float32")
    rng = np.random.default_rng(synthetic._file_seed(3, 2, "sad", 1))
    expected = synthesize_utterance("sad", 2, rng)
    assert sr == SR and y.shape == expected.shape
    assert np.abs(y - expected).max() <= 1.0 / 32768 + 1e-7  # 16-bit quantisation only


def test_generate_is_bit_identical_across_runs_workers_and_class_subsets(corpus, tmp_path):
    again = generate(tmp_path / "again", **SMALL, workers=2)
    assert _wavs(again) == _wavs(corpus)
    for name in _wavs(corpus):
        assert (again / name).read_bytes() == (corpus / name).read_bytes(), name
    only_sad = generate(tmp_path / "sad", **SMALL, classes=["sad"])
    assert _wavs(only_sad) == [n for n in _wavs(corpus) if "_sad_" in n]
    name = "spk01/spk01_sad_02.wav"
    assert (only_sad / name).read_bytes() == (corpus / name).read_bytes()
    other = generate(tmp_path / "other", **(SMALL | {"seed": 4}))
    assert (other / name).read_bytes() != (corpus / name).read_bytes()


def test_second_call_with_same_parameters_does_nothing(tmp_path):
    root = generate(tmp_path / "c", **SMALL)
    _age(root)
    before = _mtimes(root)
    assert generate(root, **SMALL) == root
    assert _mtimes(root) == before


def test_partial_run_is_regenerated(tmp_path):
    root = generate(tmp_path / "c", **SMALL)
    original = (root / "spk02/spk02_happy_02.wav").read_bytes()
    # an interrupted run: no parameter file, one file truncated
    (root / "synthetic.json").unlink()
    (root / "spk02/spk02_happy_02.wav").write_bytes(original[:100])
    generate(root, **SMALL)
    assert (root / "spk02/spk02_happy_02.wav").read_bytes() == original
    assert (root / "synthetic.json").is_file()


def test_missing_file_is_regenerated(tmp_path):
    root = generate(tmp_path / "c", **SMALL)
    (root / "spk01/spk01_neutral_01.wav").unlink()
    generate(root, **SMALL)
    assert len(_wavs(root)) == 16


def test_other_parameters_regenerate_and_remove_stale_files(tmp_path):
    root = generate(tmp_path / "c", n_speakers=3, per_class=3, seed=3)
    (root / "notes.txt").write_text("mine\n")
    (root / "spk01" / "keep.wav").write_bytes(b"not ours")
    _age(root)
    generate(root, **SMALL)
    assert [n for n in _wavs(root) if n != "spk01/keep.wav"] == _wavs(generate(tmp_path / "fresh", **SMALL))
    assert not (root / "spk03").exists()
    assert (root / "notes.txt").read_text() == "mine\n" and (root / "spk01" / "keep.wav").is_file()
    assert json.loads((root / "synthetic.json").read_text())["per_class"] == 2
    assert all(m > 1_000_000_000_000_000_000 for n, m in _mtimes(root).items() if n.startswith("spk0"))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(n_speakers=0), r"n_speakers must be between 1 and 99; Received: n_speakers=0"),
        (dict(n_speakers=2.0), r"n_speakers must be an integer; Received: n_speakers=2.0"),
        (dict(per_class=True), r"per_class must be an integer; Received: per_class=True"),
        (dict(seed=-1), r"seed must be between 0 and .*; Received: seed=-1"),
        (dict(workers=0), r"workers must be >= 1; Received: workers=0"),
        (dict(classes=["sad", "fear"]), r"classes must be .*Received: classes=\['sad', 'fear'\]"),
        (dict(classes="sad"), r"classes must be a list of labels .*Received: classes='sad'"),
        (dict(classes=[]), r"classes must be a non-empty list"),
    ],
)
def test_generate_rejects_bad_parameters(tmp_path, kwargs, message):
    with pytest.raises(ConfigError, match=message):
        generate(tmp_path / "c", **kwargs)
    assert not (tmp_path / "c").exists()


def test_generate_refuses_a_file_as_root(tmp_path):
    (tmp_path / "c").write_text("x")
    with pytest.raises(ConfigError, match=r"root must be a folder; Received: root=.*c' \(an existing file\)"):
        generate(tmp_path / "c", **SMALL)


# --- load -------------------------------------------------------------------------------


def test_load_manifest(corpus):
    manifest = load(corpus)
    assert tuple(manifest.columns) == COLUMNS
    assert len(manifest) == 16
    assert manifest["path"].map(os.path.isabs).all()
    assert manifest["utt_id"].iloc[0] == "spk01_angry_01"
    assert (manifest["label"].value_counts() == 4).all() and set(manifest["label"]) == set(CLASSES)
    assert sorted(set(manifest["speaker"])) == ["spk01", "spk02"]
    assert manifest.groupby("speaker")["gender"].first().to_dict() == {"spk01": "F", "spk02": "M"}
    assert manifest["session"].isna().all() and manifest["session"].iloc[0] is None
    assert manifest["duration"].dtype == "float64"
    assert manifest["duration"].between(1.2, 2.5).all()
    for row in manifest.itertuples():
        assert row.utt_id == os.path.basename(row.path)[:-4]
        assert re.fullmatch(rf"{row.speaker}_{row.label}_\d\d", row.utt_id)
    assert manifest.attrs["corpus"] == "synthetic" and manifest.attrs["classes"] == CLASSES


def test_load_a_subset_of_classes(corpus):
    manifest = load(corpus, classes=["sad", "angry"])
    assert sorted(set(manifest["label"])) == ["angry", "sad"] and len(manifest) == 8
    assert manifest.attrs["classes"] == ("sad", "angry")


def test_load_through_the_registry(corpus):
    from ser.corpora import load_corpus

    pd.testing.assert_frame_equal(load_corpus("synthetic", corpus), load(corpus))


def test_load_missing_root(tmp_path):
    with pytest.raises(CorpusError, match=r"^synthetic at .*nowhere: corpus root not found"):
        load(tmp_path / "nowhere")


def test_load_root_without_audio(tmp_path):
    (tmp_path / "spk01").mkdir()
    (tmp_path / "synthetic.json").write_text("{}")
    with pytest.raises(CorpusError, match=r"^synthetic at .*: no audio files found"):
        load(tmp_path)


@pytest.fixture
def broken(tmp_path):
    root = generate(tmp_path / "c", **SMALL)
    (root / "spk01" / "hello.wav").write_bytes((root / "spk01/spk01_sad_01.wav").read_bytes())
    (root / "spk01" / "spk02_sad_09.wav").write_bytes((root / "spk01/spk01_sad_01.wav").read_bytes())
    (root / "spk02" / "spk02_fear_01.wav").write_bytes((root / "spk02/spk02_sad_01.wav").read_bytes())
    (root / "spk02" / "spk02_sad_03.wav").write_text("<html>403</html>")
    return root


def test_load_lists_every_bad_file(broken):
    with pytest.raises(CorpusError) as info:
        load(broken)
    message = str(info.value)
    assert message.startswith("synthetic at ")
    assert "spk01/hello.wav: expected spkNN_<label>_<nn>.wav" in message
    assert "spk01/spk02_sad_09.wav: expected it in the speaker folder spk02/" in message
    assert "spk02/spk02_fear_01.wav: label 'fear'" in message
    assert "spk02/spk02_sad_03.wav" in message
    assert "4 problem(s) in 4 file(s)" in message


def test_load_skip_bad_warns_and_keeps_the_good_files(broken):
    with pytest.warns(CorpusWarning, match=r"--skip-bad: skipped"):
        manifest = load(broken, skip_bad=True)
    assert len(manifest) == 16


def test_load_class_without_files(tmp_path):
    root = generate(tmp_path / "c", **SMALL, classes=["sad"])
    with pytest.raises(CorpusError, match=r"'angry' has no (usable )?utterance"):
        load(root)
    assert len(load(root, classes=["sad"])) == 4


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (dict(improvised_only=True), r"unknown option\(s\) 'improvised_only' for corpus 'synthetic'"),
        (dict(classes=["calm"]), r"classes must be .*Received: classes=\['calm'\]"),
        (dict(skip_bad="yes"), r"skip_bad must be true or false"),
    ],
)
def test_load_rejects_bad_options(corpus, options, message):
    with pytest.raises(ConfigError, match=message):
        load(corpus, **options)


def test_generate_with_a_fixed_duration_writes_files_of_that_length(tmp_path):
    root = synthetic.generate(tmp_path / "short", n_speakers=1, per_class=2, classes=["sad"], duration=0.5)
    lengths = {sf.info(str(p)).frames for p in root.glob("spk01/*.wav")}
    assert lengths == {8000}
    assert json.loads((root / "synthetic.json").read_text())["duration"] == 0.5
    plain = synthetic.generate(tmp_path / "plain", n_speakers=1, per_class=1, classes=["sad"])
    assert "duration" not in json.loads((plain / "synthetic.json").read_text())  # earlier corpora are reused
