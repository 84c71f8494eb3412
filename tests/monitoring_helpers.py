"""What the monitoring configs contain, for the static tests here and the live end-to-end test.

Why one module: the static tests parse every PromQL and LogQL expression with real parsers,
and the live test (the native stack) evaluates the very same expressions against a running
Prometheus and Loki. Extracting them in one place keeps the two lists identical, including
how Grafana variables ($account, $__rate_interval, ...) are filled in.

Entry points for the live test:
  promql_queries() / logql_queries() / sql_queries() -> list[Query]; Query.resolved() gives
  the expression with Grafana variables replaced; prometheus_config_with_targets() gives the
  committed prometheus.yml pointed at other addresses (for example loopback ports).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
COMPOSE_FILE = REPO / "docker-compose.yml"
PROMETHEUS_DIR = REPO / "prometheus"
PROMETHEUS_CONFIG = PROMETHEUS_DIR / "prometheus.yml"
PROMETHEUS_RULES_DIR = PROMETHEUS_DIR / "rules"
PROMETHEUS_TESTS_DIR = PROMETHEUS_DIR / "tests"
ALERTMANAGER_CONFIG = REPO / "alertmanager" / "alertmanager.yml"
LOKI_CONFIG = REPO / "loki" / "loki.yml"
LOKI_RULES_DIR = REPO / "loki" / "rules"
GRAFANA_DIR = REPO / "grafana"
DASHBOARDS_DIR = GRAFANA_DIR / "dashboards"
DATASOURCES_FILE = GRAFANA_DIR / "provisioning" / "datasources" / "datasources.yml"
DASHBOARD_PROVIDERS_FILE = GRAFANA_DIR / "provisioning" / "dashboards" / "dashboards.yml"
RENDER_ALERTMANAGER = REPO / "deploy" / "render_alertmanager.py"
POSTGRES_ROLES_SQL = REPO / "deploy" / "postgres" / "initdb" / "10-tradewatch-roles.sql"
JS_DIR = Path(__file__).resolve().parent / "js"

SEVERITIES = ("critical", "warning", "info")
# Datasource uids Grafana provides itself (never provisioned).
BUILTIN_DATASOURCE_UIDS = frozenset({"-- Grafana --", "-- Mixed --", "-- Dashboard --", "grafana"})
# Grafana's own variables, filled with values any query accepts.
BUILTIN_VARIABLES = {
    "__rate_interval": "5m",
    "__interval": "5m",
    "__auto": "5m",
    "__range": "1h",
    "__range_s": "3600",
    "__range_ms": "3600000",
    "__interval_ms": "300000",
}
_VARIABLE = re.compile(r"\$\{(\w+)(?::[^}]*)?\}|\$(\w+)|\[\[(\w+)(?::[^\]]*)?\]\]")
_LABEL_VALUES = re.compile(r"^\s*label_values\(\s*(?:(?P<selector>.+?)\s*,\s*)?(?P<label>\w+)\s*\)\s*$", re.S)


class ToolMissing(AssertionError):
    """A command-line tool the tests need is not installed (the test fails, it never skips)."""


def find_tool(name: str, install_hint: str) -> str:
    """Absolute path of `name`, or ToolMissing naming how to install it."""
    path = shutil.which(name)
    if path is None:
        raise ToolMissing(f"{name} not found on PATH; install it: {install_hint}")
    return path


def run(argv: Sequence[str], *, cwd: Path | None = None, input_text: str | None = None,
        env: Mapping[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run a command, capture text output, never raise on a non-zero exit (callers assert)."""
    return subprocess.run(list(argv), cwd=cwd, input=input_text, env=None if env is None else dict(env),
                          capture_output=True, text=True, timeout=timeout, check=False)


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


# --- queries ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Query:
    """One query expression and where it comes from.

    `expr` is as written (it may hold Grafana variables); `variables` are the values the
    dashboard's own variables take for checking (regex ".+" for query/custom variables, the
    current text for text boxes).
    """

    language: str  # "promql" | "logql" | "sql"
    expr: str
    origin: str
    kind: str  # "panel" | "variable" | "rule"
    instant: bool = False
    variables: Mapping[str, str] = field(default_factory=dict)

    def resolved(self, overrides: Mapping[str, str] | None = None) -> str:
        """`expr` with every Grafana variable replaced (see substitute_grafana_variables)."""
        values = dict(self.variables)
        values.update(overrides or {})
        return substitute_grafana_variables(self.expr, values)


def substitute_grafana_variables(expr: str, values: Mapping[str, str] | None = None) -> str:
    """Replace $var, ${var}, ${var:format} and [[var]] by `values`, Grafana's built-ins, or ".+"."""
    known = dict(BUILTIN_VARIABLES)
    known.update(values or {})

    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2) or match.group(3)
        return known.get(name, ".+")

    return _VARIABLE.sub(replace, expr)


def variables_used(expr: str) -> set[str]:
    """Names of the Grafana variables an expression uses (SQL macros like $__timeFilter excluded)."""
    names = set()
    for match in _VARIABLE.finditer(expr):
        name = match.group(1) or match.group(2) or match.group(3)
        after = expr[match.end():match.end() + 1]
        if match.group(2) and after == "(":
            continue  # a macro call such as $__timeFilter(...)
        names.add(name)
    return names


_SQL_MACRO = re.compile(r"\$__(timeFilter|timeGroupAlias|timeGroup)\(([^()]*(?:\([^()]*\)[^()]*)*)\)")
_INTERVAL = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def resolve_sql(expr: str, values: Mapping[str, Sequence[str]], time_from: str = "2026-01-01T00:00:00Z",
                time_to: str = "2026-01-02T00:00:00Z") -> str:
    """Grafana's PostgreSQL macros and ${var:sqlstring} filled in, as Grafana sends the query.

    `values` gives each variable's selected values (quoted as SQL strings); the time range
    defaults to one fixed day.
    """

    def macro(match: re.Match[str]) -> str:
        name, args = match.group(1), [a.strip() for a in match.group(2).split(",")]
        if name == "timeFilter":
            return f"{args[0]} BETWEEN '{time_from}' AND '{time_to}'"
        step = re.fullmatch(r"'?(\d+)([smhd])'?", args[1])
        if step is None:
            raise ValueError(f"unsupported interval in {match.group(0)}")
        seconds = int(step.group(1)) * _INTERVAL[step.group(2)]
        group = f"to_timestamp(floor(extract(epoch FROM {args[0]}) / {seconds}) * {seconds})"
        return f'{group} AS "time"' if name == "timeGroupAlias" else group

    def variable(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2) or match.group(3)
        chosen = values.get(name, [".+"])
        return ",".join("'" + v.replace("'", "''") + "'" for v in chosen)

    return _VARIABLE.sub(variable, _SQL_MACRO.sub(macro, expr))


def dashboard_files() -> list[Path]:
    return sorted(DASHBOARDS_DIR.glob("*.json"))


def load_dashboard(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def iter_panels(dashboard: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, including those inside (collapsed) rows."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def provisioned_datasources() -> dict[str, dict[str, Any]]:
    """Provisioned datasources by uid."""
    config = load_yaml(DATASOURCES_FILE)
    return {ds["uid"]: ds for ds in config.get("datasources", [])}


def _language_of(datasource_type: str) -> str | None:
    return {"prometheus": "promql", "loki": "logql", "grafana-postgresql-datasource": "sql",
            "postgres": "sql"}.get(datasource_type)


def _datasource_type(reference: Any, datasources: Mapping[str, Mapping[str, Any]]) -> str | None:
    if isinstance(reference, Mapping):
        uid = reference.get("uid")
        if uid in datasources:
            return datasources[uid]["type"]
        return reference.get("type")
    return None


def dashboard_variable_values(dashboard: Mapping[str, Any]) -> dict[str, str]:
    """Values for checking: text boxes and constants keep their text; other variables match all."""
    values = {}
    for variable in dashboard.get("templating", {}).get("list", []):
        if variable.get("type") in ("textbox", "constant"):
            current = variable.get("current", {}).get("value", variable.get("query", ""))
            values[variable["name"]] = current if isinstance(current, str) else ""
        else:
            values[variable["name"]] = ".+"
    return values


def dashboard_queries(paths: Sequence[Path] | None = None) -> list[Query]:
    """Every query of every panel and query variable of the provisioned dashboards."""
    datasources = provisioned_datasources()
    queries: list[Query] = []
    for path in paths or dashboard_files():
        dashboard = load_dashboard(path)
        values = dashboard_variable_values(dashboard)
        for panel in iter_panels(dashboard):
            for target in panel.get("targets", []):
                kind = _datasource_type(target.get("datasource") or panel.get("datasource"), datasources)
                language = _language_of(kind or "")
                expr = target.get("rawSql") if language == "sql" else target.get("expr")
                if language is None or not expr:
                    continue
                origin = f"{path.name}: panel {panel.get('title')!r} ({target.get('refId')})"
                queries.append(Query(language, expr, origin, "panel", bool(target.get("instant")), values))
        for variable in dashboard.get("templating", {}).get("list", []):
            if variable.get("type") != "query":
                continue
            raw = variable.get("query")
            raw = raw.get("query", "") if isinstance(raw, Mapping) else raw or ""
            language = _language_of(_datasource_type(variable.get("datasource"), datasources) or "")
            match = _LABEL_VALUES.match(raw)
            expr = match.group("selector") if match else raw
            if language in ("promql", "logql") and expr:
                origin = f"{path.name}: variable {variable['name']!r}"
                queries.append(Query(language, expr, origin, "variable", True, values))
    return queries


def prometheus_rule_files() -> list[Path]:
    return sorted(PROMETHEUS_RULES_DIR.glob("*.yml"))


def loki_rule_files() -> list[Path]:
    return sorted(LOKI_RULES_DIR.rglob("*.yml"))


def rules_of(path: Path) -> list[dict[str, Any]]:
    """The rules of a Prometheus-format rule file, in order."""
    return [rule for group in load_yaml(path).get("groups", []) for rule in group.get("rules", [])]


def rule_queries() -> list[Query]:
    """PromQL of the Prometheus rules and LogQL of the Loki ruler's rules."""
    queries = []
    for language, files in (("promql", prometheus_rule_files()), ("logql", loki_rule_files())):
        for path in files:
            for rule in rules_of(path):
                name = rule.get("alert") or rule.get("record")
                origin = f"{path.relative_to(REPO)}: {name}"
                queries.append(Query(language, rule["expr"], origin, "rule", True))
    return queries


def promql_queries() -> list[Query]:
    return [q for q in dashboard_queries() + rule_queries() if q.language == "promql"]


def logql_queries() -> list[Query]:
    return [q for q in dashboard_queries() + rule_queries() if q.language == "logql"]


def sql_queries() -> list[Query]:
    return [q for q in dashboard_queries() if q.language == "sql"]


# --- parsers --------------------------------------------------------------------------------

def promtool() -> str:
    return find_tool("promtool", "apt-get install prometheus (Debian), or make sysdeps")


def amtool() -> str:
    return find_tool("amtool", "apt-get install prometheus-alertmanager (Debian), or make sysdeps")


def promql_syntax_errors(queries: Sequence[Query]) -> list[str]:
    """Parse each query with Prometheus' own parser (`promtool check rules` on recording rules)."""
    rules = [{"record": f"syntax_check_{i}", "expr": q.resolved()} for i, q in enumerate(queries)]
    document = {"groups": [{"name": "syntax-check", "rules": rules}]}
    with tempfile.TemporaryDirectory(prefix="promql-check-") as tmp:
        path = Path(tmp) / "queries.yml"
        path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
        result = run([promtool(), "check", "rules", str(path)])
    if result.returncode == 0:
        return []
    output = result.stdout + result.stderr
    errors = []
    for i, query in enumerate(queries):
        for line in output.splitlines():
            if re.search(rf"\bsyntax_check_{i}\b", line):
                errors.append(f"{query.origin}: {line.strip()}  [{query.resolved()}]")
    return errors or [f"promtool check rules failed: {output.strip()}"]


def ensure_js_dependencies() -> Path:
    """tests/js with node_modules installed from its package-lock.json (npm ci), once."""
    find_tool("node", "apt-get install nodejs npm (Debian)")
    npm = find_tool("npm", "apt-get install nodejs npm (Debian)")
    wanted = json.loads((JS_DIR / "package.json").read_text(encoding="utf-8"))["dependencies"]
    if not all((JS_DIR / "node_modules" / name / "package.json").is_file() for name in wanted):
        result = run([npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=JS_DIR, timeout=300)
        if result.returncode != 0:
            raise ToolMissing(f"npm ci in {JS_DIR} failed: {(result.stderr or result.stdout).strip()}")
    return JS_DIR


def logql_syntax_errors(queries: Sequence[Query]) -> list[str]:
    """Parse each query with Grafana's LogQL grammar (@grafana/lezer-logql, run by node)."""
    js_dir = ensure_js_dependencies()
    expressions = [q.resolved() for q in queries]
    result = run([find_tool("node", "apt-get install nodejs"), str(js_dir / "check_logql.mjs")],
                 cwd=js_dir, input_text=json.dumps(expressions))
    if result.returncode != 0:
        raise AssertionError(f"check_logql.mjs failed: {result.stderr.strip()}")
    verdicts = json.loads(result.stdout)
    return [f"{q.origin}: {v['error']}  [{expr}]"
            for q, expr, v in zip(queries, expressions, verdicts, strict=True) if not v["ok"]]


def dashboard_schema_errors(paths: Sequence[Path]) -> list[str]:
    """Each dashboard checked against Grafana's schema (@grafana/schema types, tests/js/check_dashboards.mjs)."""
    js_dir = ensure_js_dependencies()
    result = run([find_tool("node", "apt-get install nodejs"), str(js_dir / "check_dashboards.mjs"),
                  *map(str, paths)], cwd=js_dir)
    if result.returncode != 0:
        raise AssertionError(f"check_dashboards.mjs failed: {result.stderr.strip()}")
    return [f"{p['file']}: {p['where']}: {p['error']}" for p in json.loads(result.stdout)]


# --- configs for other places ----------------------------------------------------------------

# The native stack and these tests repoint prometheus.yml the same way: one implementation, in stack/.
from stack.configs import prometheus_config_with_targets  # noqa: E402,F401
