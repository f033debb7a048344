"""`ser demo` at reduced size: it runs end to end and beats chance on held-out speakers."""

import json

from ser.cli import main


def test_demo_quick_beats_chance_and_explains(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--quick"]) == 0
    printed = capsys.readouterr().out
    results = json.loads((out / "run" / "results.json").read_text())
    assert results["classes"] == ["angry", "happy", "neutral", "sad"]
    # 4 classes: chance is 0.25. The synthetic cues are learnable across speakers.
    assert results["pooled"]["ua"] >= 0.45, results["pooled"]
    for f in results["folds"]:
        assert len(f["test_speakers"]) == 2
    assert (out / "attention.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "run" / "model.keras").is_file()
    assert "UA" in printed and "ser classify" in printed and "ser train ravdess" in printed
    assert "synthetic" in printed
    adapted = results["speaker_adapted"]["ua_mean"]
    assert "adapted to each held-out speaker (label-free, from their own files): WA" in printed
    assert f"UA {adapted:.3f}" in printed
    # the full demo into the same folder is refused before its corpus is touched
    before = sorted(p.name for p in (out / "corpus").rglob("*.wav"))
    assert main(["demo", "--out", str(out)]) == 2
    assert "holds a demo of another size or seed (6 speakers x 10 per class, seed 0)" in (
        capsys.readouterr().err
    )
    assert sorted(p.name for p in (out / "corpus").rglob("*.wav")) == before
