"""nbfrost in a plain interpreter (``python script.py``, a real subprocess):
exit waits for unfinished jobs as ThreadPoolExecutor does, and Ctrl-C during
``t.result()`` names the API call and keeps nbfrost's frames out."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import nbfrost
from nbfrost import defaults

REPO = Path(__file__).resolve().parents[2]


def run_script(tmp_path: Path, code: str, timeout: float = 60) -> subprocess.CompletedProcess:
    script = tmp_path / "script.py"
    script.write_text(code)
    return subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=timeout, cwd=tmp_path)


def test_exit_waits_for_queued_and_running_jobs_and_says_so(tmp_path):
    done = tmp_path / "done.txt"
    started = time.monotonic()
    proc = run_script(tmp_path, f"""
import time, nbfrost

def slow(path):
    time.sleep({defaults.EXIT_NOTICE_AFTER} + 0.8)
    open(path, "a").write("slow\\n")

d = nbfrost.Dispatcher(workers=1)
d.queue(slow, {str(done)!r}, name="slow")
d.queue(lambda: open({str(done)!r}, "a").write("queued\\n"), name="queued")
print("end of script")
""")
    took = time.monotonic() - started
    assert proc.returncode == 0, proc.stderr
    assert done.read_text() == "slow\nqueued\n"          # nothing dropped, in order
    assert took >= defaults.EXIT_NOTICE_AFTER + 0.8
    notes = [line for line in proc.stderr.splitlines() if line.startswith("nbfrost:")]
    assert notes == ["nbfrost: waiting for 2 unfinished jobs before exit (Ctrl-C stops "
                     "waiting; Dispatcher(wait_at_exit=False) never waits)"], proc.stderr


def test_a_short_wait_at_exit_is_silent(tmp_path):
    done = tmp_path / "done.txt"
    proc = run_script(tmp_path, f"""
import time, nbfrost
d = nbfrost.Dispatcher(workers=2)
for i in range(5):
    d.queue(lambda i=i: (time.sleep(0.05), open({str(done)!r}, "a").write(f"{{i}}\\n")))
""")
    assert proc.returncode == 0, proc.stderr
    assert sorted(done.read_text().split()) == ["0", "1", "2", "3", "4"]
    assert "nbfrost" not in proc.stderr


def test_wait_at_exit_false_drops_unfinished_jobs(tmp_path):
    done = tmp_path / "done.txt"
    started = time.monotonic()
    proc = run_script(tmp_path, f"""
import time, nbfrost
d = nbfrost.Dispatcher(workers=1, wait_at_exit=False)
d.queue(lambda: (time.sleep(30), open({str(done)!r}, "w").write("x")))
""")
    assert proc.returncode == 0, proc.stderr
    assert time.monotonic() - started < 20
    assert not done.exists() and "nbfrost" not in proc.stderr


def test_wait_at_exit_must_be_a_bool():
    import nbfrost

    with pytest.raises(TypeError, match="wait_at_exit must be True or False"):
        nbfrost.Dispatcher(wait_at_exit="yes")  # type: ignore[arg-type]


def test_ctrl_c_in_result_names_the_api_call_and_hides_nbfrost_frames(tmp_path):
    script = tmp_path / "ctrlc.py"
    # The job presses Ctrl-C (SIGINT to its own process) once the main thread
    # is inside t.result(): no guessing how long the script takes to get there.
    # A shell's background job inherits SIGINT ignored, so the script puts
    # Python's own handler back, as an interactive run has it.
    script.write_text("""
import os, signal, sys, threading, time
import nbfrost
signal.signal(signal.SIGINT, signal.default_int_handler)

def in_result():
    frame = sys._current_frames().get(threading.main_thread().ident)
    while frame is not None:
        if frame.f_code.co_name == "result":
            return True
        frame = frame.f_back
    return False

def nap():
    while not in_result():
        time.sleep(0.01)
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(3)

d = nbfrost.Dispatcher(workers=1)
t = d.queue(nap, name="nap")
t.result()
""")
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    try:
        _out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "nbfrost.errors.WaitInterrupted: stopped waiting; 1 job keeps running" in err
    assert "job 0 'nap' (running)" in err
    assert "to stop it: t.cancel() on its tracker t, or d.cancel(0) on its dispatcher d" in err
    assert "%frost" not in err
    frames = [line.strip() for line in err.splitlines() if line.strip().startswith("File ")]
    # nbfrost's frames are those in its package folder (a checkout's folder
    # may itself be called "...nbfrost", as /tmp/fresh-nbfrost is).
    package = os.path.dirname(os.path.abspath(nbfrost.__file__)) + os.sep
    ours = [f for f in frames if f'File "{package}' in f]
    assert frames[0].startswith(f'File "{script}"'), err
    # One frame of nbfrost's at most: the public call the script made.
    assert len(ours) <= 1 and all(f.endswith("in result") for f in ours), err
