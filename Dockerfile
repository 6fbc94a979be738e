# stackgate: the gateway with its bundled connectors, run by gunicorn.
#
#   docker build -t stackgate .
#   docker run -p 8000:8000 -e STACKGATE_SYSTEM_TOKEN=... stackgate
#
# Add a connector the way a user would, in an image of your own:
#   FROM stackgate
#   RUN pip install --no-cache-dir stackgate-acme          # or: COPY acme /src/acme + pip install /src/acme

# -- build: wheels of every dependency, so the final image needs no compiler ----------
FROM python:3.11-slim AS build
WORKDIR /src
RUN python -m venv /opt/stackgate
ENV PATH=/opt/stackgate/bin:$PATH
# Dependencies first: this layer is rebuilt only when packaging metadata changes.
COPY setup.cfg pyproject.toml README.md ./
COPY plugins/sql/setup.cfg plugins/sql/pyproject.toml plugins/sql/README.md plugins/sql/
COPY plugins/rest/setup.cfg plugins/rest/pyproject.toml plugins/rest/README.md plugins/rest/
RUN pip install --no-cache-dir --upgrade pip \
 && python - <<'PY' > /tmp/requirements.txt
import configparser
for path in ("setup.cfg", "plugins/sql/setup.cfg", "plugins/rest/setup.cfg"):
    cfg = configparser.ConfigParser()
    cfg.read(path)
    for line in cfg["options"]["install_requires"].split("\n"):
        if line.strip() and not line.strip().startswith("stackgate"):
            print(line.strip())
    for extra in ("redis", "postgres"):
        if cfg.has_option("options.extras_require", extra):
            print("\n".join(l.strip() for l in cfg["options.extras_require"][extra].split("\n") if l.strip()))
PY
RUN pip install --no-cache-dir -r /tmp/requirements.txt
# Then the source.
COPY gateway gateway
COPY plugins/sql/stackgate_sql plugins/sql/stackgate_sql
COPY plugins/rest/stackgate_rest plugins/rest/stackgate_rest
RUN pip install --no-cache-dir --no-deps . ./plugins/sql ./plugins/rest

# -- run ------------------------------------------------------------------------------------
FROM python:3.11-slim
RUN useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin stackgate
COPY --from=build /opt/stackgate /opt/stackgate
WORKDIR /app
COPY config config
ENV PATH=/opt/stackgate/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    STACKGATE_BIND=0.0.0.0:8000 \
    STACKGATE_LOG_FORMAT=json
USER stackgate
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/livez', timeout=2).status == 200 else 1)"]
# gunicorn drains on SIGTERM (readyz 503, in-flight calls finish). Give it the
# time to: the runtime's stop grace period must exceed STACKGATE_GRACEFUL_TIMEOUT
# (310 s by default; docker-compose.yml sets stop_grace_period: 330s).
STOPSIGNAL SIGTERM
CMD ["gunicorn", "-c", "config/gunicorn.conf.py", "gateway.app:create_app()"]
