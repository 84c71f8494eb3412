# One image for tradewatch's Python services: the bot, the exporter and the MT5 bridge
# (plus the one-shot jobs in docker-compose.yml). Non-root, no secrets: settings come from
# the environment at run time (see .env.example).
#   docker build -t tradewatch:0.1.0 .
#   python -m bot run | python -m exporter | python -m mt5bridge.server --backend sim ...

FROM python:3.11.14-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
# .dockerignore lets in only what the package needs (pyproject.toml, README.md, the packages).
COPY . .
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install --upgrade pip \
 && /opt/venv/bin/pip install .

FROM python:3.11.14-slim-bookworm
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
RUN groupadd --system --gid 10001 tradewatch \
 && useradd --system --uid 10001 --gid tradewatch --home-dir /app --create-home --shell /usr/sbin/nologin tradewatch \
 && install -d -o tradewatch -g tradewatch /app/data /data
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
USER tradewatch
# bot /metrics, exporter /metrics + REST, MT5 bridge
EXPOSE 8000 9108 18812
CMD ["python", "-m", "bot", "run"]
