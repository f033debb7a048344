"""``ser serve``'s API with Starlette's TestClient and the default model (ONNX, no TensorFlow):
the classify JSON is the command's, the attention JSON's shapes, each bad upload's 4xx and
message, no temporary file left, the concurrency bound, and the command's start and Ctrl-C."""

import io
import json
import signal
import threading
import warnings

import numpy as np
import pytest
import soundfile as sf

from ser.cli import main
from ser.errors import ConfigError
from ser.serve import is_local
from ser.serve.limits import Limits, upload_name
from tests.serving import free_port, start_server
from tests.signals import speaking_tone

pytest.importorskip("starlette")
with warnings.catch_warnings():  # Starlette's note that it prefers httpx2 to httpx (a UserWarning)
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

import ser  # noqa: E402
from ser.serve.app import create_app  # noqa: E402

SR = 16000


def wav_bytes(seconds: float, amplitude: float = 0.1, sr: int = SR) -> bytes:
    t = np.arange(int(seconds * sr)) / sr
    out = io.BytesIO()
    sf.write(out, (amplitude * speaking_tone(t)).astype(np.float32), sr, format="WAV", subtype="PCM_16")
    return out.getvalue()


@pytest.fixture(scope="module")
def classifier():
    return ser.load_model()


@pytest.fixture
def uploads(tmp_path):
    """Where the server makes its private upload folders: empty after every request."""
    folder = tmp_path / "uploads"
    folder.mkdir()
    return folder


def client_for(classifier, uploads, **limits):
    return TestClient(
        create_app(classifier, Limits(**limits), tmp_root=str(uploads)), raise_server_exceptions=False
    )


def test_classify_answers_what_classify_json_prints(classifier, uploads, tmp_path, monkeypatch, capsys):
    for seconds in (2.0, 20.0):  # whole, and in windows
        (tmp_path / "tone.wav").write_bytes(wav_bytes(seconds))
        monkeypatch.chdir(tmp_path)
        assert main(["classify", "--json", "tone.wav"]) == 0
        (expected,) = json.loads(capsys.readouterr().out)
        with client_for(classifier, uploads) as client:
            r = client.post("/api/classify?name=tone.wav", content=(tmp_path / "tone.wav").read_bytes())
        assert r.status_code == 200
        assert r.json() == expected
        assert bool(expected["segments"]) == (seconds > 12)
        assert list(uploads.iterdir()) == []


def test_attention_json_has_the_maps_of_every_class_on_their_axes(classifier, uploads):
    with client_for(classifier, uploads) as client:
        a = client.post("/api/attention?name=a.wav", content=wav_bytes(2.0)).json()
        part = client.post("/api/attention?name=a.wav&start=0.5&end=1.5", content=wav_bytes(2.0)).json()
    frames, bands = len(a["times"]), len(a["freqs"])
    assert np.asarray(a["spectrogram"]).shape == (frames, bands) and bands == 64
    grid = (-(-frames // a["time_stride"]), -(-bands // a["freq_stride"]))
    assert np.asarray(a["bottom_up"]).shape == grid
    assert set(a["product"]) == set(a["top_down"]) == set(a["labels"]) == set(classifier.labels)
    assert all(np.asarray(m).shape == grid for m in [*a["product"].values(), *a["top_down"].values()])
    assert a["explained_class"] == a["label"] and a["occlusion"] is None
    assert 0.5 <= part["times"][0] and part["times"][-1] <= 1.5
    assert list(uploads.iterdir()) == []


def test_occlusion_streams_progress_then_the_map(classifier, uploads):
    with client_for(classifier, uploads) as client:
        r = client.post("/api/occlusion?name=a.wav&class=sad", content=wav_bytes(1.0))
    lines = [json.loads(line) for line in r.text.splitlines()]
    assert r.status_code == 200 and "result" in lines[-1], lines[-1]
    result = lines[-1]["result"]
    assert result["explained_class"] == "sad"
    assert np.asarray(result["occlusion"]).shape == np.asarray(result["bottom_up"]).shape
    progress = [line for line in lines[:-1] if line["total"]]
    assert all(0 < p["done"] <= p["total"] for p in progress)
    assert list(uploads.iterdir()) == []


def _silent() -> bytes:
    out = io.BytesIO()
    sf.write(out, np.zeros(SR, dtype=np.float32), SR, format="WAV")
    return out.getvalue()


BAD_UPLOADS = [
    ("notes.txt", b"just some text, not audio\n", {}, 422, "notes.txt: not a readable audio file"),
    ("empty.wav", b"", {}, 422, "empty.wav: empty upload (0 bytes); expected an audio file"),
    ("quiet.wav", _silent(), {}, 422, "quiet.wav: silent (no sample above -80 dB full scale)"),
    ("cut.wav", wav_bytes(2.0)[: 16000 * 2], {}, 422, "cut.wav: cut short: its header promises 2.00 s"),
    (
        "long.wav",
        wav_bytes(3.0),
        {"max_seconds": 2.5},
        413,
        "long.wav: 3.0 s of audio; expected at most 2.5 s",
    ),
    ("big.wav", wav_bytes(2.0), {"max_bytes": 10_000}, 413, "big.wav: upload larger than 0.01 MB"),
]


@pytest.mark.parametrize("name, body, limits, status, message", BAD_UPLOADS, ids=[b[0] for b in BAD_UPLOADS])
def test_a_bad_upload_gets_a_4xx_and_the_message_and_leaves_nothing(
    classifier, uploads, name, body, limits, status, message
):
    with client_for(classifier, uploads, **limits) as client:
        for route in ("classify", "attention", "occlusion"):
            r = client.post(f"/api/{route}?name={name}", content=body)
            assert r.status_code == status, (route, r.text)
            assert r.json()["error"].startswith(message), r.json()
            assert "/" not in r.json()["error"].split(":")[0]  # no server path in the message
            assert list(uploads.iterdir()) == []


def test_a_streamed_body_is_cut_off_at_the_limit(classifier, uploads):
    def chunks():
        for _ in range(100):
            yield b"\0" * 4096

    with client_for(classifier, uploads, max_bytes=50_000) as client:
        r = client.post("/api/classify?name=stream.wav", content=chunks())
    assert r.status_code == 413 and "larger than 0.05 MB" in r.json()["error"]
    assert list(uploads.iterdir()) == []


def test_bad_options_are_400_with_the_commands_message(classifier, uploads):
    with client_for(classifier, uploads) as client:
        r = client.post("/api/classify?name=a.wav&window=abc", content=wav_bytes(1.0))
        assert (
            r.status_code == 400
            and r.json()["error"] == "window must be a number of seconds. Received: window='abc'"
        )
        r = client.post("/api/attention?name=a.wav&start=0&end=90", content=wav_bytes(1.0))
        assert r.status_code == 200  # the range is cut at the end of the audio
        r = client.post("/api/occlusion?name=a.wav&class=bored", content=wav_bytes(1.0))
        assert json.loads(r.text.splitlines()[-1])["error"].startswith("unknown class 'bored'")
        assert client.get("/api/nothing").json() == {"error": "/api/nothing: Not Found"}
        assert client.get("/api/classify").status_code == 405
    assert list(uploads.iterdir()) == []


def test_requests_past_the_bound_wait_then_get_503(classifier, uploads, monkeypatch):
    """One worker, held by a request at a gate: the next waits ``wait`` seconds, then gets 503."""
    gate, entered = threading.Event(), threading.Event()
    real = classifier.classify

    def held(*args, **kwargs):
        entered.set()
        gate.wait(10)
        return real(*args, **kwargs)

    monkeypatch.setattr(classifier, "classify", held)
    with client_for(classifier, uploads, workers=1, wait=0.3) as client:
        first = {}
        thread = threading.Thread(
            target=lambda: first.update(r=client.post("/api/classify?name=a.wav", content=wav_bytes(1.0)))
        )
        thread.start()
        assert entered.wait(10)
        r = client.post("/api/classify?name=b.wav", content=wav_bytes(1.0))
        assert r.status_code == 503
        assert r.json()["error"].startswith("the server is busy: all 1 workers taken for 0.3 s")
        gate.set()
        thread.join(10)
    assert first["r"].status_code == 200
    assert list(uploads.iterdir()) == []


def test_the_page_and_its_files_are_served(classifier, uploads):
    with client_for(classifier, uploads) as client:
        page = client.get("/")
        assert page.status_code == 200 and '<script src="/static/app.js">' in page.text
        for name in ("app.js", "style.css"):
            assert client.get(f"/static/{name}").status_code == 200
        assert client.get("/static/../app.py").status_code == 404
        model = client.get("/api/model").json()
    assert model["labels"] == classifier.labels and model["max_bytes"] == 50_000_000
    # nothing on the page comes from the web
    static = (page.text, client_for(classifier, uploads).get("/static/app.js").text)
    assert not any("http://" in s or "https://" in s for s in static)


def test_limits_and_names_are_checked():
    with pytest.raises(ConfigError, match=r"workers must be a positive integer. Received: workers=0"):
        Limits(workers=0)
    with pytest.raises(ConfigError, match=r"max_seconds must be a positive number"):
        Limits(max_seconds=float("nan"))
    assert upload_name("../../etc/passwd") == "passwd"
    assert upload_name("C:\\Users\\me\\my rec (1).wav") == "my_rec__1_.wav"
    assert upload_name(".hidden") == "hidden" and upload_name(None) == upload_name("") == "upload.wav"
    assert [is_local(h) for h in ("localhost", "127.0.0.1", "127.0.0.2", "::1")] == [True] * 4
    assert [is_local(h) for h in ("0.0.0.0", "::", "192.168.1.2", "example.org")] == [False] * 4


def test_serve_prints_its_address_warns_off_localhost_and_stops_on_ctrl_c():
    proc, url = start_server("--host", "0.0.0.0")
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert f"open http://0.0.0.0:{url.rsplit(':', 1)[1]}" in out and "ser serve: stopped" in out
    assert "warning: listening on 0.0.0.0, not only on this machine" in err
    assert "Traceback" not in err


def test_a_taken_port_is_one_line(capsys):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", free_port()))
        taken.listen(1)
        port = taken.getsockname()[1]
        assert main(["serve", "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"ser serve: error: cannot listen on 127.0.0.1:{port} (") and err.count("\n") == 1
