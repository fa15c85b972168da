"""Files written beside keys (gateway/files.py, crypto-core review): the mode is the one asked for
even over an existing file (a signing key written over a 0644 file stayed 0644), a key file is
never written over unless asked, and the directory is synced after the rename, so a power cut
cannot lose the new file after the database committed what it sealed under it."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from gateway.files import write_atomically
from gateway.signing import generate_signing_key, load_signing_key, write_signing_key


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_signing_key_written_over_a_readable_file_is_the_owners_only(tmp_path: Path) -> None:
    path = tmp_path / "signing-key.json"
    path.write_text("{}", encoding="utf-8")
    path.chmod(0o644)
    key = generate_signing_key("E09000012")
    write_signing_key(key, path)
    assert _mode(path) == 0o600
    assert load_signing_key(path).thumbprint() == key.thumbprint()
    assert [p.name for p in tmp_path.iterdir()] == ["signing-key.json"]  # no temporary left


def test_without_replace_an_existing_file_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    write_atomically(path, "first", 0o600, replace=False)
    with pytest.raises(FileExistsError):
        write_atomically(path, "second", 0o600, replace=False)
    assert path.read_text(encoding="utf-8") == "first"
    assert [p.name for p in tmp_path.iterdir()] == ["keys.json"]


def test_the_file_and_then_its_directory_are_synced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[bool] = []
    real = os.fsync

    def fsync(fd: int) -> None:
        synced.append(stat.S_ISDIR(os.fstat(fd).st_mode))
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    write_atomically(tmp_path / "witness.json", b"{}", 0o644)
    assert synced == [False, True]
    assert _mode(tmp_path / "witness.json") == 0o644
