"""The history file as a file: who may read it, what a folder, a read-only
place, an empty file or a file deleted under a running dispatcher do."""

from __future__ import annotations

import os
import pwd
import shutil
import site
import stat
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest

import nbfrost
from nbfrost.history import history

WAIT = 20


def test_a_new_history_file_and_its_wal_files_are_readable_by_the_owner_only(tmp_path,
                                                                             thread_baseline):
    path = tmp_path / "jobs.sqlite"
    old = os.umask(0o022)  # the usual umask, which would give 0644
    try:
        with nbfrost.Dispatcher(workers=1, history=path) as d:
            assert d.queue(pow, 2, 3).result(WAIT) == 8
            assert d.flush_history(WAIT)
            made = [p for p in tmp_path.iterdir() if p.name.startswith("jobs.sqlite")]
            assert {p.name for p in made} >= {"jobs.sqlite", "jobs.sqlite-wal"}
            for p in made:
                assert stat.S_IMODE(p.stat().st_mode) == 0o600, p.name
    finally:
        os.umask(old)


def test_an_empty_file_is_taken_as_a_new_history(tmp_path, thread_baseline):
    # On purpose: nbfrost itself creates the file empty (0600) before SQLite
    # writes the schema, so an empty file is what a start that died half-way
    # leaves behind; it must open.
    path = tmp_path / "jobs.sqlite"
    path.write_bytes(b"")
    with nbfrost.Dispatcher(workers=1, history=path) as d:
        assert d.queue(pow, 2, 4).result(WAIT) == 16
    assert list(history(path)["state"]) == ["succeeded"]


def test_history_of_a_folder_does_not_suggest_that_folder(tmp_path):
    with pytest.raises(IsADirectoryError) as raised:
        history(tmp_path)
    text = str(raised.value)
    assert "is a folder" in text
    assert f"Dispatcher(history={str(tmp_path)!r})" not in text
    assert repr(os.path.join(tmp_path, "jobs.sqlite")) in text


def test_a_deleted_history_file_is_noticed_not_written_to_in_silence(tmp_path, thread_baseline):
    path = tmp_path / "jobs.sqlite"
    with nbfrost.Dispatcher(workers=1, history=path) as d:
        assert d.queue(pow, 2, 2).result(WAIT) == 4
        assert d.flush_history(WAIT)
        assert d.stats()["history_error"] is None
        for p in tmp_path.iterdir():
            p.unlink()  # jobs.sqlite and its -wal, -shm
        assert d.queue(pow, 3, 2).result(WAIT) == 9  # jobs still run
        with pytest.raises(FileNotFoundError, match="deleted or replaced"):
            d.flush_history(WAIT)
        assert "deleted or replaced" in d.stats()["history_error"]
        with pytest.raises(FileNotFoundError, match=r"Dispatcher\(history=\.\.\.\)"):
            d.flush_history(WAIT)  # and stays said
    assert not path.exists()  # nothing made it up again


#: Run as an unprivileged user (root ignores file modes): opening a history in
#: a read-only folder, and a read-only file, must fail the same way.
_READ_ONLY = textwrap.dedent("""
    import os, sys
    import nbfrost
    folder, made = sys.argv[1], sys.argv[2]
    kinds = []
    for path in (os.path.join(folder, "new.sqlite"), made):
        try:
            nbfrost.Dispatcher(workers=1, history=path).shutdown()
        except Exception as exc:
            kinds.append(type(exc).__name__)
            print(type(exc).__name__, exc)
        else:
            kinds.append("opened")
    sys.exit(0 if kinds == ["PermissionError", "PermissionError"] else 1)
""")


def _python_for_nobody() -> str:
    """An interpreter of this Python version that the user nobody may run
    (pyenv's live under /root, which is 0700): the system's, if it matches."""
    for candidate in (f"/usr/bin/python{sys.version_info[0]}.{sys.version_info[1]}",
                      "/usr/bin/python3"):
        if os.path.exists(candidate):
            version = subprocess.run([candidate, "-c", "import sys; print(sys.version_info[:2])"],
                                     capture_output=True, text=True).stdout.strip()
            if version == str(tuple(sys.version_info[:2])):
                return candidate
    pytest.skip(f"as root, this needs a Python {sys.version_info[0]}.{sys.version_info[1]} the "
                "user nobody may run (root ignores file modes); none in /usr/bin")


def test_a_read_only_folder_and_a_read_only_file_give_the_same_error(tmp_path):
    # A folder an unprivileged user can reach (pytest's tmp dirs are 0700).
    base = Path(tempfile.mkdtemp(prefix="nbfrost-ro-"))
    try:
        base.chmod(0o755)
        made = base / "made.sqlite"
        with nbfrost.Dispatcher(workers=1, history=made) as d:
            assert d.queue(pow, 1, 1).result(WAIT) == 1
        for p in base.iterdir():
            p.chmod(0o444)
        base.chmod(0o555)
        kwargs: dict = {}
        python = sys.executable
        path = [str(Path(nbfrost.__file__).resolve().parents[1])]
        if os.geteuid() == 0:
            python = _python_for_nobody()
            path += site.getsitepackages()
            kwargs["user"] = pwd.getpwnam("nobody").pw_uid
            kwargs["group"] = pwd.getpwnam("nobody").pw_gid
            kwargs["extra_groups"] = []
        out = subprocess.run([python, "-c", _READ_ONLY, str(base), str(made)],
                             capture_output=True, text=True, timeout=120,
                             env={**os.environ, "PYTHONPATH": os.pathsep.join(path),
                                  "HOME": str(base), "NBFROST_PUBLISH": "0"}, **kwargs)
        assert out.returncode == 0, out.stdout + out.stderr
        assert out.stdout.count("is read-only") == 2, out.stdout
    finally:
        base.chmod(0o755)
        shutil.rmtree(base)
