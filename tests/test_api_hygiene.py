"""Bad input gets a 4xx, never a 500: NUL characters, over-long strings, numbers beyond their columns, periods
beyond the limit, bodies beyond the size limit; one error model and every status declared in the OpenAPI;
`Allow` on 405."""

from __future__ import annotations

from app.permissions import PUBLIC

START, END = "2026-01-01T00:00:00+00:00", "2026-01-02T00:00:00+00:00"


def _validation(response, kind: str) -> None:
    assert response.status_code == 422, response.text
    assert any(problem["type"] == kind for problem in response.json()["detail"]), response.text


def test_a_nul_character_anywhere_is_422(api):
    _validation(api.get("/alerts", params={"kind": "a\x00b"}), "string_nul")
    _validation(api.get("/alerts", params={"a\x00b": "1"}), "string_nul")
    _validation(api.post("/items", json={"item_id": "steel", "name": "st\x00eel", "kind": "buy", "uom": "kg"}), "string_nul")
    _validation(api.post("/items", json={"item_id": "steel", "name": "steel", "kind": "buy", "uom": "kg", "x\x00": 1}),
                "string_nul")
    _validation(api.get("/work-orders/a%00b"), "string_nul")
    assert api.get("/items").json() == []


def test_an_over_long_string_is_422(api):
    _validation(api.get("/alerts", params={"subject": "x" * 1_001}), "string_too_long")
    _validation(api.post("/items", json={"item_id": "steel", "name": "x" * 2_001, "kind": "buy", "uom": "kg"}), "string_too_long")
    _validation(api.post("/items", json={"item_id": "steel", "name": "é" * 1_001, "kind": "buy", "uom": "kg"}), "string_too_long")


def test_numbers_beyond_what_is_stored_are_422_and_bounded_in_the_openapi(api):
    assert api.post("/work-centres", json={"work_centre_id": "wc", "name": "wc", "hourly_rate": 1e300}).status_code == 422
    assert api.put("/fault-reasons", json={"machine_id": "press-01", "fault_code": 2 ** 59, "reason_code": "x"}).status_code == 422
    assert api.get("/oee", params={"start": START, "end": END, "offline_after_s": "4.5e307"}).status_code == 422
    schema = api.get("/openapi.json").json()
    assert "exclusiveMaximum" in str(schema["components"]["schemas"]["WorkCentreIn"]["properties"]["hourly_rate"])
    assert schema["components"]["schemas"]["FaultReasonIn"]["properties"]["fault_code"]["maximum"] == 2_147_483_647
    (offline,) = [p for p in schema["paths"]["/oee"]["get"]["parameters"] if p["name"] == "offline_after_s"]
    assert "maximum" in str(offline["schema"])


def test_a_period_longer_than_the_limit_is_422(api):
    refused = api.get("/oee", params={"start": "0033-01-01T00:00:00+00:00", "end": "4528-01-01T00:00:00+00:00"})
    assert refused.status_code == 422 and "400 days" in refused.json()["detail"], refused.text
    assert api.get("/downtime/pareto", params={"start": START, "end": "2027-03-01T00:00:00+00:00"}).status_code == 422
    assert api.get("/oee", params={"start": START, "end": "2027-01-20T00:00:00+00:00"}).status_code == 200  # 384 days


def test_a_body_larger_than_the_limit_is_413(api):
    response = api.post("/items", content=b'{"item_id": "' + b"x" * 1_100_000 + b'"}', headers={"Content-Type": "application/json"})
    assert response.status_code == 413 and "detail" in response.json()


def test_405_names_the_allowed_methods(api):
    response = api.patch("/health")
    assert response.status_code == 405 and response.headers["allow"] == "GET"


def test_every_operation_declares_its_error_statuses_with_one_model(api):
    schema = api.get("/openapi.json").json()
    assert schema["components"]["securitySchemes"].keys() == {"bearer", "basic"}
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            if (method.upper(), path) in PUBLIC:
                continue
            expected = {"401", "403", "404", "409", "422"} | ({"400", "413"} if "requestBody" in operation else set())
            assert expected <= operation["responses"].keys(), (method, path)
            for status in expected:
                assert operation["responses"][status]["content"]["application/json"]["schema"] == {
                    "$ref": "#/components/schemas/Error"}
            assert operation["security"]
