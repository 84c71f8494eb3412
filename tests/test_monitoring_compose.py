"""docker-compose.yml and the Dockerfile: parsed by a real compose implementation (Debian's
docker-compose, which needs no Docker engine for `config`) and checked against the rules of
the issue: pinned images, healthchecks, health-gated start order, only Grafana published,
state in named volumes, secrets required from .env, mounted files present.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import tomllib
import zipfile

import monitoring_helpers as mh
import pytest

REQUIRED_SECRETS = ("GRAFANA_ADMIN_PASSWORD", "MT5_BRIDGE_TOKEN")
# Compose secrets (files under secrets/, mounted at /run/secrets): never environment variables.
FILE_SECRETS = ("postgres_password", "tradewatch_db_password", "exporter_db_password", "grafana_db_password",
                "exporter_sink_token", "mt5_bridge_cert", "mt5_bridge_key")
# An exact version: at least major.minor.patch (v-prefixed or not), or a Debian point release.
PINNED_TAG = re.compile(r"^v?\d+\.\d+(\.\d+)?(-[a-z0-9.-]+)?$")
STATEFUL = {"postgres": "/var/lib/postgresql/data", "prometheus": "/prometheus", "alertmanager": "/alertmanager",
            "loki": "/loki", "grafana": "/var/lib/grafana", "mt5": "/data", "bot": "/app/data"}


@pytest.fixture(scope="module")
def compose() -> dict:
    return mh.load_yaml(mh.COMPOSE_FILE)


def services(compose: dict) -> dict[str, dict]:
    return compose["services"]


def is_one_shot(service: dict) -> bool:
    return service.get("restart") == "no"


@pytest.fixture(scope="module")
def empty_env_file(tmp_path_factory):
    """Stands in for .env, so a developer's own .env cannot make these tests pass or fail."""
    path = tmp_path_factory.mktemp("compose") / "empty.env"
    path.write_text("", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def secrets_dir(tmp_path_factory):
    """The secret files, made by deploy/make_secrets.py as a user would (compose needs them to exist)."""
    directory = tmp_path_factory.mktemp("compose-secrets") / "secrets"
    result = mh.run([sys.executable, str(mh.REPO / "deploy" / "make_secrets.py"), "--dir", str(directory)])
    assert result.returncode == 0, result.stderr
    return directory


def docker_compose(env_file, *args: str, secrets: dict[str, str] | None = None):
    """`docker-compose -f docker-compose.yml ARGS` seeing only PATH and the given variables."""
    binary = mh.find_tool("docker-compose", "apt-get install docker-compose (Debian), or make sysdeps")
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **(secrets or {})}
    return mh.run([binary, "--project-directory", str(mh.REPO), "--env-file", str(env_file),
                   "-f", str(mh.COMPOSE_FILE), *args], cwd=mh.REPO, env=env)


def dummy_secrets() -> dict[str, str]:
    return {name: f"dummy-{name.lower()}" for name in REQUIRED_SECRETS}


def test_docker_compose_parses_the_file(compose, empty_env_file, secrets_dir):
    result = docker_compose(empty_env_file, "config", "-q",
                            secrets={**dummy_secrets(), "TRADEWATCH_SECRETS_DIR": str(secrets_dir)})
    assert result.returncode == 0, result.stdout + result.stderr
    result = docker_compose(empty_env_file, "--profile", "wine", "config", "--services", secrets=dummy_secrets())
    assert result.returncode == 0, result.stdout + result.stderr
    assert set(result.stdout.split()) == set(services(compose))


@pytest.mark.parametrize("secret", REQUIRED_SECRETS)
def test_docker_compose_refuses_to_run_without_each_secret(secret, empty_env_file):
    secrets = dummy_secrets()
    del secrets[secret]
    result = docker_compose(empty_env_file, "config", "-q", secrets=secrets)
    assert result.returncode != 0
    assert f"set {secret} in .env" in result.stdout + result.stderr


def test_secrets_are_only_ever_required_never_defaulted():
    text = mh.COMPOSE_FILE.read_text(encoding="utf-8")
    for secret in REQUIRED_SECRETS:
        uses = re.findall(r"\$\{" + secret + r"([^}]*)\}", text)
        assert uses, f"{secret} is not used"
        for suffix in uses:
            assert suffix.startswith(":?"), f"${{{secret}{suffix}}} must be required (:?), never defaulted"
    for name, value in re.findall(r"^\s*(\w*(?:PASSWORD|TOKEN|SECRET)\w*):\s*(\S.*)$", text, re.M):
        if name.endswith("_FILE"):  # the path of a compose secret, not a secret
            assert value.startswith("/run/secrets/"), f"{name} must name a compose secret"
            continue
        assert value.startswith("${"), f"{name} has a literal value"


def test_every_image_is_pinned_to_an_exact_version(compose):
    for name, service in services(compose).items():
        image = service.get("image", "")
        assert ":" in image and "@" not in image.split(":")[0], f"{name}: image {image!r} has no tag"
        tag = image.rsplit(":", 1)[1]
        assert PINNED_TAG.match(tag), f"{name}: {image!r} is not pinned to an exact version"
    for dockerfile in (mh.REPO / "Dockerfile", mh.REPO / "deploy" / "wine" / "Dockerfile"):
        for image in re.findall(r"^FROM\s+(\S+)", dockerfile.read_text(encoding="utf-8"), re.M):
            assert PINNED_TAG.match(image.rsplit(":", 1)[-1]), f"{dockerfile.name}: FROM {image}"


def test_long_running_services_have_healthchecks_and_restart_policies(compose):
    for name, service in services(compose).items():
        if is_one_shot(service):
            assert "healthcheck" not in service, f"one-shot {name} needs no healthcheck"
            continue
        assert service.get("restart") == "unless-stopped", name
        check = service.get("healthcheck", {})
        assert check.get("test") and check["test"][0] in ("CMD", "CMD-SHELL"), f"{name} has no healthcheck"
        assert not check.get("disable"), name


def test_start_order_waits_for_health(compose):
    all_services = services(compose)
    for name, service in all_services.items():
        depends = service.get("depends_on", {})
        assert isinstance(depends, dict), f"{name}: depends_on must use the long form with a condition"
        for dependency, rule in depends.items():
            expected = ("service_completed_successfully" if is_one_shot(all_services[dependency])
                        else "service_healthy")
            assert rule == {"condition": expected}, f"{name} -> {dependency}"
    for one_shot in [n for n, s in all_services.items() if is_one_shot(s)]:
        assert any(one_shot in s.get("depends_on", {}) for s in all_services.values()), one_shot


def test_only_grafana_publishes_a_port_and_on_loopback_by_default(compose):
    published = {name for name, s in services(compose).items() if s.get("ports")}
    assert published == {"grafana"}
    assert services(compose)["grafana"]["ports"] == ["${GRAFANA_BIND:-127.0.0.1}:${GRAFANA_PORT:-3000}:3000"]
    for name, service in services(compose).items():
        assert service.get("network_mode") in (None, "none"), f"{name} must not share the host network"


# Who may reach whom (issue 13): each server only from the services that need it.
NETWORKS = {
    "postgres": ["db", "grafana-db"], "migrate": ["db"], "mt5": ["broker"],
    "bot": ["db", "broker", "wine-broker", "monitoring", "bot-egress"], "exporter": ["db", "monitoring"],
    "alertmanager": ["monitoring", "alertmanager-egress"], "prometheus": ["monitoring", "dashboards"],
    "loki": ["monitoring", "dashboards"], "grafana": ["grafana-db", "dashboards", "grafana-public"],
    "mt5-wine": ["wine-broker", "wine-egress"],
}
INTERNAL = {"db", "grafana-db", "broker", "wine-broker", "monitoring", "dashboards"}


def reachable(compose: dict, client: str) -> set[str]:
    """The services `client` shares a network with."""
    mine = set(services(compose)[client].get("networks", []))
    return {name for name, s in services(compose).items() if name != client and mine & set(s.get("networks", []))}


def test_each_service_is_on_exactly_the_networks_it_needs(compose):
    assert {name: s.get("networks") for name, s in services(compose).items() if "network_mode" not in s} == NETWORKS
    for name, network in compose["networks"].items():
        assert bool((network or {}).get("internal")) == (name in INTERNAL), name
    for name in set(compose["networks"]) - INTERNAL:  # egress networks are never shared
        assert sum(name in (s.get("networks") or []) for s in services(compose).values()) == 1, name


@pytest.mark.parametrize("server, clients", [
    ("alertmanager", {"prometheus", "loki", "bot", "exporter"}),  # exporter: it receives the webhooks
    ("loki", {"prometheus", "bot", "exporter", "alertmanager", "grafana"}),
    ("prometheus", {"bot", "exporter", "alertmanager", "loki", "grafana"}),
    ("postgres", {"migrate", "bot", "exporter", "grafana"}),
    ("mt5", {"bot"}),
    ("mt5-wine", {"bot"}),
])
def test_servers_are_reachable_only_from_their_clients(compose, server, clients):
    assert reachable(compose, server) == clients
    for outsider in ("mt5", "mt5-wine", "postgres", "migrate"):
        if server in ("alertmanager", "loki", "prometheus"):
            assert server not in reachable(compose, outsider), f"{outsider} reaches {server}"
    # The published service reaches only what it displays: not Alertmanager (silences), bot, exporter.
    assert reachable(compose, "grafana") == {"postgres", "prometheus", "loki"}
    assert reachable(compose, "mt5-wine") == {"bot"} and reachable(compose, "mt5") == {"bot"}


def test_prometheus_has_no_lifecycle_api(compose, tmp_path):
    assert not any("lifecycle" in arg for arg in services(compose)["prometheus"]["command"])
    from stack.native import DEFAULT_PORTS, NativeStack, StackSettings

    stack = NativeStack(StackSettings(root=tmp_path))
    stack.ports = dict(DEFAULT_PORTS)
    argv, _ = stack._prometheus_command()  # what `make stack` runs
    assert argv[0].endswith("prometheus") and not any("lifecycle" in arg for arg in argv)


def test_loki_deletion_api_is_off():
    limits = mh.load_yaml(mh.LOKI_CONFIG)["limits_config"]
    assert limits.get("deletion_mode") == "disabled"


def test_database_passwords_and_the_sink_token_are_files_never_environment(compose, secrets_dir):
    text = mh.COMPOSE_FILE.read_text(encoding="utf-8")
    assert not re.search(r"(POSTGRES|TRADEWATCH_DB|EXPORTER_DB|GRAFANA_DB)_PASSWORD:", text)
    assert not re.search(r"postgresql\S*://[^@\s]*:[^@\s]*@", text), "a password inside a database URL"
    assert set(compose["secrets"]) == set(FILE_SECRETS)
    for name, secret in compose["secrets"].items():
        assert secret == {"file": f"${{TRADEWATCH_SECRETS_DIR:-./secrets}}/{name}"}
    s = services(compose)
    wanted = {"postgres": {"postgres_password", "tradewatch_db_password", "exporter_db_password", "grafana_db_password"},
              "migrate": {"tradewatch_db_password"}, "bot": {"tradewatch_db_password"},
              "exporter": {"exporter_db_password", "exporter_sink_token"},
              "alertmanager": {"exporter_sink_token"}, "grafana": {"grafana_db_password"},
              "mt5": {"mt5_bridge_cert", "mt5_bridge_key"}, "mt5-wine": {"mt5_bridge_cert", "mt5_bridge_key"}}
    wanted["bot"] = {"tradewatch_db_password", "mt5_bridge_cert"}
    assert {name: set(v["secrets"]) for name, v in s.items() if "secrets" in v} == wanted
    for name in ("migrate", "bot", "exporter"):
        assert s[name]["environment"]["DATABASE_PASSWORD_FILE"].startswith("/run/secrets/")
    assert s["exporter"]["environment"]["EXPORTER_SINK_TOKEN_FILE"] == "/run/secrets/exporter_sink_token"
    for variable in ("POSTGRES_PASSWORD_FILE", "TRADEWATCH_DB_PASSWORD_FILE", "EXPORTER_DB_PASSWORD_FILE",
                     "GRAFANA_DB_PASSWORD_FILE"):
        assert s["postgres"]["environment"][variable].startswith("/run/secrets/")
    assert "GRAFANA_DB_PASSWORD" not in s["grafana"].get("environment", {})
    assert "/run/secrets/grafana_db_password" in " ".join(s["grafana"]["entrypoint"])
    # deploy/make_secrets.py: every secret there, private directory, readable by the service users.
    assert sorted(p.name for p in secrets_dir.iterdir()) == sorted(FILE_SECRETS)
    assert secrets_dir.stat().st_mode & 0o777 == 0o700
    assert all(len((secrets_dir / name).read_text().strip()) >= 32 for name in FILE_SECRETS)
    before = {name: (secrets_dir / name).read_text() for name in FILE_SECRETS}
    assert mh.run([sys.executable, str(mh.REPO / "deploy" / "make_secrets.py"), "--dir", str(secrets_dir)]).returncode == 0
    assert before == {name: (secrets_dir / name).read_text() for name in FILE_SECRETS}  # never overwritten


def test_the_shipped_bridge_speaks_tls_and_the_bot_verifies_it(compose):
    """Both bridges (sim and Wine) load the TLS pair; the bot trusts the certificate; nothing runs --insecure."""
    s = services(compose)
    command = s["mt5"]["command"]
    assert command[command.index("--cert") + 1] == "/run/secrets/mt5_bridge_cert"
    assert command[command.index("--key") + 1] == "/run/secrets/mt5_bridge_key"
    assert "ca_file='/run/secrets/mt5_bridge_cert'" in " ".join(s["mt5"]["healthcheck"]["test"])
    assert s["bot"]["environment"]["MT5_BRIDGE_CA_FILE"] == "${MT5_BRIDGE_CA_FILE-/run/secrets/mt5_bridge_cert}"
    assert not any(key.startswith("MT5_BRIDGE_INSECURE") for key in s["bot"]["environment"])
    assert not {"MT5_LOGIN", "MT5_PASSWORD", "MT5_SERVER"} & set(s["bot"]["environment"])  # terminal side only
    entrypoint = (mh.REPO / "deploy" / "wine" / "entrypoint.sh").read_text(encoding="utf-8")
    assert "MT5_BRIDGE_CERT_FILE" in entrypoint and "Z:\\run\\secrets\\mt5_bridge_key" in entrypoint
    assert "--insecure" not in mh.COMPOSE_FILE.read_text(encoding="utf-8") + entrypoint


def test_bind_addresses_inside_compose_are_explicit(compose):
    s = services(compose)
    assert s["bot"]["environment"]["METRICS_HOST"] == "0.0.0.0"  # the default is 127.0.0.1 outside compose
    assert s["exporter"]["environment"]["EXPORTER_HOST"] == "0.0.0.0"


def test_the_wine_installers_are_pinned_or_supplied(compose):
    wine = services(compose)["mt5-wine"]
    assert wine["build"]["args"] == {"MT5_SETUP_SHA256": "${MT5_SETUP_SHA256:-}",
                                     "WINE_PYTHON_SHA256": "${WINE_PYTHON_SHA256:-}"}
    assert "./deploy/wine/installers:/installers:ro" in wine["volumes"]
    dockerfile = (mh.REPO / "deploy" / "wine" / "Dockerfile").read_text(encoding="utf-8")
    assert re.search(r"^ARG MT5_SETUP_SHA256=", dockerfile, re.M) and re.search(r"^ARG WINE_PYTHON_SHA256=", dockerfile, re.M)
    entrypoint = (mh.REPO / "deploy" / "wine" / "entrypoint.sh").read_text(encoding="utf-8")
    assert "curl" not in entrypoint  # every download goes through fetch-verified
    assert len(re.findall(r"^\s*fetch-verified ", entrypoint, re.M)) == 2


def test_state_lives_in_named_volumes(compose):
    declared = set(compose["volumes"])
    for name, service in services(compose).items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if not source.startswith((".", "/")):
                assert source in declared, f"{name}: volume {source} is not declared"
    for name, path in STATEFUL.items():
        mounts = [v for v in services(compose)[name].get("volumes", []) if not v.startswith((".", "/"))]
        assert any(v.split(":")[1] == path for v in mounts), f"{name}: {path} is not a named volume"


def test_every_mounted_file_exists(compose):
    for name, service in services(compose).items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("."):
                assert (mh.REPO / source).exists(), f"{name}: {source} does not exist"
        build = service.get("build")
        if build:
            assert (mh.REPO / build["context"] / build.get("dockerfile", "Dockerfile")).is_file(), name


def test_python_services_run_the_agreed_commands(compose):
    s = services(compose)
    assert s["bot"]["command"] == ["python", "-m", "bot", "run"]
    assert s["exporter"]["command"] == ["python", "-m", "exporter"]
    assert s["mt5"]["command"] == ["python", "-m", "mt5bridge.server", "--backend", "sim", "--host", "0.0.0.0",
                                   "--port", "18812", "--state", "/data/sim-state.json",
                                   "--cert", "/run/secrets/mt5_bridge_cert", "--key", "/run/secrets/mt5_bridge_key"]
    assert s["bot"]["environment"]["MT5_MODE"] == "bridge"
    assert s["bot"]["environment"]["MT5_HOST"] == "${MT5_HOST:-mt5}"
    for name in ("bot", "exporter", "mt5", "migrate", "alertmanager-config"):
        assert s[name]["image"] == s["bot"]["image"] and s[name]["build"] == s["bot"]["build"], name


def test_the_alertmanager_config_is_rendered_before_alertmanager_starts(compose):
    s = services(compose)
    renderer = s["alertmanager-config"]
    assert renderer["network_mode"] == "none"
    assert "./deploy/render_alertmanager.py:/opt/tradewatch/deploy/render_alertmanager.py:ro" in renderer["volumes"]
    assert "--config.file=/etc/alertmanager/rendered/alertmanager.yml" in s["alertmanager"]["command"]
    assert "alertmanager-config:/etc/alertmanager/rendered:ro" in s["alertmanager"]["volumes"]


def test_the_image_can_run_the_render_script():
    """render_alertmanager.py runs inside the tradewatch image, whose packages come from pyproject.toml."""
    project = tomllib.loads((mh.REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    names = {re.split(r"[<>=!~ \[]", dep, maxsplit=1)[0].lower() for dep in project["dependencies"]}
    assert "pyyaml" in names, "deploy/render_alertmanager.py needs PyYAML among [project] dependencies"


def test_env_example_documents_every_variable_of_the_compose_file():
    variables = set(re.findall(r"\$\{(\w+)", mh.COMPOSE_FILE.read_text(encoding="utf-8")))
    example = (mh.REPO / ".env.example").read_text(encoding="utf-8")
    documented = set(re.findall(r"^#?\s*(\w+)=", example, re.M))
    assert variables - documented == set(), "add these to .env.example"


def test_dockerfile_is_slim_non_root_and_installs_the_project():
    text = (mh.REPO / "Dockerfile").read_text(encoding="utf-8")
    assert all(image.startswith("python:3.11.") and "-slim" in image
               for image in re.findall(r"^FROM\s+(\S+)", text, re.M))
    users = re.findall(r"^USER\s+(\S+)", text, re.M)
    assert users and users[-1] not in ("root", "0")
    assert re.search(r"pip install \.$", text, re.M)
    assert not re.search(r"^(ENV|ARG)\s+.*(PASSWORD|TOKEN|SECRET)", text, re.M | re.I)


def test_dockerignore_lets_in_only_the_package():
    lines = [ln.strip() for ln in (mh.REPO / ".dockerignore").read_text(encoding="utf-8").splitlines()
             if ln.strip() and not ln.startswith("#")]
    assert lines[0] == "*"
    allowed = {ln[1:] for ln in lines if ln.startswith("!")}
    assert not any(a.startswith((".env", ".git", ".venv", "data", "tests")) for a in allowed)
    assert {"pyproject.toml", "README.md", "bot/", "db/", "exporter/", "mt5bridge/"} <= allowed


def test_wine_entrypoint_is_valid_bash():
    bash = mh.find_tool("bash", "apt-get install bash")
    result = mh.run([bash, "-n", str(mh.REPO / "deploy" / "wine" / "entrypoint.sh")])
    assert result.returncode == 0, result.stderr


def test_env_example_does_not_point_the_bot_container_at_itself():
    """.env is shared by `make run` and compose: a loopback MT5_HOST there would make the bot
    container dial itself instead of the `mt5` service (compose uses ${MT5_HOST:-mt5})."""
    example = (mh.REPO / ".env.example").read_text(encoding="utf-8")
    values = re.findall(r"^MT5_HOST=(.*)$", example, re.M)
    assert all(v.strip() in ("", "mt5") for v in values), f"MT5_HOST={values} in .env.example"


def test_the_debug_override_parses_and_publishes_on_loopback_only(empty_env_file):
    override = mh.REPO / "docker-compose.override.example.yml"
    binary = mh.find_tool("docker-compose", "apt-get install docker-compose (Debian), or make sysdeps")
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **dummy_secrets()}
    result = mh.run([binary, "--project-directory", str(mh.REPO), "--env-file", str(empty_env_file),
                     "-f", str(mh.COMPOSE_FILE), "-f", str(override), "config", "-q"], cwd=mh.REPO, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    for name, service in mh.load_yaml(override)["services"].items():
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), f"{name}: {port}"


def test_the_build_context_installs_every_command_the_stack_runs(tmp_path):
    """What the Dockerfile does (`pip install .` on the .dockerignore'd context), as a wheel build."""
    context = tmp_path / "context"
    context.mkdir()
    for line in (mh.REPO / ".dockerignore").read_text(encoding="utf-8").splitlines():
        if not line.startswith("!"):
            continue
        source = mh.REPO / line[1:].rstrip("/")
        target = context / line[1:].rstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        elif source.is_file():
            shutil.copy2(source, target)
    result = mh.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path / "dist"),
                     str(context)], timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    (wheel,) = (tmp_path / "dist").glob("tradewatch-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for module in ("bot/__main__.py", "exporter/__main__.py", "mt5bridge/server.py", "db/__main__.py",
                   "confcheck/values.py"):
        assert module in names, f"{module} is missing from the image"
    assert any(n.startswith("db/migrations/versions/") for n in names)
