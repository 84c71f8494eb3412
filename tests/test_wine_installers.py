"""deploy/wine/fetch-verified.sh: an installer runs under Wine only if its SHA-256 is the pinned
one, or if the user supplied the file; nothing is downloaded without a pin.  Downloads use
file:// URLs here (curl handles them like https)."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "deploy" / "wine" / "fetch-verified.sh"


@pytest.fixture
def setup(tmp_path):
    served = tmp_path / "served" / "mt5setup.exe"
    served.parent.mkdir()
    served.write_bytes(b"MZ the real installer")
    (tmp_path / "installers").mkdir()
    return tmp_path, served, hashlib.sha256(served.read_bytes()).hexdigest()


def fetch(tmp_path: Path, url: str, sha: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "INSTALLERS_DIR": str(tmp_path / "installers")}
    return subprocess.run(["bash", str(SCRIPT), "mt5setup.exe", url, sha, str(tmp_path / "out.exe")],
                          env=env, capture_output=True, text=True, timeout=30)


def test_a_download_with_the_pinned_hash_is_kept(setup):
    tmp_path, served, sha = setup
    result = fetch(tmp_path, served.as_uri(), sha.upper())
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out.exe").read_bytes() == served.read_bytes()


def test_a_download_with_another_hash_is_refused_and_removed(setup):
    tmp_path, served, _ = setup
    result = fetch(tmp_path, served.as_uri(), "0" * 64)
    assert result.returncode == 1 and "does not match the pinned" in result.stderr
    assert not (tmp_path / "out.exe").exists()


def test_nothing_is_downloaded_without_a_pin(setup):
    tmp_path, served, _ = setup
    result = fetch(tmp_path, served.as_uri(), "")
    assert result.returncode == 1 and "refusing to download it unverified" in result.stderr
    assert not (tmp_path / "out.exe").exists()
    assert fetch(tmp_path, served.as_uri(), "abc").returncode == 1  # a malformed pin


def test_a_supplied_installer_is_used_and_checked_when_pinned(setup):
    tmp_path, served, sha = setup
    (tmp_path / "installers" / "mt5setup.exe").write_bytes(b"MZ my own copy")
    unpinned = fetch(tmp_path, "file:///nonexistent", "")
    assert unpinned.returncode == 0 and "supplied by the user, sha256" in unpinned.stderr
    assert (tmp_path / "out.exe").read_bytes() == b"MZ my own copy"
    pinned_other = fetch(tmp_path, "file:///nonexistent", sha)
    assert pinned_other.returncode == 1 and not (tmp_path / "out.exe").exists()
