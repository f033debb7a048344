"""ser.io: atomic writes and the format version check."""

import pytest

from ser.constants import FORMAT_VERSION
from ser.errors import ConfigError, ModelError
from ser.io import check_format_version


def test_the_current_format_version_passes():
    check_format_version(FORMAT_VERSION, "run.json")


@pytest.mark.parametrize(
    "found, text", [(None, "no format version"), (FORMAT_VERSION + 1, f"format version {FORMAT_VERSION + 1}")]
)
def test_another_format_version_names_it_and_what_to_do(found, text):
    with pytest.raises(
        ModelError, match=rf"^m.keras: written in {text}.*reads format version {FORMAT_VERSION}: retrain"
    ):
        check_format_version(found, "m.keras", ModelError)
    with pytest.raises(ConfigError, match="use the release that wrote it"):
        check_format_version(found, "run.json")
