"""`vlaunch new-backend`: the generated package is the committed template and passes the suite as generated."""

from __future__ import annotations

import subprocess
import sys

from helpers import REPO, assert_one_line_error, vlaunch

EXAMPLE = REPO / "plugins" / "vlaunch-example"


def _files(root):
    return {p.relative_to(root): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and "__pycache__" not in p.parts and ".egg-info" not in str(p)}


def test_generated_package_is_the_committed_template(tmp_path):
    result = vlaunch("new-backend", "example", "--dir", tmp_path)
    assert result.returncode == 0 and "pip install -e" in result.stdout
    assert _files(tmp_path / "vlaunch-example") == _files(EXAMPLE)


def test_template_passes_the_conformance_suite_as_generated(tmp_path):
    install = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "-e", str(EXAMPLE)],
                             capture_output=True, text=True, timeout=300)
    assert install.returncode == 0, install.stderr
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(EXAMPLE / "tests")],
                         capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "14 passed" in run.stdout
    listing = vlaunch("backends")
    assert "example " in listing.stdout and "vlaunch-example 0.1.0" in listing.stdout


def test_bad_names_and_existing_folders(tmp_path):
    assert_one_line_error(vlaunch("new-backend", "Bad-Name", "--dir", tmp_path), "use lowercase letters and digits")
    (tmp_path / "vlaunch-lsf").mkdir()
    assert_one_line_error(vlaunch("new-backend", "lsf", "--dir", tmp_path), "already exists")
