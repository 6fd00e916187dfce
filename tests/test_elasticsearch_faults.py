"""The Elasticsearch sink when the server answers 429 or 503, refuses some documents of a bulk
request, is slow, or sits behind TLS: a `FaultProxy` in front of the real Elasticsearch adds those
answers, and what counts is still what the real server stored.
"""
from __future__ import annotations

import logging
import socket
import ssl
import threading

import orjson
import pytest
import trustme
from elasticsearch_server import (
    FaultProxy,
    flow_documents,
    wait_until,
)

from ipfix_antrea.sinks import SinkError
from ipfix_antrea.sinks.elasticsearch import (
    ElasticsearchOptions,
    ElasticsearchSink,
    make_client,
)


@pytest.fixture
def proxy(server):
    with FaultProxy(server.url, server.auth) as p:
        yield p


def open_es(urls, prefix, tmp_path, **settings) -> ElasticsearchSink:
    settings.setdefault("retry_for", 60)
    options = ElasticsearchOptions(index=f"{prefix}-%Y.%m.%d", template_name=prefix,
                                   dead_letter=str(tmp_path / "dead.jsonl"), **settings)
    return ElasticsearchSink(make_client(urls, options), options, name="test")


def stored(server, prefix) -> int:
    with server.client() as es:
        es.indices.refresh(index=f"{prefix}-*")
        return es.count(index=f"{prefix}-*")["count"]


def dead_letters(tmp_path) -> list[dict]:
    path = tmp_path / "dead.jsonl"
    return [orjson.loads(line) for line in path.read_bytes().splitlines()] if path.exists() else []


def free_port() -> int:
    """A loopback port with nothing listening on it."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("status", [429, 503])
def test_a_bulk_request_answered_with_status_is_sent_again(server, prefix, proxy, tmp_path, status):
    docs, _ = flow_documents(100)
    sink = open_es([proxy.url], prefix, tmp_path, batch_docs=50)
    proxy.faults.bulk_statuses = [status, status]
    sink.write(docs)
    sink.close()
    assert stored(server, prefix) == 100
    assert proxy.bulk_requests == 4
    assert sink.stats()["retried"] == 100 and sink.stats()["indexed"] == 100



def test_a_request_that_succeeds_after_retries_says_so_in_the_log(server, prefix, proxy, tmp_path, caplog):
    docs, _ = flow_documents(10)
    sink = open_es([proxy.url], prefix, tmp_path)
    proxy.faults.bulk_statuses = [503, 503]
    with caplog.at_level(logging.INFO, logger="ipfix_antrea"):
        sink.write(docs)
        sink.close()
    said = [r.getMessage() for r in caplog.records]
    assert any("10 document(s) not delivered yet" in line for line in said)
    assert any("delivered after retrying for" in line and "(3 attempts)" in line for line in said)

def test_documents_refused_with_429_inside_a_bulk_response_are_sent_again(server, prefix, proxy,
                                                                           tmp_path):
    docs, _ = flow_documents(90)
    sink = open_es([proxy.url], prefix, tmp_path, batch_docs=90)
    proxy.faults.refuse_every, proxy.faults.refuse_requests = 3, 1
    sink.write(docs)
    sink.close()
    assert proxy.refused_documents == 30
    assert stored(server, prefix) == 90
    assert sink.stats()["retried"] == 30


def test_when_the_retry_budget_runs_out_close_fails_and_the_documents_are_dead_lettered(
        server, prefix, proxy, tmp_path):
    docs, _ = flow_documents(40)
    sink = open_es([proxy.url], prefix, tmp_path, retry_for=1)
    proxy.faults.always_status = 503
    sink.write(docs)
    with pytest.raises(SinkError, match=r"40 document\(s\) not delivered"):
        sink.close()
    dead = dead_letters(tmp_path)
    assert [d["document"] for d in dead] == docs
    assert all("503" in d["reason"] for d in dead)
    assert sink.stats()["failed"] == 40 and sink.stats()["in_flight"] == 0


def test_a_refused_request_fails_the_sink_and_keeps_its_documents(server, prefix, proxy, tmp_path):
    docs, _ = flow_documents(10)
    sink = open_es([proxy.url], prefix, tmp_path)
    proxy.faults.bulk_statuses = [401]
    sink.write(docs)
    with pytest.raises(SinkError, match="401"):
        sink.flush()
    with pytest.raises(SinkError, match=r"10 document\(s\) not delivered"):
        sink.close()
    assert [d["document"] for d in dead_letters(tmp_path)] == docs


def test_write_blocks_while_every_request_is_in_flight(server, prefix, proxy, tmp_path):
    docs, _ = flow_documents(30)
    sink = open_es([proxy.url], prefix, tmp_path, batch_docs=10, in_flight=1)
    proxy.faults.gate = gate = threading.Event()
    writer = threading.Thread(target=sink.write, args=(docs,))
    writer.start()
    writer.join(timeout=1.0)
    assert writer.is_alive()  # one request held by the proxy, the next batch waits for its slot
    gate.set()
    writer.join(timeout=30)
    assert not writer.is_alive()
    sink.close()
    assert stored(server, prefix) == 30


def test_opening_does_not_wait_for_an_unreachable_server_and_neither_does_closing(prefix, tmp_path):
    sink = open_es([f"http://127.0.0.1:{free_port()}"], prefix, tmp_path, retry_for=600)
    assert not sink.ready()  # the index template is being retried in the background
    sink.close()  # nothing was written: nothing to wait for
    assert not (tmp_path / "dead.jsonl").exists()


def test_an_unreachable_server_fails_the_sink_once_the_retry_budget_is_spent(prefix, tmp_path):
    docs, _ = flow_documents(10)
    sink = open_es([f"http://127.0.0.1:{free_port()}"], prefix, tmp_path, retry_for=0.5)
    sink.write(docs)  # accepted: they wait for the template
    with pytest.raises(SinkError, match=r"10 document\(s\) not delivered .*index template failed after retrying"):
        sink.close()
    assert not sink.ready() and sink.undelivered() == 10
    assert [d["document"] for d in dead_letters(tmp_path)] == docs


def test_the_sink_gets_ready_when_the_server_comes_up(server, prefix, tmp_path):
    port = free_port()
    docs, _ = flow_documents(50)
    sink = open_es([f"http://127.0.0.1:{port}"], prefix, tmp_path, retry_for=120)
    sink.write(docs)
    assert not sink.ready()
    with FaultProxy(server.url, server.auth, port=port):  # Elasticsearch "starts"
        assert wait_until(sink.ready, timeout=60)
        sink.close()
    assert stored(server, prefix) == 50 and sink.undelivered() == 0


def test_with_several_hosts_a_dead_one_is_passed_over(server, prefix, tmp_path):
    docs, _ = flow_documents(200)
    sink = open_es([f"http://127.0.0.1:{free_port()}", server.url], prefix, tmp_path,
                   batch_docs=20, user=server.user, password=server.password)
    sink.write(docs)
    sink.close()
    assert stored(server, prefix) == 200


def test_an_api_key_is_sent_as_apikey_authorization(server, prefix, proxy, tmp_path):
    open_es([proxy.url], prefix, tmp_path, api_key="a2V5LWlkOnNlY3JldA==").close()
    assert proxy.authorizations and set(proxy.authorizations) == {"ApiKey a2V5LWlkOnNlY3JldA=="}


def test_basic_auth_is_sent_as_basic_authorization(server, prefix, proxy, tmp_path):
    open_es([proxy.url], prefix, tmp_path, user="flows", password="pw").close()
    assert set(proxy.authorizations) == {"Basic Zmxvd3M6cHc="}


# --------------------------------------------------------------------------- TLS


@pytest.fixture(scope="module")
def ca():
    return trustme.CA()


@pytest.fixture
def tls_proxy(server, ca):
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    with FaultProxy(server.url, server.auth, tls=context) as p:
        yield p


def test_tls_with_the_ca_verifies_the_server(server, prefix, tls_proxy, ca, tmp_path):
    pem = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(pem))
    docs, _ = flow_documents(5)
    sink = open_es([tls_proxy.url], prefix, tmp_path, ca=str(pem))
    sink.write(docs)
    sink.close()
    assert stored(server, prefix) == 5


def test_tls_without_the_ca_refuses_the_server(prefix, tls_proxy, tmp_path):
    sink = open_es([tls_proxy.url], prefix, tmp_path, retry_for=0.5)
    sink.write(flow_documents(1)[0])
    with pytest.raises(SinkError, match=r"(?i)certificate"):
        sink.close()


def test_tls_insecure_accepts_the_server_unverified(server, prefix, tls_proxy, tmp_path):
    docs, _ = flow_documents(5)
    sink = open_es([tls_proxy.url], prefix, tmp_path, insecure=True)
    sink.write(docs)
    sink.close()
    assert stored(server, prefix) == 5
