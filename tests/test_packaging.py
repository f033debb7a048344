"""The distribution as a user installs it: a wheel, not the repository checkout."""

import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from tests.corpora import fixtures as fx

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            str(REPO),
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(out),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (found,) = out.glob("ser-*.whl")
    return found


def test_the_wheel_puts_everything_under_ser_with_the_recipes(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert tops == {"ser"}
    recipes = sorted(p.parts[2] for p in map(Path, names) if p.name == "recipe.toml")
    on_disk = sorted(p.parent.name for p in (REPO / "recipes").glob("*/recipe.toml"))
    assert recipes == on_disk and "ravdess" in recipes
    assert "ser/corpora/ravdess.py" in names and "ser/recipes/ravdess/README.md" in names
    # every subpackage of the checkout is in the wheel (pyproject lists them one by one)
    subpackages = {f"ser/{p.relative_to(REPO / 'ser').as_posix()}" for p in (REPO / "ser").rglob("*.py")}
    assert subpackages <= set(names), sorted(subpackages - set(names))
    # the default model and its about text (ser.models)
    assert {"ser/models/ravdess.onnx", "ser/models/ravdess.toml"} <= set(names)
    # the page of ser serve, every file of it
    static = {f"ser/serve/static/{p.name}" for p in (REPO / "ser" / "serve" / "static").iterdir()}
    assert {"ser/serve/static/index.html", "ser/serve/static/app.js", "ser/serve/static/style.css"} <= static
    assert static <= set(names), sorted(static - set(names))
    with zipfile.ZipFile(wheel) as z:
        assert z.read("ser/models/ravdess.onnx") == (REPO / "ser" / "models" / "ravdess.onnx").read_bytes()


def test_installed_wheel_checks_a_corpus_from_an_unrelated_folder(wheel, tmp_path):
    venv = tmp_path / "venv"
    # the venv reuses the dependencies already installed; ser itself comes from the wheel only
    subprocess.run(
        [sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True, timeout=120
    )
    bin_dir = venv / ("Scripts" if sys.platform == "win32" else "bin")
    python = bin_dir / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    code = (
        "import ser, ser.recipe as r; "
        "print(ser.__file__); print(r.find_recipe('ravdess')); print(r.load_recipe('tess')['corpus']['name'])"
    )
    run = subprocess.run(
        [str(python), "-c", code], cwd=elsewhere, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr
    installed = Path(sysconfig.get_paths(vars={"base": str(venv), "platbase": str(venv)})["purelib"])
    package, recipe, corpus = run.stdout.split()
    assert Path(package).resolve().is_relative_to(installed.resolve())
    assert Path(recipe).resolve() == (installed / "ser" / "recipes" / "ravdess" / "recipe.toml").resolve()
    assert corpus == "tess"

    root = fx.make_ravdess(tmp_path / "ravdess")
    run = subprocess.run(
        [str(bin_dir / "ser"), "check", "ravdess", "--data-root", str(root), "--set", "protocol.k=3"],
        cwd=elsewhere,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    assert "utterances per speaker and label:" in run.stdout and "fold 3: test" in run.stdout
