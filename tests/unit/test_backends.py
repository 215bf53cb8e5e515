"""Both backends have everything the dispatcher and the magics use (the
`Backend` protocol), and the Dask backend's pieces stay where workers and
users import them from."""

import pickle

import pytest

import nbfrost
from nbfrost.backends import Backend, make_backend
from nbfrost.backends.threads import ThreadBackend


def test_thread_backend_is_a_backend():
    backend = ThreadBackend(1)
    assert isinstance(backend, Backend)
    assert backend.shares_namespace
    with pytest.raises(RuntimeError, match="notebook's namespace"):
        backend.make_cell_job("1", "<cell>", {})


def test_dispatcher_backend_is_a_backend():
    with nbfrost.Dispatcher(1) as d:
        assert isinstance(d.backend, Backend)


def test_dask_backend_is_a_backend():
    pytest.importorskip("distributed")
    from nbfrost.backends.dask import DaskBackend

    backend = DaskBackend(1)  # nothing starts before start()
    assert isinstance(backend, Backend)
    assert not backend.shares_namespace


def test_make_backend_rejects_what_it_cannot_build():
    with pytest.raises(ValueError, match="threads, dask"):
        make_backend("gpu", 1, 10, {})
    with pytest.raises(TypeError, match="thread backend"):
        make_backend("threads", 1, 10, {"address": "x"})


def test_remote_job_error_is_an_nbfrost_error_importable_from_both_places():
    pytest.importorskip("distributed")
    from nbfrost.backends.dask import RemoteJobError as from_backend
    from nbfrost.errors import NbfrostError, RemoteJobError

    assert from_backend is RemoteJobError and issubclass(RemoteJobError, NbfrostError)
    error = pickle.loads(pickle.dumps(RemoteJobError("mod.Bad: text")))
    assert str(error) == "mod.Bad: text"


def test_worker_messages_survive_the_event_wire_format():
    from nbfrost.backends.dask.worker import Progress, Started, _event, parse_event

    for msg in (Started(3, 1, "tcp://127.0.0.1:1", 0.5), Progress(3, 0.25, "a quarter")):
        payload = _event(msg)
        assert type(payload) is list  # msgpack-serializable, as log_event requires
        assert parse_event(payload) == msg and type(parse_event(payload)) is type(msg)
    assert parse_event(["?", 1]) is None
