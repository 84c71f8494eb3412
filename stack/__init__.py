"""The monitoring stack without Docker: `python -m stack up|down|status` (and `make stack`).

Runs the same committed configs as docker-compose.yml (prometheus/, alertmanager/, the
Postgres roles SQL), rendered for loopback addresses, with Debian's Prometheus and
Alertmanager, a project-local PostgreSQL cluster, the simulated MT5 bridge, the bot and
the exporter. Everything it starts is recorded under the state directory (`.stack/`), so
`down` stops exactly that and nothing else. See stack/native.py.
"""
