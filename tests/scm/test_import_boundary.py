"""Nothing outside scm/ imports PyGithub (STYLE.md), enforced by ruff's banned-api rule."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
RUFF = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")


def _ruff(filename: str, source: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [RUFF, "check", "--no-cache", "--stdin-filename", filename, "-"],
        input=source,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.skipif(RUFF is None, reason="ruff is not installed")
@pytest.mark.parametrize(
    "source", ["from github import Github\n", "import github\n", "from github.Auth import Token\n"]
)
def test_pygithub_import_outside_scm_is_refused(source):
    result = _ruff("gastown/feedback/example.py", source)
    assert "TID251" in result.stdout


@pytest.mark.skipif(RUFF is None, reason="ruff is not installed")
def test_pygithub_import_inside_scm_is_allowed():
    result = _ruff("scm/example.py", "from github import Github\n")
    assert "TID251" not in result.stdout
    assert "F401" in result.stdout  # the project's rules did run
