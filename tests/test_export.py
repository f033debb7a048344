"""``ser export`` and the ONNX and LiteRT backends: parity with the Keras model, no TensorFlow, bad files.

Parity is measured on real speech (RAVDESS, skipped where the corpus is absent) with the
tiny trained run of ``conftest.py`` and a two-member ensemble: probabilities within
:data:`PROB_TOL` (absolute), maps within :data:`MAP_TOL` of the largest map value.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from ser.attention.maps import compute_attention
from ser.classifier import EmotionClassifier
from ser.cli import main
from ser.errors import ConfigError, ModelError
from ser.exported import METADATA_KEY
from tests.conftest import RAVDESS

PROB_TOL = 1e-4
MAP_TOL = 1e-3
REPO = Path(__file__).resolve().parents[1]

needs_ravdess = pytest.mark.skipif(not RAVDESS.is_dir(), reason=f"no RAVDESS corpus at {RAVDESS}")


def ravdess_files(n: int, actor: int = 1) -> list[Path]:
    return sorted((RAVDESS / f"Actor_{actor:02d}").glob("*.wav"))[:n]


@pytest.fixture(scope="module")
def pair(tiny_export):
    keras_file, onnx_file = tiny_export
    return EmotionClassifier.load(keras_file), EmotionClassifier.load(onnx_file)


@pytest.fixture(scope="module")
def tflite_pair(tiny_tflite):
    keras_file, tflite_file = tiny_tflite
    return EmotionClassifier.load(keras_file), EmotionClassifier.load(tflite_file)


@pytest.fixture(scope="module")
def long_wav(tmp_path_factory):
    """About 20 s of one actor's speech: classified in windows, drawn in consecutive windows."""
    if not RAVDESS.is_dir():
        pytest.skip(f"no RAVDESS corpus at {RAVDESS}")
    parts = [sf.read(f, dtype="float32") for f in ravdess_files(6, actor=2)]
    assert {rate for _, rate in parts} == {16000}
    path = tmp_path_factory.mktemp("long") / "long.wav"
    sf.write(path, np.concatenate([y for y, _ in parts]), 16000)
    return path


def assert_same_maps(a, b):
    for name in ("top_down", "bottom_up", "product", "product_up"):
        x, y = getattr(a, name), getattr(b, name)
        assert x.shape == y.shape, name
        scale = max(float(np.abs(x).max()), 1e-12)
        assert np.abs(x - y).max() <= MAP_TOL * scale, name


def assert_same_prediction(a, b):
    assert a.label == b.label and len(a.segments) == len(b.segments)
    np.testing.assert_allclose(list(a.scores.values()), list(b.scores.values()), rtol=0, atol=PROB_TOL)
    for s, t in zip(a.segments, b.segments, strict=True):
        assert (s.start, s.end, s.counted) == (t.start, t.end, t.counted)
        np.testing.assert_allclose(list(s.scores.values()), list(t.scores.values()), rtol=0, atol=PROB_TOL)


def test_export_carries_the_metadata(pair):
    keras, onnx = pair
    assert onnx.labels == keras.labels and onnx.frontend == keras.frontend
    assert onnx.info == keras.info and onnx.functionals is not None
    assert (onnx.head, onnx.bottom_up_mode, onnx.n_members) == (keras.head, keras.bottom_up_mode, 1)
    assert (onnx.time_stride, onnx.freq_stride) == (keras.time_stride, keras.freq_stride) == (16, 8)
    assert onnx.model is None and onnx.members == [] and onnx.backend.can_adapt is False
    np.testing.assert_array_equal(onnx.backend.occlusion_fill(0), keras.backend.occlusion_fill(0))


@needs_ravdess
def test_parity_on_a_ravdess_file(pair):
    keras, onnx = pair
    wav = ravdess_files(1)[0]
    assert_same_prediction(keras.classify(wav), onnx.classify(wav))
    a = compute_attention(keras, wav, occlusion=True)
    b = compute_attention(onnx, wav, occlusion=True)
    assert_same_maps(a, b)
    scale = float(np.abs(a.occlusion).max())
    assert np.abs(a.occlusion - b.occlusion).max() <= MAP_TOL * scale


@needs_ravdess
def test_parity_on_a_long_file_in_windows(pair, long_wav):
    keras, onnx = pair
    a, b = keras.classify(long_wav), onnx.classify(long_wav)
    assert len(a.segments) >= 8
    assert_same_prediction(a, b)
    assert_same_maps(compute_attention(keras, long_wav), compute_attention(onnx, long_wav))


@needs_ravdess
def test_tflite_parity_on_a_file_and_a_long_file(tflite_pair, long_wav):
    keras, tflite = tflite_pair
    assert tflite.labels == keras.labels and tflite.info == keras.info and tflite.backend.can_adapt is False
    wav = ravdess_files(1)[0]
    assert_same_prediction(keras.classify(wav), tflite.classify(wav))
    a = compute_attention(keras, wav, occlusion=True)
    b = compute_attention(tflite, wav, occlusion=True)
    assert_same_maps(a, b)
    assert np.abs(a.occlusion - b.occlusion).max() <= MAP_TOL * float(np.abs(a.occlusion).max())
    a, b = keras.classify(long_wav), tflite.classify(long_wav)
    assert len(a.segments) >= 8
    assert_same_prediction(a, b)
    assert_same_maps(compute_attention(keras, long_wav), compute_attention(tflite, long_wav))


def test_a_tflite_export_runs_without_the_xnnpack_notice_but_keeps_other_messages(
    tiny_tflite, tmp_path, capfd
):
    from ser.litert_backend import XNNPACK_NOTICE, _without_xnnpack_notice
    from tests.signals import speaking_tone

    wav = tmp_path / "tone.wav"
    sf.write(wav, (0.1 * speaking_tone(np.arange(32000) / 16000)).astype(np.float32), 16000)
    capfd.readouterr()
    assert main(["classify", str(tiny_tflite[1]), str(wav)]) == 0
    out, err = capfd.readouterr()
    assert str(wav) in out and err == ""
    with _without_xnnpack_notice():
        os.write(2, XNNPACK_NOTICE + b"\nERROR: a real problem\n")
    assert capfd.readouterr().err == "ERROR: a real problem\n"


@needs_ravdess
def test_parity_of_an_ensemble(tmp_path):
    from ser.export import export_model
    from ser.features import FrontendConfig
    from ser.model import ModelConfig, build_model, ensemble_model

    labels = ["angry", "calm", "happy", "sad"]
    members = [
        build_model(labels, 64, ModelConfig(widths=(4, 4, 8, 8, 8)), seed=s, name=f"member_{j}")
        for j, s in ((1, 1), (2, 7))
    ]
    frontend = FrontendConfig().to_dict()
    ensemble_model(members, labels, frontend=frontend, info={}).save(tmp_path / "ens.keras")
    export_model(tmp_path / "ens.keras", tmp_path / "ens.onnx")
    keras, onnx = (EmotionClassifier.load(tmp_path / f"ens.{s}") for s in ("keras", "onnx"))
    assert onnx.n_members == 2 and "members=2" in repr(onnx)
    wav = ravdess_files(1, actor=3)[0]
    assert_same_prediction(keras.classify(wav), onnx.classify(wav))
    a = compute_attention(keras, wav, occlusion=True)
    b = compute_attention(onnx, wav, occlusion=True)
    assert_same_maps(a, b)
    assert np.abs(a.occlusion - b.occlusion).max() <= MAP_TOL * float(np.abs(a.occlusion).max())


@pytest.mark.parametrize("kind", ["onnx", "tflite"])
def test_classify_and_attention_without_tensorflow(kind, request, tmp_path):
    """``ser classify`` and ``ser attention`` of an export import neither TensorFlow nor Keras."""
    from tests.signals import speaking_tone

    t = np.arange(3 * 16000) / 16000
    sf.write(tmp_path / "a.wav", (0.1 * speaking_tone(t)).astype(np.float32), 16000)
    onnx = request.getfixturevalue("tiny_export" if kind == "onnx" else "tiny_tflite")[1]
    script = f"""
import sys
from ser.cli import main
import ser
assert main(["classify", {onnx!r}, {str(tmp_path / "a.wav")!r}, "--json", "--top", "2"]) == 0
assert main(["attention", {onnx!r}, {str(tmp_path / "a.wav")!r}, "--out", {str(tmp_path / "a.png")!r},
             "--occlusion", "--start", "0.5", "--end", "2.5"]) == 0
ser.load_model({onnx!r}).classify({str(tmp_path / "a.wav")!r})
print("loaded:", sorted(m for m in ("tensorflow", "keras", "tf2onnx") if m in sys.modules))
"""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=REPO)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "loaded: []"
    found = json.JSONDecoder().raw_decode(done.stdout)[0]
    assert found[0]["label"] in ("angry", "happy", "neutral", "sad")
    assert (tmp_path / "a.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_export_about_carries_the_toml_and_the_run_scores(tiny_export, tmp_path):
    from ser.export import export_model
    from ser.onnx_backend import OnnxBackend

    keras_file = tiny_export[0]
    (tmp_path / "about.toml").write_text('trained_on = "tones"\nlicence = "CC0"\n', encoding="utf-8")
    assert (
        main(
            [
                "export",
                str(keras_file),
                "--out",
                str(tmp_path / "m.onnx"),
                "--about",
                str(tmp_path / "about.toml"),
            ]
        )
        == 0
    )
    about = OnnxBackend.load(tmp_path / "m.onnx").meta["about"]
    results = json.loads((keras_file.parent / "results.json").read_text())
    assert about["trained_on"] == "tones" and about["licence"] == "CC0"
    assert about["scores"]["protocol"] == results["protocol"]
    assert about["scores"]["folds"] == len(results["folds"])
    assert about["scores"]["ua_mean"] == pytest.approx(results["ua_mean"], abs=5e-5)
    with pytest.raises(ConfigError, match=r"nothere\.toml: not found; expected a TOML file"):
        export_model(keras_file, tmp_path / "n.onnx", about=tmp_path / "nothere.toml")
    (tmp_path / "bad.toml").write_text("scores = 1\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"'scores' comes from the run folder's results\.json"):
        export_model(keras_file, tmp_path / "n.onnx", about=tmp_path / "bad.toml")
    assert not (tmp_path / "n.onnx").exists()


def _rewritten(src, dst, edit):
    """A copy of an export with its ser metadata changed by ``edit(dict)``."""
    import onnx

    proto = onnx.load(str(src))
    entry = next(p for p in proto.metadata_props if p.key == METADATA_KEY)
    meta = json.loads(entry.value)
    edit(meta)
    entry.value = json.dumps(meta)
    onnx.save(proto, str(dst))
    return dst


@pytest.fixture(scope="module")
def bad_exports(tiny_export, tmp_path_factory):
    import onnx
    from onnx import TensorProto, helper

    d = tmp_path_factory.mktemp("bad_exports")
    data = Path(tiny_export[1]).read_bytes()
    (d / "truncated.onnx").write_bytes(data[: len(data) // 2])
    (d / "text.onnx").write_text("not a model at all\n")
    node = helper.make_node("Identity", ["x"], ["y"])
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])
    onnx.save(helper.make_model(helper.make_graph([node], "g", [x], [y])), str(d / "foreign.onnx"))
    _rewritten(tiny_export[1], d / "version.onnx", lambda m: m.update(format_version=99))
    _rewritten(tiny_export[1], d / "nolabels.onnx", lambda m: m.pop("labels"))
    _rewritten(tiny_export[1], d / "nofrontend.onnx", lambda m: m.pop("frontend"))
    return d


def _assert_one_line_error(path, match, capsys):
    """Loading ``path`` raises a one-line ModelError naming it; ``ser classify`` exits 2 with one line."""
    with pytest.raises(ModelError, match=match) as info:
        EmotionClassifier.load(path)
    assert str(info.value).startswith(str(path)) and "\n" not in str(info.value)
    assert main(["classify", str(path), str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(path) in err and "Traceback" not in err


@pytest.mark.parametrize(
    "name, match",
    [
        ("missing.onnx", "not found"),
        ("truncated.onnx", "cannot load the ONNX model .*truncated, damaged or not an ONNX model"),
        ("text.onnx", "cannot load the ONNX model"),
        ("foreign.onnx", "holds no ser metadata"),
        ("version.onnx", "written in format version 99; this ser reads format version"),
        ("nolabels.onnx", "export without its labels"),
        ("nofrontend.onnx", "export without its frontend"),
    ],
)
def test_bad_exports_are_one_line_errors(bad_exports, name, match, capsys):
    path = bad_exports / name
    _assert_one_line_error(path, match, capsys)


@pytest.mark.parametrize("damage", ["truncated", "text", "nometadata"])
def test_bad_tflite_exports_are_one_line_errors(tiny_tflite, tmp_path, damage, capsys):
    data = Path(tiny_tflite[1]).read_bytes()
    path = tmp_path / f"{damage}.tflite"
    if damage == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "text":
        path.write_text("not a model at all\n")
    else:  # a LiteRT model whose ser metadata entry was renamed
        path.write_bytes(data.replace(b"\x03\x00\x00\x00ser\x00", b"\x03\x00\x00\x00sex\x00"))
    match = (
        "holds no ser metadata"
        if damage == "nometadata"
        else "cannot load the LiteRT model .*truncated, damaged"
    )
    _assert_one_line_error(path, match, capsys)


def test_same_speaker_with_adapted_blocks_needs_the_keras_model(pair):
    _, onnx = pair
    assert onnx.adapt_blocks == (4, 5)
    from tests.signals import speaking_tone

    t = np.arange(16000) / 16000
    clips = [(0.1 * speaking_tone(t * (1 + k / 10))).astype(np.float32) for k in range(5)]
    with pytest.raises(ModelError, match=r"needs the Keras model \(model.keras\)"):
        onnx.set_speaker_reference(clips, sample_rate=16000)


def test_export_refuses_a_wrong_extension_and_writes_atomically(tiny_export, tmp_path, monkeypatch):
    import ser.export
    from ser.export import export_model

    with pytest.raises(ConfigError, match=r"a \.onnx or \.tflite file. Received: --out"):
        export_model(tiny_export[0], tmp_path / "model.txt")
    with pytest.raises(ConfigError, match=r"a \.onnx file"):
        export_model(tiny_export[0], tmp_path / "model.tflite", "onnx")

    def fail(*args):
        raise ModelError("checked and refused")

    monkeypatch.setattr(ser.export, "_check_parity", fail)
    with pytest.raises(ModelError, match="refused"):
        export_model(tiny_export[0], tmp_path / "model.onnx")
    assert list(tmp_path.iterdir()) == []  # no half file, no temporary left behind


def test_without_the_train_extra_keras_models_and_train_name_it(tiny_export, monkeypatch, capsys):
    """Without TensorFlow and Keras installed, a .keras model and ``ser train`` say which extra to install."""
    monkeypatch.setitem(sys.modules, "keras", None)  # `import keras` now raises ImportError
    monkeypatch.setitem(sys.modules, "tensorflow", None)
    with pytest.raises(
        ModelError,
        match=r'model.keras: a .keras model needs TensorFlow and Keras: pip install "ser\[train\]"',
    ):
        EmotionClassifier.load(tiny_export[0])
    assert main(["train", "synthetic", "--data-root", "nowhere", "--out", "nowhere"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and 'pip install "ser[train]"' in err
    assert EmotionClassifier.load(tiny_export[1]).labels  # an export still loads
