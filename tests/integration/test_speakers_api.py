"""The speaker library over the real app: CRUD, validation, search and identification with
hand-made vectors, on SQLite and PostgreSQL (models are not involved here)."""

from __future__ import annotations

import uuid
from typing import Any

import numpy as np
import pytest
from litestar.testing import AsyncTestClient

from whisperx_api.pipeline.encoders import CAMPP_MODEL

DIM = 192


def unit(index: int, dim: int = DIM) -> list[float]:
    vector = [0.0] * dim
    vector[index] = 1.0
    return vector


def mix(weights: dict[int, float], dim: int = DIM) -> list[float]:
    vector = [0.0] * dim
    for index, weight in weights.items():
        vector[index] = weight
    return vector


def cosine(a: list[float], b: list[float]) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


async def create(client: AsyncTestClient, label: str, embedding: list[float], **extra: Any) -> dict[str, Any]:
    response = await client.post("/speakers", json={"speaker_label": label, "embedding": embedding, **extra})
    assert response.status_code == 201, response.text
    return dict(response.json())


def error_of(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "code", "param"} and error["message"]
    return dict(error)


async def test_create_get_update_delete(client: AsyncTestClient) -> None:
    task = str(uuid.uuid4())
    created = await create(client, "  Alice  Smith ", [3.0, 4.0] + [0.0] * (DIM - 2), description="host",
                           task_uuid=task)  # fmt: skip
    assert created["speaker_label"] == "Alice Smith"
    assert created["encoder_model"] == CAMPP_MODEL and created["dimension"] == DIM
    assert created["task_uuid"] == task and created["description"] == "host"
    # stored normalised, as float32
    assert created["embedding"][:2] == pytest.approx([0.6, 0.8], abs=1e-6)

    fetched = (await client.get(f"/speakers/{created['uuid']}")).json()
    assert fetched["uuid"] == created["uuid"] and fetched["embedding"][:2] == pytest.approx([0.6, 0.8], abs=1e-6)

    renamed = await client.put(f"/speakers/{created['uuid']}", json={"speaker_label": "Alice S.", "description": None})
    assert renamed.status_code == 200, renamed.text
    body = renamed.json()
    assert body["speaker_label"] == "Alice S." and body["description"] is None and body["task_uuid"] == task
    assert body["updated_at"] >= created["updated_at"]

    moved = (await client.put(f"/speakers/{created['uuid']}", json={"embedding": unit(7)})).json()
    assert moved["embedding"][7] == pytest.approx(1.0) and moved["speaker_label"] == "Alice S."

    deleted = await client.delete(f"/speakers/{created['uuid']}")
    assert deleted.status_code == 200 and deleted.json()["uuid"] == created["uuid"]
    assert error_of(await client.get(f"/speakers/{created['uuid']}"), 404)["code"] == "SPEAKER_NOT_FOUND"
    assert error_of(await client.delete(f"/speakers/{created['uuid']}"), 404)["code"] == "SPEAKER_NOT_FOUND"


async def test_list_filters_paging_newest_first_and_bulk_delete(client: AsyncTestClient) -> None:
    task_a, task_b = str(uuid.uuid4()), str(uuid.uuid4())
    made = [await create(client, f"p{i}", unit(i), task_uuid=task_a if i < 3 else task_b) for i in range(5)]
    page = (await client.get("/speakers", params={"limit": 2})).json()
    assert page["total"] == 5 and page["limit"] == 2 and page["offset"] == 0
    assert [s["uuid"] for s in page["speakers"]] == [made[4]["uuid"], made[3]["uuid"]]
    assert "embedding" not in page["speakers"][0]
    rest = (await client.get("/speakers", params={"limit": 2, "offset": 4})).json()
    assert [s["uuid"] for s in rest["speakers"]] == [made[0]["uuid"]]
    by_task = (await client.get("/speakers", params={"task_uuid": task_a})).json()
    assert by_task["total"] == 3 and {s["task_uuid"] for s in by_task["speakers"]} == {task_a}
    by_label = (await client.get("/speakers", params={"label": "p3", "include_embeddings": True})).json()
    assert [s["uuid"] for s in by_label["speakers"]] == [made[3]["uuid"]]
    assert by_label["speakers"][0]["embedding"][3] == pytest.approx(1.0)

    bulk = await client.delete("/speakers", params={"task_uuid": task_a})
    assert bulk.status_code == 200 and bulk.json() == {"task_uuid": task_a, "deleted": 3}
    assert (await client.get("/speakers")).json()["total"] == 2
    # the index forgot them too
    search = (await client.post("/speakers/search", json={"embedding": unit(0), "threshold": 0.0})).json()
    assert {h["speaker"]["speaker_label"] for h in search["results"]} == {"p3", "p4"}
    assert (await client.delete("/speakers", params={"task_uuid": task_a})).json()["deleted"] == 0
    assert error_of(await client.delete("/speakers"), 422)["param"] == "task_uuid"
    assert error_of(await client.delete("/speakers", params={"task_uuid": "nope"}), 422)["param"] == "task_uuid"


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        ({"speaker_label": "x", "embedding": []}, "embedding", "VALIDATION_ERROR"),
        ({"speaker_label": "x", "embedding": ["a", "b"]}, "embedding", "VALIDATION_ERROR"),
        ({"speaker_label": "x", "embedding": "0.1,0.2"}, "embedding", "VALIDATION_ERROR"),
        ({"speaker_label": "x", "embedding": [0.0] * DIM}, "embedding", "INVALID_EMBEDDING"),
        ({"speaker_label": "x", "embedding": [0.1] * 191}, "embedding", "EMBEDDING_DIMENSION_MISMATCH"),
        ({"speaker_label": "", "embedding": unit(0)}, "speaker_label", "VALIDATION_ERROR"),
        ({"speaker_label": "   ", "embedding": unit(0)}, "speaker_label", "VALIDATION_ERROR"),
        ({"embedding": unit(0)}, "speaker_label", "VALIDATION_ERROR"),
        ({"speaker_label": "x", "embedding": unit(0), "task_uuid": "no"}, "task_uuid", "VALIDATION_ERROR"),
        ({"speaker_label": "x", "embedding": unit(0), "label": "typo"}, "label", "UNKNOWN_PARAMETER"),
    ],
)
async def test_create_rejects_bad_vectors_and_fields(
    client: AsyncTestClient, body: dict[str, Any], param: str, code: str
) -> None:
    error = error_of(await client.post("/speakers", json=body), 422)
    assert (error["param"], error["code"]) == (param, code), error
    assert (await client.get("/speakers")).json()["total"] == 0  # nothing half-written


async def test_nan_and_infinity_tokens_and_malformed_json_are_rejected(client: AsyncTestClient) -> None:
    # Python's json module writes NaN/Infinity, which are not JSON: the body is malformed
    for token in ("NaN", "Infinity", "-Infinity"):
        raw = '{"speaker_label": "x", "embedding": [' + ", ".join([token] + ["0.1"] * (DIM - 1)) + "]}"
        response = await client.post("/speakers", content=raw, headers={"content-type": "application/json"})
        error = error_of(response, 400)
        assert "json" in error["message"].lower(), error
    # a number too large for a double is refused while decoding, not read as infinity
    huge = '{"speaker_label": "x", "embedding": [' + ", ".join(["1e999"] + ["0.1"] * (DIM - 1)) + "]}"
    response = await client.post("/speakers", content=huge, headers={"content-type": "application/json"})
    assert "out of range" in error_of(response, 400)["message"]
    broken = await client.post("/speakers", content="{", headers={"content-type": "application/json"})
    error_of(broken, 400)
    assert (await client.get("/speakers")).json()["total"] == 0


async def test_update_validation(client: AsyncTestClient) -> None:
    speaker = await create(client, "bob", unit(1))
    path = f"/speakers/{speaker['uuid']}"
    assert error_of(await client.put(path, json={}), 422)["code"] == "EMPTY_UPDATE"
    assert error_of(await client.put(path, json={"speaker_label": None}), 422)["param"] == "speaker_label"
    assert error_of(await client.put(path, json={"embedding": [0.1] * 3}), 422)["code"] == (
        "EMBEDDING_DIMENSION_MISMATCH"
    )
    assert error_of(await client.put(path, json={"encoder_model": "other"}), 422)["param"] == "encoder_model"
    assert error_of(await client.put(path, json={"nickname": "b"}), 422)["param"] == "nickname"
    missing = f"/speakers/{uuid.uuid4()}"
    assert error_of(await client.put(missing, json={"speaker_label": "x"}), 404)["code"] == "SPEAKER_NOT_FOUND"
    assert error_of(await client.get("/speakers/not-a-uuid"), 404)["code"] == "SPEAKER_NOT_FOUND"
    assert (await client.get(path)).json()["speaker_label"] == "bob"  # unchanged by the failures


async def test_search_orders_by_cosine_similarity(client: AsyncTestClient) -> None:
    query = mix({0: 1.0, 1: 0.2})
    stored = {
        "exact": mix({0: 5.0, 1: 1.0}),  # same direction, other scale: similarity 1
        "close": mix({0: 1.0, 1: 0.5}),
        "further": mix({0: 1.0, 1: 1.0}),
        "orthogonal": unit(2),
        "opposite": mix({0: -1.0}),
    }
    for label, vector in stored.items():
        await create(client, label, vector)
    response = await client.post("/speakers/search", json={"embedding": query, "threshold": 0.0, "limit": 10})
    assert response.status_code == 200, response.text
    body = response.json()
    assert [h["speaker"]["speaker_label"] for h in body["results"]] == ["exact", "close", "further", "orthogonal"]
    for hit in body["results"]:
        assert hit["similarity"] == pytest.approx(cosine(query, stored[hit["speaker"]["speaker_label"]]), abs=1e-5)
    assert body["compared"] == 5 and body["encoder_model"] == CAMPP_MODEL and body["note"] is None
    # the default threshold (CAM++: 0.65) and the limit
    default = (await client.post("/speakers/search", json={"embedding": query})).json()
    assert [h["speaker"]["speaker_label"] for h in default["results"]] == ["exact", "close", "further"]
    assert default["threshold"] == 0.65 and body["threshold"] == 0.0
    one = (await client.post("/speakers/search", json={"embedding": query, "limit": 1})).json()
    assert [h["speaker"]["speaker_label"] for h in one["results"]] == ["exact"]


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 101}, "limit"),
        ({"threshold": -0.1}, "threshold"),
        ({"threshold": 1.5}, "threshold"),
        ({"threshold": "high"}, "threshold"),
    ],
)
async def test_search_and_identify_reject_bad_parameters(
    client: AsyncTestClient, extra: dict[str, Any], param: str
) -> None:
    body = {"embedding": unit(0), **extra}
    assert error_of(await client.post("/speakers/search", json=body), 422)["param"] == param
    if param == "threshold":
        assert error_of(await client.post("/speakers/identify", json=body), 422)["param"] == param


async def test_like_with_like_only(client: AsyncTestClient) -> None:
    await create(client, "resemblyzer voice", unit(0))
    await create(client, "other voice", [1.0, 0.0, 0.0], encoder_model="acme-3d")
    # a vector of another model is never compared with the embedded encoder's
    other = (await client.post("/speakers/search", json={"embedding": [1.0, 0.0, 0.0], "encoder_model": "acme-3d",
                                                         "threshold": 0.0})).json()  # fmt: skip
    assert [h["speaker"]["speaker_label"] for h in other["results"]] == ["other voice"] and other["compared"] == 1
    # acme-3d vectors are 3-dimensional from now on
    mismatch = await client.post("/speakers", json={"speaker_label": "y", "embedding": [1.0, 0.0],
                                                    "encoder_model": "acme-3d"})  # fmt: skip
    assert error_of(mismatch, 422)["code"] == "EMBEDDING_DIMENSION_MISMATCH"
    # nothing comparable: search says so, identify is a 404 naming what the library holds
    none = (await client.post("/speakers/search", json={"embedding": [1.0, 0.0, 0.0, 0.0], "encoder_model": "new-4d",
                                                        "threshold": 0.0})).json()  # fmt: skip
    assert none["results"] == [] and none["compared"] == 0
    assert "new-4d" in none["note"] and CAMPP_MODEL in none["note"] and "acme-3d" in none["note"]
    error = error_of(
        await client.post("/speakers/identify", json={"embedding": [1.0, 0.0, 0.0, 0.0], "encoder_model": "new-4d"}),
        404,
    )
    assert error["code"] == "NO_COMPARABLE_SPEAKERS" and "acme-3d" in error["message"]


async def test_identify_uses_every_sample_of_a_person(client: AsyncTestClient) -> None:
    # Carol has two samples; the query is close to her second one only
    await create(client, "carol", mix({0: 1.0, 1: 0.1}))
    await create(client, "carol", mix({2: 1.0, 3: 0.1}))
    await create(client, "dave", mix({2: 1.0, 3: 1.0}))
    query = mix({2: 1.0, 3: 0.15})
    response = await client.post("/speakers/identify", json={"embedding": query})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["speaker_label"] == "carol" and body["samples"] == 2
    assert body["similarity"] == pytest.approx(cosine(query, mix({2: 1.0, 3: 0.1})), abs=1e-5)
    assert body["speaker"]["speaker_label"] == "carol" and body["compared"] == 3
    assert [c["speaker_label"] for c in body["candidates"]] == ["carol", "dave"]
    # below the threshold: a 404 with its own code
    far = await client.post("/speakers/identify", json={"embedding": unit(9)})
    assert error_of(far, 404)["code"] == "SPEAKER_NOT_IDENTIFIED"
    strict = await client.post("/speakers/identify", json={"embedding": query, "threshold": 1.0})
    assert error_of(strict, 404)["code"] == "SPEAKER_NOT_IDENTIFIED"


async def test_identify_with_an_empty_library_is_a_clear_404(client: AsyncTestClient) -> None:
    error = error_of(await client.post("/speakers/identify", json={"embedding": unit(0)}), 404)
    assert error["code"] == "NO_COMPARABLE_SPEAKERS" and "empty" in error["message"]
