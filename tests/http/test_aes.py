"""``/api/aes``: the known DICOM peers over REST, with RFC 9457 problems for errors."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from ris.services import Services
from tests.http.problems import assert_problem
from viewer_api import create_app

PEER = {"ae_title": "STORESCP", "host": "10.0.0.7", "port": 104, "description": "reading room"}


@pytest.fixture
def client(services: Services) -> Iterator[TestClient]:
    with TestClient(create_app(services)) as c:
        yield c


def test_create_list_get_delete(client: TestClient, services: Services) -> None:
    assert client.get("/api/aes").json() == []

    created = client.post("/api/aes", json=PEER)
    assert created.status_code == 201, created.text
    assert created.json() == PEER
    minimal = client.post("/api/aes", json={"ae_title": "WS2", "host": "ws2.example.org",
                                            "port": 11113})
    assert minimal.status_code == 201, minimal.text
    assert minimal.json()["description"] == ""

    listed = client.get("/api/aes")
    assert listed.status_code == 200
    assert [ae["ae_title"] for ae in listed.json()] == ["STORESCP", "WS2"]
    assert listed.json()[0] == PEER
    assert client.get("/api/aes/STORESCP").json() == PEER
    # the same registry as the command line and the C-MOVE handler
    assert [ae.ae_title for ae in services.aes.list()] == ["STORESCP", "WS2"]

    deleted = client.delete("/api/aes/STORESCP")
    assert deleted.status_code == 204
    assert deleted.content == b""
    assert_problem(client.get("/api/aes/STORESCP"), 404)
    assert [ae["ae_title"] for ae in client.get("/api/aes").json()] == ["WS2"]


def test_a_title_of_16_characters_is_accepted(client: TestClient) -> None:
    peer = dict(PEER, ae_title="A" * 16)
    assert client.post("/api/aes", json=peer).status_code == 201
    assert client.get(f"/api/aes/{'A' * 16}").json() == peer


def test_duplicate_is_a_409_problem(client: TestClient) -> None:
    assert client.post("/api/aes", json=PEER).status_code == 201
    body = assert_problem(client.post("/api/aes", json=dict(PEER, host="10.0.0.8")), 409)
    assert "STORESCP" in str(body["detail"])
    assert client.get("/api/aes/STORESCP").json()["host"] == "10.0.0.7"  # unchanged


def test_unknown_ae_is_a_404_problem(client: TestClient) -> None:
    body = assert_problem(client.get("/api/aes/NOBODY"), 404)
    assert "NOBODY" in str(body["detail"])
    assert_problem(client.delete("/api/aes/NOBODY"), 404)


INVALID: dict[str, dict[str, Any]] = {
    "port 0": dict(PEER, port=0),
    "port 65536": dict(PEER, port=65536),
    "port not a number": dict(PEER, port="one-oh-four"),
    "title longer than 16": dict(PEER, ae_title="A" * 17),
    "empty title": dict(PEER, ae_title=""),
    "no host": {k: v for k, v in PEER.items() if k != "host"},
    "no port": {k: v for k, v in PEER.items() if k != "port"},
}


@pytest.mark.parametrize("body", INVALID.values(), ids=INVALID.keys())
def test_invalid_body_is_a_422_problem(client: TestClient, body: dict[str, Any]) -> None:
    problem = assert_problem(client.post("/api/aes", json=body), 422)
    wrong = next(k for k in ("port", "ae_title", "host")
                 if k not in body or body[k] != PEER[k])
    assert wrong in str(problem["detail"]), problem  # names the offending field
    assert client.get("/api/aes").json() == []


def test_body_that_is_not_json_is_a_422_problem(client: TestClient) -> None:
    response = client.post("/api/aes", content=b"ae_title=X",
                           headers={"content-type": "application/json"})
    assert_problem(response, 422)
    assert client.get("/api/aes").json() == []


def test_title_with_a_backslash_is_refused(client: TestClient) -> None:
    response = client.post("/api/aes", json=dict(PEER, ae_title="A\\B"))
    assert response.status_code in (400, 422), response.text
    assert_problem(response, response.status_code)
    assert client.get("/api/aes").json() == []


def test_unknown_path_is_a_404_problem(client: TestClient) -> None:
    """SPEC.md: errors are RFC 9457 problem+json, routing errors included."""
    assert_problem(client.get("/api/aes/STORESCP/no-such-thing"), 404)


def test_unsupported_method_is_a_405_problem(client: TestClient) -> None:
    response = client.patch("/api/aes", json=PEER)
    assert_problem(response, 405)
    assert "allow" in {k.lower() for k in response.headers}
