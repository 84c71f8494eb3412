"""The exporter's bearer tokens: nothing unauthenticated writes an alert row, the API token guards
reads when set, both are compared with hmac.compare_digest, and refusals are counted on /metrics.
The resolve rules of the sink (newer only; firing re-opens) run on both backends in
test_exporter_app.py; here the forged-resolve attack of issue 13 is replayed end to end."""

from __future__ import annotations

import hmac
import json

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select

from db import init_db
from db.models import AlertModel
from exporter import auth
from exporter.app import create_app
from exporter.settings import ExporterSettings, SettingsError

SINK = "sink-0123456789abcdef-sink"
API = "api-0123456789abcdef-api"
FIRING = {"version": "4", "status": "firing", "alerts": [
    {"status": "firing", "labels": {"alertname": "MarginLevelLow", "severity": "critical", "account": "1001"},
     "annotations": {}, "startsAt": "2026-03-01T10:00:00Z", "endsAt": "0001-01-01T00:00:00Z", "fingerprint": "fp1"}]}
RESOLVED = {**FIRING, "status": "resolved",
            "alerts": [{**FIRING["alerts"][0], "status": "resolved", "endsAt": "2026-03-01T10:05:00Z"}]}


@pytest.fixture
def database(tmp_path):
    database = init_db(f"sqlite:///{tmp_path}/store.db")
    yield database
    database.dispose()


def rows(database) -> list:
    table = AlertModel.__table__
    with database.engine.connect() as connection:
        return connection.execute(select(table.c.fingerprint, table.c.status)).all()


def count(database) -> int:
    with database.engine.connect() as connection:
        return connection.execute(select(func.count()).select_from(AlertModel.__table__)).scalar_one()


def sample(client, name: str, **labels) -> float:
    for family in text_string_to_metric_families(client.get("/metrics").get_data(as_text=True)):
        for s in family.samples:
            if s.name == name and s.labels == labels:
                return s.value
    raise AssertionError(f"{name}{labels} not exposed")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize("headers", [
    {}, bearer("wrong-token-wrong-token"), bearer(SINK[:-1]), bearer(SINK + "x"), {"Authorization": SINK},
    {"Authorization": f"Basic {SINK}"}, bearer(API), {"Authorization": "Bearer"},
], ids=["none", "wrong", "prefix", "longer", "no-scheme", "basic", "api-token", "empty"])
def test_a_write_without_the_sink_token_is_refused_and_writes_nothing(database, headers):
    client = create_app(database, sink_token=SINK, api_token=API).test_client()
    response = client.post("/api/v1/alerts", json=FIRING, headers=headers)
    assert response.status_code == 401
    assert response.get_json()["parameter"] == "Authorization" and SINK not in response.get_data(as_text=True)
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="tradewatch-exporter"'
    assert count(database) == 0
    assert sample(client, "tradewatch_exporter_unauthorized_requests_total", endpoint="sink") == 1
    assert sample(client, "tradewatch_exporter_requests_refused_total", code="401") == 1


def test_an_unauthenticated_body_is_not_even_read(database):
    client = create_app(database, sink_token=SINK).test_client()
    response = client.post("/api/v1/alerts", data=b"[" * (4 << 20), content_type="application/json")
    assert response.status_code == 401  # not 413 nor 400: refused before the body is parsed
    assert count(database) == 0


def test_with_the_sink_token_alerts_are_stored(database):
    client = create_app(database, sink_token=SINK).test_client()
    response = client.post("/api/v1/alerts", json=FIRING, headers={"Authorization": f"bearer  {SINK} "})
    assert response.status_code == 200 and response.get_json() == {"stored": 1}
    assert rows(database) == [("fp1", "firing")]
    assert sample(client, "tradewatch_exporter_alert_sink_enabled") == 1


def test_without_a_configured_sink_token_every_write_is_refused(database):
    client = create_app(database).test_client()
    for headers in ({}, bearer(SINK), bearer("")):
        response = client.post("/api/v1/alerts", json=FIRING, headers=headers)
        assert response.status_code == 503 and "EXPORTER_SINK_TOKEN" in response.get_json()["error"]
    assert count(database) == 0
    assert sample(client, "tradewatch_exporter_alert_sink_enabled") == 0


def test_the_forged_resolve_of_issue_13_no_longer_hides_an_alert(database):
    """Read the fingerprint from the open API, post a resolve without the token: refused. And if a
    wrong resolve ever got in, Alertmanager's next firing notification re-opens the episode."""
    client = create_app(database, sink_token=SINK).test_client()
    assert client.post("/api/v1/alerts", json=FIRING, headers=bearer(SINK)).status_code == 200
    (listed,) = client.get("/api/v1/alerts").get_json()["items"]
    forged = {**RESOLVED, "alerts": [{**RESOLVED["alerts"][0], "fingerprint": listed["fingerprint"]}]}
    assert client.post("/api/v1/alerts", json=forged).status_code == 401
    assert rows(database) == [("fp1", "firing")]
    assert client.post("/api/v1/alerts", json=forged, headers=bearer(SINK)).status_code == 200
    assert rows(database) == [("fp1", "resolved")]
    assert client.post("/api/v1/alerts", json=FIRING, headers=bearer(SINK)).status_code == 200
    assert rows(database) == [("fp1", "firing")]


def test_the_api_token_guards_the_reads_when_set(database):
    client = create_app(database, sink_token=SINK, api_token=API).test_client()
    for path in ("/api/v1/accounts", "/api/v1/alerts", "/api/v1/drawdown?account=1001"):
        refused = client.get(path)
        assert refused.status_code == 401 and refused.get_json()["parameter"] == "Authorization"
        assert client.get(path, headers=bearer(SINK)).status_code == 401  # the sink token does not read
        assert client.get(path, headers=bearer(API)).status_code == 200
    assert client.get("/healthz").status_code == 200  # the container healthcheck has no token
    assert client.get("/metrics").status_code == 200  # nor has Prometheus (README: Security)
    assert sample(client, "tradewatch_exporter_unauthorized_requests_total", endpoint="api") == 6
    open_client = create_app(database, sink_token=SINK).test_client()
    assert open_client.get("/api/v1/accounts").status_code == 200


def test_tokens_are_compared_in_constant_time(database, monkeypatch):
    calls = []
    original = hmac.compare_digest

    def spy(a, b):
        calls.append((a, b))
        return original(a, b)

    monkeypatch.setattr(auth.hmac, "compare_digest", spy)
    client = create_app(database, sink_token=SINK, api_token=API).test_client()
    client.post("/api/v1/alerts", json=FIRING, headers=bearer("guess-guess-guess-guess"))
    client.get("/api/v1/accounts", headers=bearer(API))
    assert calls == [(b"guess-guess-guess-guess", SINK.encode()), (API.encode(), API.encode())]


def test_tokens_load_from_a_file_or_the_environment(tmp_path):
    base = {"DATABASE_URL": f"sqlite:///{tmp_path}/x.db"}
    path = tmp_path / "sink"
    path.write_text(f"  {SINK}\n", encoding="utf-8")
    settings = ExporterSettings.from_env({**base, "EXPORTER_SINK_TOKEN_FILE": str(path), "EXPORTER_API_TOKEN": API})
    assert (settings.sink_token, settings.api_token, settings.host) == (SINK, API, "127.0.0.1")
    assert SINK in settings.secrets and API in settings.secrets
    assert ExporterSettings.from_env(base).sink_token is None
    for bad in ({"EXPORTER_SINK_TOKEN": "short"}, {"EXPORTER_SINK_TOKEN": "has a space in it......"},
                {"EXPORTER_API_TOKEN": "é" * 20}, {"EXPORTER_API_TOKEN_FILE": str(tmp_path / "missing")}):
        with pytest.raises(SettingsError) as refused:
            ExporterSettings.from_env({**base, **bad})
        assert next(iter(bad)) in str(refused.value)
        assert all(value not in str(refused.value) for value in bad.values() if "/" not in value)


def test_error_answers_never_echo_the_token(database):
    client = create_app(database, sink_token=SINK, api_token=API).test_client()
    for response in (client.post("/api/v1/alerts", data="{", content_type="application/json", headers=bearer(SINK)),
                     client.get("/api/v1/nope", headers=bearer(API)), client.get("/api/v1/trades", headers=bearer(API))):
        assert 400 <= response.status_code < 500
        text = json.dumps(response.get_json())
        assert SINK not in text and API not in text


def test_the_database_password_can_come_from_a_file(postgres_url, tmp_path, monkeypatch):
    """compose gives the exporter DATABASE_URL without a password and DATABASE_PASSWORD_FILE."""
    from sqlalchemy import text
    from sqlalchemy.engine import make_url

    from db.database import Database

    url = make_url(postgres_url)
    path = tmp_path / "exporter_db_password"
    path.write_text(url.password + "\n", encoding="utf-8")
    bare = url._replace(password=None).render_as_string(hide_password=False)
    assert "@" in bare and url.password not in bare, bare
    monkeypatch.setenv("DATABASE_PASSWORD_FILE", str(path))
    settings = ExporterSettings.from_env({"DATABASE_URL": bare})
    assert settings.database_url.password == url.password and url.password in settings.secrets
    database = Database(settings.database_url)
    try:
        with database.engine.connect() as connection:
            assert connection.execute(text("select 1")).scalar_one() == 1
    finally:
        database.dispose()
    monkeypatch.setenv("DATABASE_PASSWORD_FILE", str(tmp_path / "missing"))
    with pytest.raises(SettingsError, match="DATABASE_PASSWORD_FILE: cannot read"):
        ExporterSettings.from_env({"DATABASE_URL": bare})
