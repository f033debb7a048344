"""Tests of ser.attention (maps, plot, command): map shapes, the attention identity, long inputs, the figure."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from ser.attention.maps import (
    MAX_ATTENTION_DURATION,
    compute_attention,
    mel_band_centers,
    occlusion_map,
    upsample,
)
from ser.attention.plot import (
    PRODUCT_COLOR_PERCENTILE,
    _extend,
    _freq_ticks,
    _symmetric_limit,
    figure_title,
    plot_attention,
)
from ser.classifier import EmotionClassifier
from ser.cli import main
from ser.errors import AudioError, ConfigError
from ser.features import FrontendConfig, logmel
from ser.model import ModelConfig, build_model
from ser.preprocessor import model_features
from tests.signals import speaking_tone

LABELS = ["angry", "happy", "neutral", "sad"]
SR = 16000


def load(path, head="attention", **config):
    model = build_model(
        LABELS,
        64,
        ModelConfig(widths=(4, 4, 8, 8, 8), head=head, **config),
        frontend=FrontendConfig().to_dict(),
        info={"head": head},
        seed=1,
    )
    model.save(path)
    return EmotionClassifier.load(path)


def noise(seconds, rate=SR, seed=0):
    return np.random.default_rng(seed).normal(0, 0.1, int(seconds * rate)).astype(np.float32)


def voiced(seconds, rate=SR, seed=0, pitch=150.0):
    """A tone at a speaking pitch with a little noise: voiced, as speech is (``ser`` notes
    audio without voiced speech)."""
    t = np.arange(int(seconds * rate)) / rate
    return (0.1 * speaking_tone(t, pitch) + 0.1 * noise(seconds, rate, seed)).astype(np.float32)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("attention")


@pytest.fixture(scope="module")
def classifier(folder):
    return load(folder / "model.keras")


def test_shapes_axes_and_agreement_with_classify(classifier):
    y = noise(3.0)
    maps = compute_attention(classifier, y, sample_rate=SR)
    assert maps.spectrogram.shape == (301, 64)  # 1 + 48000 // 160 frames
    np.testing.assert_allclose(maps.times, np.arange(301) * 0.01)
    np.testing.assert_allclose(maps.freqs, mel_band_centers(FrontendConfig()))
    assert maps.freqs.shape == (64,) and np.all(np.diff(maps.freqs) > 0)
    assert 50 < maps.freqs[0] < 100 and 7000 < maps.freqs[-1] < 8000
    assert maps.bottom_up.shape == (19, 8, 1)  # 301 frames padded to 304 = 19 x 16; 64 / 8
    assert maps.top_down.shape == (19, 8, 4)
    assert maps.product.shape == (19, 8)
    for up in (maps.bottom_up_up, maps.top_down_up, maps.product_up):
        assert up.shape == (301, 64)
    assert (maps.time_stride, maps.freq_stride) == (16, 8)
    assert maps.head == "attention" and maps.bottom_up_mode == "linear"
    # the same answer as classify, from the same features
    scores = classifier.classify(y, sample_rate=SR).scores
    for k in LABELS:
        assert maps.scores[k] == pytest.approx(scores[k], abs=1e-5)
    assert maps.label == max(scores, key=scores.get) and maps.explained_class == maps.label
    assert maps.probability == maps.scores[maps.label]


def test_standardised_model_shows_the_raw_spectrogram(folder):
    model = build_model(
        LABELS,
        64,
        ModelConfig(widths=(4, 4, 8, 8, 8)),
        frontend=FrontendConfig().to_dict(),
        info={"head": "attention", "normalization": "utterance"},
        seed=2,
    )
    model.save(folder / "utterance.keras")
    c = EmotionClassifier.load(folder / "utterance.keras")
    y = noise(1.0, seed=9)
    maps = compute_attention(c, y, sample_rate=SR)
    np.testing.assert_array_equal(maps.spectrogram, logmel(y))  # what is shown: the raw log-mel
    scores = c.classify(y, sample_rate=SR).scores  # what the model saw: the same standardised features
    for k in LABELS:
        assert maps.scores[k] == pytest.approx(scores[k], abs=1e-5)


def test_logit_is_the_mean_of_the_product(classifier):
    y = noise(2.0, seed=1)
    logits = classifier.logits([model_features(classifier, y)])[0]
    for k, label in enumerate(LABELS):
        maps = compute_attention(classifier, y, sample_rate=SR, class_name=label)
        assert maps.explained_class == label
        # every Conv5 cell is valid here (2 s = 201 frames -> 13 cells, the last partial)
        assert maps.product.mean() == pytest.approx(logits[k], rel=1e-4, abs=1e-5)
        np.testing.assert_allclose(maps.product, maps.top_down[..., k] * maps.bottom_up[..., 0], rtol=1e-6)


def test_upsampled_maps_repeat_their_cell(classifier):
    maps = compute_attention(classifier, noise(1.0, seed=2), sample_rate=SR)
    i, j = np.meshgrid(np.arange(101), np.arange(64), indexing="ij")
    np.testing.assert_array_equal(maps.product_up, maps.product[i // 16, j // 8])
    np.testing.assert_array_equal(maps.bottom_up_up, maps.bottom_up[i // 16, j // 8, 0])
    k = LABELS.index(maps.explained_class)
    np.testing.assert_array_equal(maps.top_down_up, maps.top_down[i // 16, j // 8, k])
    grid = np.arange(6).reshape(2, 3)
    assert upsample(grid, 2, 2, 3, 5).tolist() == [[0, 0, 1, 1, 2], [0, 0, 1, 1, 2], [3, 3, 4, 4, 5]]


def test_softmax_rank2_attention(folder):
    c = load(folder / "softmax.keras", rank=2, bottom_up="softmax")
    y = noise(1.5, seed=3)
    maps = compute_attention(c, y, sample_rate=SR, class_name="sad")
    assert maps.bottom_up.shape == (10, 8, 2) and maps.top_down.shape == (10, 8, 8)
    assert maps.bottom_up_mode == "softmax"
    np.testing.assert_allclose(maps.bottom_up.sum(axis=(0, 1)), [1.0, 1.0], rtol=1e-5)  # per rank
    logits = c.logits([model_features(c, y)])[0]
    assert maps.product.sum() == pytest.approx(logits[3], rel=1e-4, abs=1e-5)
    np.testing.assert_allclose(maps.product, (maps.top_down[..., 6:8] * maps.bottom_up).sum(-1), rtol=1e-6)


@pytest.mark.parametrize("head", ["average", "max"])
def test_pooling_heads_give_class_activation_maps(folder, head):
    c = load(folder / f"{head}.keras", head=head)
    y = noise(2.0, seed=4)
    maps = compute_attention(c, y, sample_rate=SR)
    assert maps.head == head and maps.bottom_up_mode == "constant"
    assert np.array_equal(maps.bottom_up, np.ones((13, 8, 1), np.float32))
    assert maps.top_down.shape == (13, 8, 4) and maps.product_up.shape == (201, 64)
    np.testing.assert_allclose(maps.product, maps.top_down[..., LABELS.index(maps.explained_class)])
    scores = c.classify(y, sample_rate=SR).scores
    for k in LABELS:
        assert maps.scores[k] == pytest.approx(scores[k], abs=1e-5)
    if head == "average":  # h = 1: the logit is the mean of the class activation map
        logits = c.logits([model_features(c, y)])[0]
        for k in range(4):
            assert maps.top_down[..., k].mean() == pytest.approx(logits[k], rel=1e-4, abs=1e-5)
        plot_attention(maps, folder / "average.png")
        assert (folder / "average.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_unknown_class_lists_the_labels(classifier):
    with pytest.raises(
        ConfigError, match=r"unknown class 'bored'; this model knows angry, happy, neutral, sad"
    ):
        compute_attention(classifier, noise(1.0), sample_rate=SR, class_name="bored")


def test_long_input_is_stitched_from_windows(classifier):
    y = noise(30.0, seed=5)
    maps = compute_attention(classifier, y, sample_rate=SR)
    assert maps.window_starts == [0.0, 4.0, 8.0, 12.0, 16.0, 20.0, 24.0, 28.0]
    assert maps.spectrogram.shape == (3001, 64)  # as many frames as the whole-file log-mel
    assert maps.bottom_up.shape[:2] == (188, 8)  # 7 windows x 25 cells + 13 for the last 2 s
    assert maps.product_up.shape == (3001, 64)
    assert maps.times[-1] == pytest.approx(30.0)
    # each window's maps are that window's own maps (up to its last frame, which the stitched
    # window leaves to the next one: it changes the cells whose receptive field reaches it)
    second = compute_attention(
        classifier, y[4 * SR : 8 * SR], sample_rate=SR, class_name=maps.explained_class
    )
    np.testing.assert_allclose(maps.product[25:47], second.product[:22], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(maps.spectrogram[400:800], second.spectrogram[:400], atol=1e-5)
    assert maps.window_counted == [True] * 8
    # the label and scores are classify's, from its overlapping windows
    expected = classifier.classify(y, sample_rate=SR)
    assert maps.label == expected.label
    assert maps.scores == pytest.approx(expected.scores, abs=1e-6)


def test_windows_without_speech_are_marked_as_classify_marks_them(classifier, folder):
    y = (0.1 * speaking_tone(np.arange(16 * SR) / SR)).astype(np.float32)  # voiced
    y[8 * SR : 12 * SR] = noise(4.0, seed=9)  # a stretch of noise: its window does not vote
    maps = compute_attention(classifier, y, sample_rate=SR)
    assert maps.window_counted == [True, True, False, True] and maps.speech
    assert maps.scores == pytest.approx(classifier.classify(y, sample_rate=SR).scores, abs=1e-6)
    assert "1 without speech greyed out (not voting)" in figure_title(maps)
    plot_attention(maps, folder / "unvoiced.png")  # greyed out
    with np.load(_saved(maps, folder / "unvoiced.npz")) as data:
        assert data["window_counted"].tolist() == [True, True, False, True]
        assert bool(data["speech"])
    # no voiced speech anywhere: drawn all the same, and the title says the label is a guess
    hiss = compute_attention(classifier, noise(3.0, seed=10), sample_rate=SR)
    assert not hiss.speech
    assert "no voiced speech found: the label is a guess" in figure_title(hiss)


def _saved(maps, path):
    maps.save_npz(path)
    return path


def test_range_of_a_file(classifier, folder):
    path = folder / "ten.wav"
    sf.write(path, noise(10.0, rate=8000, seed=6), 8000)
    maps = compute_attention(classifier, path, start=2.5, end=4.0)
    assert (maps.start, maps.end) == (2.5, 4.0)
    assert maps.times[0] == pytest.approx(2.5) and maps.spectrogram.shape == (151, 64)
    assert compute_attention(classifier, path, start=9.0, end=99).end == pytest.approx(10.0)  # clipped


@pytest.mark.parametrize(
    "start, end, match",
    [
        (12.0, None, r"ten\.wav: start 12 s is past the end of the audio \(10\.00 s\)"),
        (4.0, 3.0, r"end must be after start\. Received: start=4, end=3"),
        (-1.0, None, r"start must be >= 0 s\. Received: start=-1\.0"),
        (9.95, None, r"range 9\.95-10 s is shorter than 0\.1 s"),
    ],
)
def test_bad_ranges(classifier, folder, start, end, match):
    path = folder / "ten.wav"
    sf.write(path, noise(10.0, rate=8000, seed=6), 8000)
    with pytest.raises(ConfigError, match=match):
        compute_attention(classifier, path, start=start, end=end)


@pytest.mark.parametrize("rate", [8000, 11025, 22050, 44100])
def test_a_range_of_the_shortest_length_as_typed_is_drawn(classifier, folder, rate):
    # 4.1 - 4.0 is 0.0999... in floating point: "range 4-4.1 s is shorter than 0.1 s" was refused;
    # and at 11025 and 22050 Hz the range's ends, rounded to samples, could hold one sample less
    path = folder / f"ten{rate}.wav"
    sf.write(path, noise(10.0, rate=rate, seed=6), rate)
    for start in (4.0, 0.03, 1.27):
        maps = compute_attention(classifier, path, start=start, end=start + 0.1)
        assert maps.start == pytest.approx(start) and maps.end == pytest.approx(start + 0.1, abs=1e-4)


def test_a_too_short_file_is_named_as_classify_names_it(classifier, folder):
    from ser.errors import AudioError

    path = folder / "short.wav"
    sf.write(path, noise(0.02, seed=1), SR)
    with pytest.raises(AudioError, match=r"short\.wav: too short \(20 ms\); expected at least 100 ms"):
        compute_attention(classifier, path)


def test_very_long_file_needs_a_range(classifier, folder):
    path = folder / "hour.wav"
    with sf.SoundFile(path, "w", samplerate=4000, channels=1, subtype="PCM_16") as f:
        y = np.zeros(4000 * 700, np.int16)  # 700 s of silence; only the header is read
        y[4000 * 649 : 4000 * 653] = (3000 * np.random.default_rng(0).standard_normal(4000 * 4)).astype(
            np.int16
        )
        f.write(y)
    with pytest.raises(
        ConfigError, match=r"hour\.wav: a figure shows at most 600 s \(the audio is 700 s long\); "
    ):
        compute_attention(classifier, path)
    maps = compute_attention(classifier, path, start=650.0, end=652.0)  # noise, far into the file
    assert np.all(np.isfinite(maps.product)) and maps.times[0] == pytest.approx(650.0)
    # a silent range gets no picture, as classify gives silence no label
    with pytest.raises(
        AudioError, match=r"hour\.wav: silent from 660 to 662 s .*expected a range holding speech"
    ):
        compute_attention(classifier, path, start=660.0, end=662.0)
    assert MAX_ATTENTION_DURATION == 600.0


def test_freq_ticks_are_on_the_axis_and_spread():
    ticks, positions = _freq_ticks(mel_band_centers(FrontendConfig()))
    assert ticks == [200, 500, 1000, 2000, 3000, 4000, 6000]
    assert all(-0.5 <= p <= 63.5 for p in positions) and min(np.diff(positions)) >= 64 / 12


def test_command_writes_png_and_npz(classifier, folder, capsys):
    sf.write(folder / "clip.wav", voiced(2.0, seed=7), SR)
    png, npz = folder / "out" / "clip.png", folder / "out" / "clip.npz"
    argv = [
        "attention",
        folder / "model.keras",
        folder / "clip.wav",
        "--out",
        png,
        "--npz",
        npz,
        "--class",
        "happy",
    ]
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert code == 0 and err == ""
    assert re.fullmatch(
        rf"wrote {re.escape(str(png))} and {re.escape(str(npz))} \(.*clip\.wav: \w+ \d\.\d\d.*\)\n", out
    )
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in png.parent.iterdir()) == ["clip.npz", "clip.png"]  # no temporary files left
    with np.load(npz) as data:
        assert data["spectrogram"].shape == (201, 64) and data["times"].shape == (201,)
        assert data["freqs"].shape == (64,) and data["labels"].tolist() == LABELS
        assert data["bottom_up"].shape == (13, 8, 1) and data["top_down"].shape == (13, 8, 4)
        assert data["product"].shape == (13, 8) and str(data["explained_class"]) == "happy"
        for key in ("bottom_up_up", "top_down_up", "product_up"):
            assert data[key].shape == (201, 64)
        assert "occlusion" not in data and "occlusion_up" not in data  # only with --occlusion
        np.testing.assert_allclose(
            data["product"], data["top_down"][..., 1] * data["bottom_up"][..., 0], rtol=1e-6
        )


def test_outputs_that_cannot_be_written_fail_before_any_work(tmp_path, monkeypatch, capsys):
    # checked before the model is loaded (it does not exist here), not after the maps are drawn
    import tempfile

    locked = tmp_path / "locked"
    locked.mkdir()
    mkstemp = tempfile.mkstemp

    def refuse(*args, dir=None, **kwargs):  # a read-only folder (chmod does not stop root)
        if dir is not None and Path(dir) == locked:
            raise PermissionError(13, "Permission denied")
        return mkstemp(*args, dir=dir, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    model, clip, png = str(tmp_path / "none.keras"), str(tmp_path / "a.wav"), str(tmp_path / "a.png")
    for args, bad in [
        (["--out", png, "--npz", str(locked / "maps.npz")], locked / "maps.npz"),
        (["--out", str(locked / "new" / "a.png")], locked / "new" / "a.png"),  # its folder made later
    ]:
        assert main(["attention", model, clip, *args]) == 2
        _, err = capsys.readouterr()
        assert err == (
            f"ser attention: error: {bad}: cannot write here (Permission denied); expected a folder you "
            "can write to\n"
        )
    # --npz names a .npz file: `--npz a.png` overwrote the picture with the maps
    for npz in (png, str(tmp_path / "maps")):
        assert main(["attention", model, clip, "--out", png, "--npz", npz]) == 2
        _, err = capsys.readouterr()
        assert (
            err
            == f"ser attention: error: {npz}: not a .npz name; expected a file name ending in .npz for --npz\n"
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["locked"]


def test_command_errors_are_one_line(classifier, folder, capsys):
    sf.write(folder / "clip2.wav", noise(1.0, seed=8), SR)
    model, clip = str(folder / "model.keras"), str(folder / "clip2.wav")
    out_png = str(folder / "x.png")
    assert main(["attention", model, clip, "--out", out_png, "--class", "bored"]) == 2
    _, err = capsys.readouterr()
    assert err == "ser attention: error: unknown class 'bored'; this model knows angry, happy, neutral, sad\n"
    # audio that cannot be used: named, exit status 1, as classify names it
    nothere = folder / "nothere.wav"
    assert main(["attention", model, str(nothere), "--out", out_png]) == 1
    _, err = capsys.readouterr()
    assert err == f"{nothere}: error: file not found; expected an audio file\n"
    assert not os.path.exists(out_png)
    assert main(["attention", model, clip, "--out", str(folder)]) == 2
    _, err = capsys.readouterr()
    assert err == f"ser attention: error: {folder}: is a folder; expected the name of a file to write\n"
    # an --npz below a file fails before the picture is written
    npz = os.path.join(clip, "maps.npz")
    assert main(["attention", model, clip, "--out", out_png, "--npz", npz]) == 2
    _, err = capsys.readouterr()
    assert err == f"ser attention: error: {npz}: {clip} is a file; expected a path inside a folder\n"
    assert not os.path.exists(out_png)
    # a suffix of a format not written fails before any work; .jpg writes a JPEG
    assert main(["attention", model, clip, "--out", str(folder / "x.gif")]) == 2
    _, err = capsys.readouterr()
    assert err.startswith(f"ser attention: error: {folder / 'x.gif'}: cannot write a .gif picture; expected")
    assert main(["attention", model, clip, "--out", str(folder / "x.jpg")]) == 0
    capsys.readouterr()
    assert (folder / "x.jpg").read_bytes()[:3] == b"\xff\xd8\xff"
    # silence gets no picture, as classify gives it no label
    sf.write(folder / "silent.wav", np.zeros(SR, np.float32), SR)
    assert main(["attention", model, str(folder / "silent.wav"), "--out", out_png]) == 1
    _, err = capsys.readouterr()
    assert err.startswith(f"{folder / 'silent.wav'}: error: silent (no sample above -80 dB")
    assert len(err.splitlines()) == 1 and not os.path.exists(out_png)
    # the same files through classify: the same status
    assert main(["classify", model, str(nothere), str(folder / "silent.wav")]) == 1
    capsys.readouterr()


@pytest.mark.parametrize("out", ["x.gif", "."])
def test_a_bad_out_fails_before_tensorflow_loads(folder, out):
    """A bad --out is refused at once, not after the ~10 s of loading TensorFlow and the model."""
    code = (
        "import sys\nfrom ser.cli import main\n"
        f"code = main(['attention', 'model.keras', 'clip.wav', '--out', {str(folder / out)!r}])\n"
        "print(code, 'tensorflow' in sys.modules)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.stdout.strip().splitlines()[-1] == "2 False"
    assert proc.stderr.startswith(f"ser attention: error: {folder / out}: ")
    assert len(proc.stderr.splitlines()) == 1


def test_command_says_when_a_range_was_trimmed(classifier, folder, capsys):
    speech = voiced(1.0, seed=3)
    speech[SR // 2 : SR // 2 + SR // 10] *= 8  # a loud peak, so the digital silence is > 40 dB below it
    y = np.concatenate([np.zeros(SR), speech, np.zeros(SR)]).astype(np.float32)
    sf.write(folder / "padded.wav", y, SR)
    argv = [
        "attention",
        str(folder / "model.keras"),
        str(folder / "padded.wav"),
        "--out",
        str(folder / "p.png"),
    ]
    assert main([*argv, "--start", "0.5"]) == 0
    _, err = capsys.readouterr()
    assert re.fullmatch(
        r"note: leading and trailing silence trimmed, as the model sees it: showing (0\.9\d|1\.0\d)-(1\.9\d|2\.0\d) s of "
        r"the 0\.50-3\.00 s asked for\n",
        err,
    )
    assert main([*argv, "--start", "1.2", "--end", "1.8"]) == 0
    assert capsys.readouterr().err == ""  # speech to both ends: nothing trimmed


def test_ensemble_maps_average_the_members(folder):
    """An ensemble's logit is the mean of its members'; so is its product map."""
    from ser.model import ensemble_model

    members = [
        build_model(LABELS, 64, ModelConfig(widths=(4, 4, 8, 8, 8)), seed=s, name=f"member_{j}")
        for j, s in ((1, 1), (2, 7))
    ]
    frontend = FrontendConfig().to_dict()
    ensemble_model(members, LABELS, frontend=frontend, info={"head": "attention"}).save(folder / "ens.keras")
    c = EmotionClassifier.load(folder / "ens.keras")
    assert len(c.members) == 2 and "members=2" in repr(c)
    y = noise(2.0, seed=5)
    feats = model_features(c, y)
    logits = c.logits([feats])[0]
    np.testing.assert_allclose(
        logits,
        np.mean(
            [np.asarray(m([feats[None], np.ones((1, len(feats)), np.float32)]))[0] for m in c.members], 0
        ),
        rtol=1e-5,
        atol=1e-6,
    )
    maps = compute_attention(c, y, sample_rate=SR, class_name="happy")
    assert maps.members == 2 and maps.bottom_up.shape == (13, 8, 2) and maps.top_down.shape == (13, 8, 8)
    assert maps.product.mean() == pytest.approx(logits[1], rel=1e-4, abs=1e-5)
    np.testing.assert_allclose(
        maps.product, (maps.top_down[..., 2:4] * maps.bottom_up).sum(-1) / 2, rtol=1e-6
    )
    single = load(folder / "member1.keras")  # member 1 alone: the same weights (seed 1)
    alone = compute_attention(single, y, sample_rate=SR, class_name="happy")
    np.testing.assert_allclose(maps.bottom_up[..., 0], alone.bottom_up[..., 0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(maps.top_down[..., 2], alone.top_down[..., 1], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        maps.bottom_up_up, maps.bottom_up.sum(-1).repeat(16, 0)[:201].repeat(8, 1) / 2, rtol=1e-6
    )
    plot_attention(maps, folder / "ens.png")
    assert (folder / "ens.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_occlusion_is_the_logit_fall_with_each_region_hidden(classifier, folder):
    y = voiced(2.0, seed=3)
    maps = compute_attention(classifier, y, sample_rate=SR, class_name="sad", occlusion=True)
    assert maps.occlusion.shape == maps.product.shape == (13, 8)
    assert maps.occlusion_up.shape == (201, 64) and np.all(np.isfinite(maps.occlusion))
    np.testing.assert_array_equal(maps.occlusion_up, maps.occlusion.repeat(16, 0)[:201].repeat(8, 1))
    # by hand: hide one cell's 16 frames x 8 bands (the last, partial cell too) and run the model again
    feats = model_features(classifier, y)
    fill = np.asarray(classifier.model.get_layer("normalization").mean)
    k = LABELS.index("sad")
    base = classifier.logits([feats])[0, k]
    for i, j in ((0, 0), (5, 3), (12, 7)):
        hidden = feats.copy()
        hidden[16 * i : 16 * (i + 1), 8 * j : 8 * (j + 1)] = fill[8 * j : 8 * (j + 1)]
        fall = base - classifier.logits([hidden])[0, k]
        assert maps.occlusion[i, j] == pytest.approx(fall, rel=1e-3, abs=1e-5)
    # a region that already holds the training mean changes nothing when hidden
    feats[16:32, 8:16] = fill[8:16]
    assert occlusion_map(classifier, feats, k, 16, 8)[1, 1] == pytest.approx(0.0, abs=1e-5)
    assert maps.agreement is not None and -1.0 <= maps.agreement <= 1.0
    assert compute_attention(classifier, y, sample_rate=SR).occlusion is None  # only when asked
    # a long input: each window's cells hidden within that window, as its maps are computed
    long = compute_attention(classifier, voiced(14.0, seed=4), sample_rate=SR, occlusion=True)
    assert len(long.window_starts) == 4 and long.occlusion.shape == long.product.shape == (88, 8)
    plot_attention(long, folder / "occluded.png")
    assert (folder / "occluded.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_command_draws_the_occlusion_panel(classifier, folder, capsys):
    sf.write(folder / "clip_o.wav", voiced(2.0, seed=8), SR)
    png, npz = folder / "occ" / "clip.png", folder / "occ" / "clip.npz"
    code = main(
        ["attention", str(folder / "model.keras"), str(folder / "clip_o.wav"), "--out", str(png)]
        + ["--npz", str(npz), "--occlusion"]
    )
    assert code == 0 and capsys.readouterr().err == ""
    with np.load(npz) as data:
        assert data["occlusion"].shape == data["product"].shape == (13, 8)
        assert data["occlusion_up"].shape == (201, 64)


def test_command_same_speaker_adapts_before_drawing(folder, capsys):
    """--same-speaker FILES: the maps are those of the model adapted to the file and FILES."""
    from ser.adaptation import adapted

    model = build_model(
        LABELS,
        64,
        ModelConfig(widths=(4, 4, 8, 8, 8)),
        frontend=FrontendConfig().to_dict(),
        info={"adapt_blocks": [4, 5]},
        seed=2,
    )
    model.save(folder / "ada.keras")
    clips = []
    for i in range(6):
        clips.append(folder / f"spk{i}.wav")
        sf.write(clips[-1], voiced(1.0 + 0.2 * i, seed=20 + i, pitch=120.0 + 20 * i) * (1 + i), SR)
    npz = folder / "ada.npz"
    sf.write(folder / "silent_ref.wav", np.zeros(SR, np.float32), SR)
    bad = [folder / "missing.wav", folder / "silent_ref.wav"]
    argv = [
        "attention",
        folder / "ada.keras",
        clips[0],
        "--out",
        folder / "ada.png",
        "--npz",
        npz,
        "--same-speaker",
        *clips[1:3],
        bad[0],
        *clips[3:],
        bad[1],
    ]
    # files that cannot be used are left out and named, one line each, as classify names
    # them; the picture is drawn from the others, and the exit status says some failed
    assert main([str(a) for a in argv]) == 1
    err = capsys.readouterr().err.splitlines()
    assert "re-estimated from 6 recordings (2 file(s) that cannot be classified left out)" in err[-3]
    assert err[-2:] == [
        f"{bad[0]}: error: file not found; expected an audio file",
        f"{bad[1]}: error: silent (no sample above -80 dB full scale); expected a recording of speech",
    ]
    assert (folder / "ada.png").exists()
    c = EmotionClassifier.load(folder / "ada.keras")
    plain = compute_attention(c, str(clips[0]))
    feats = [model_features(c, sf.read(p, dtype="float32")[0]) for p in clips]
    with adapted(c.model, feats, [4, 5]):
        expected = compute_attention(c, str(clips[0]))
    with np.load(npz) as data:
        np.testing.assert_allclose(data["product"], expected.product, rtol=1e-4, atol=1e-5)
        assert not np.allclose(data["product"], plain.product, atol=1e-4)
        assert int(data["adapted_to"]) == 6
    # the title says so (the adapted model is the only difference it names)
    assert plain.adapted_to == 0 and "adapted" not in figure_title(plain)
    title = figure_title(replace(plain, adapted_to=6)).splitlines()
    assert title[1] == "adapted to the speaker (6 recordings)"
    # too few recordings: drawn unadapted, and said so
    assert main([str(a) for a in argv[:7]] + ["--same-speaker", str(clips[1])]) == 0
    assert "too few to adapt to" in capsys.readouterr().err
    with np.load(npz) as data:
        assert int(data["adapted_to"]) == 0


def test_product_colours_are_not_set_by_one_cell():
    """The t·h colours span a high percentile of |t·h|: one strong cell does not wash out the
    rest; the colour bar's pointed ends say that stronger cells are clipped."""
    product = np.r_[np.linspace(-1.0, 1.0, 99), 50.0]
    assert PRODUCT_COLOR_PERCENTILE == 98.0
    assert _symmetric_limit(product, PRODUCT_COLOR_PERCENTILE) == 1.0
    assert _symmetric_limit(product) == 50.0  # the other panels: the maximum
    assert _extend(product, 1.0) == "max" and _extend(-product, 1.0) == "min"
    assert _extend(np.r_[product, -50.0], 1.0) == "both" and _extend(product, 50.0) == "neither"
    # mostly zeros: the maximum rather than 0; all zeros: 1
    assert _symmetric_limit(np.r_[np.zeros(99), -3.0], 98.0) == 3.0
    assert _symmetric_limit(np.zeros(10), 98.0) == 1.0
