"""The shipped JSON Schema for `JobStatus.to_dict()`, checked against real
snapshots in every state (and against hand-made wrong documents, so the
schema is known to reject what it must)."""

from __future__ import annotations

import json
import threading
from importlib import resources

import jsonschema
import pytest

import nbfrost
from nbfrost import JobState

WAIT = 10.0


@pytest.fixture(scope="module")
def validator() -> jsonschema.protocols.Validator:
    text = resources.files("nbfrost").joinpath("schema/status.schema.json").read_text("utf-8")
    schema = json.loads(text)
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def _wait_state(t: nbfrost.Tracker, state: JobState) -> None:
    import time

    deadline = time.monotonic() + WAIT
    while t.state is not state:
        assert time.monotonic() < deadline, f"job {t.id} stuck in {t.state}"
        time.sleep(0.001)


def test_every_state_validates(dispatcher, clock, validator):
    d = dispatcher
    gate = threading.Event()
    cancel_seen = threading.Event()

    def reporting() -> None:
        nbfrost.report(0.5, "half")
        assert gate.wait(WAIT)

    def cooperative() -> None:
        while not nbfrost.cancelled():
            cancel_seen.wait(0.001)

    run = d.queue(reporting, name="run", tags=["a"])
    coop = d.queue(cooperative)
    blockers = [d.queue(gate.wait, WAIT) for _ in range(2)]
    queued = d.queue(int, name="q")
    doomed = d.queue(int)
    _wait_state(run, JobState.RUNNING)
    for b in blockers:
        _wait_state(b, JobState.RUNNING)

    docs: dict[str, dict] = {"queued": queued.status().to_dict(), "running": run.status().to_dict()}
    assert doomed.cancel()
    docs["cancelled-before-start"] = doomed.status().to_dict()
    assert coop.cancel()
    assert coop.wait(WAIT)
    docs["cancelled-while-running"] = coop.status().to_dict()
    clock.advance(1)
    gate.set()
    assert d.wait(timeout=WAIT)
    docs["succeeded"] = run.status().to_dict()
    failed = d.queue(lambda: {}["missing"])  # type: ignore[index]  # a KeyError on purpose
    assert failed.wait(WAIT)
    docs["failed"] = failed.status().to_dict()
    retried = d.queue(lambda: 1 / 0, retries=2)
    assert retried.wait(WAIT)
    docs["failed-after-retries"] = retried.status().to_dict()

    expected_states = {
        "queued": "queued", "running": "running", "cancelled-before-start": "cancelled",
        "cancelled-while-running": "cancelled", "succeeded": "succeeded", "failed": "failed",
        "failed-after-retries": "failed",
    }
    for label, doc in docs.items():
        assert doc["state"] == expected_states[label], label
        validator.validate(doc)
        # Through real JSON text, too.
        validator.validate(json.loads(json.dumps(doc)))
    assert docs["failed-after-retries"]["attempts"] == 3
    assert docs["running"]["progress"] == 0.5 and docs["running"]["message"] == "half"
    for doc in d.jobs():
        validator.validate(doc.to_dict())


def _good_doc(dispatcher) -> dict:
    t = dispatcher.queue(int)
    assert t.wait(WAIT)
    return t.status().to_dict()


@pytest.mark.parametrize("mutate", [
    pytest.param(lambda d: d.pop("success"), id="complete-without-success"),
    pytest.param(lambda d: d.pop("finished_at"), id="complete-without-finished_at"),
    pytest.param(lambda d: d.update(complete=False), id="incomplete-with-success"),
    pytest.param(lambda d: d.update(state="done"), id="unknown-state"),
    pytest.param(lambda d: d.update(queued_at="yesterday"), id="bad-time"),
    pytest.param(lambda d: d.update(queued_at="2023-11-14 22:13:20"), id="time-without-offset"),
    pytest.param(lambda d: d.update(id=-1), id="negative-id"),
    pytest.param(lambda d: d.update(progress=1.5), id="progress-above-one"),
    pytest.param(lambda d: d.update(tags=[1]), id="non-string-tag"),
    pytest.param(lambda d: d.update(success=False), id="succeeded-but-not-success"),
    pytest.param(lambda d: d.update(extra=1), id="unknown-field"),
    pytest.param(lambda d: d.pop("attempts"), id="missing-attempts"),
])
def test_schema_rejects_wrong_documents(dispatcher, validator, mutate):
    doc = _good_doc(dispatcher)
    validator.validate(doc)
    mutate(doc)
    with pytest.raises(jsonschema.ValidationError):
        validator.validate(doc)


def test_schema_is_shipped_as_package_data():
    from pathlib import Path

    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11

    import subprocess

    root = Path(__file__).parents[2]
    pyproject = tomllib.loads((root / "pyproject.toml").read_text())
    # hatch puts every file of the package that git does not ignore in the
    # wheel (tests/package/ installs a built wheel and reads the schema).
    assert pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"] == ["nbfrost"]
    ignored = subprocess.run(["git", "check-ignore", "-q", "--no-index", "nbfrost/schema/status.schema.json"],
                             cwd=root)
    assert ignored.returncode == 1
    assert resources.files("nbfrost").joinpath("schema/status.schema.json").is_file()
