# wrapgate: the gateway with its bundled connectors, run by gunicorn.
#
#   docker build -t wrapgate .
#   docker run -p 8000:8000 -e WRAPGATE_SYSTEM_TOKEN=... wrapgate
#
# Add a connector the way a user would, in an image of your own:
#   FROM wrapgate
#   RUN pip install --no-cache-dir wrapgate-acme          # or: COPY acme /src/acme + pip install /src/acme
#
# Versions come from constraints.txt (scripts/lock), so a rebuild next month
# installs what was tested. Builds with BuildKit and with the classic builder.

# -- build: every dependency installed into a venv, so the final image needs no compiler
FROM python:3.11-slim AS build
WORKDIR /src
RUN python -m venv /opt/wrapgate
ENV PATH=/opt/wrapgate/bin:$PATH \
    PIP_DISABLE_PIP_VERSION_CHECK=1
# Dependencies first: this layer is rebuilt only when packaging metadata or the
# constraints change. With only the metadata copied, the three distributions
# build as empty packages, and pip installs what they depend on.
COPY constraints.txt setup.cfg pyproject.toml README.md LICENSE ./
COPY plugins/sql/setup.cfg plugins/sql/pyproject.toml plugins/sql/README.md plugins/sql/LICENSE plugins/sql/
COPY plugins/rest/setup.cfg plugins/rest/pyproject.toml plugins/rest/README.md plugins/rest/LICENSE plugins/rest/
RUN pip install --no-cache-dir -c constraints.txt ".[redis]" "./plugins/sql[postgres]" ./plugins/rest
# Then the source, installed over the empty packages without touching the dependencies.
COPY gateway gateway
COPY plugins/sql/wrapgate_sql plugins/sql/wrapgate_sql
COPY plugins/rest/wrapgate_rest plugins/rest/wrapgate_rest
RUN pip install --no-cache-dir --no-deps --force-reinstall . ./plugins/sql ./plugins/rest \
 && pip check

# -- run ------------------------------------------------------------------------------------
FROM python:3.11-slim
RUN useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin wrapgate
COPY --from=build /opt/wrapgate /opt/wrapgate
WORKDIR /app
# The gateway reads only its gunicorn configuration from config/; the demo
# secrets, SQL and nginx files there belong to docker-compose, not the image.
COPY config/gunicorn.conf.py config/gunicorn.conf.py
ENV PATH=/opt/wrapgate/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    WRAPGATE_BIND=0.0.0.0:8000 \
    WRAPGATE_LOG_FORMAT=json
USER wrapgate
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/livez', timeout=2).status == 200 else 1)"]
# gunicorn drains on SIGTERM (readyz 503, in-flight calls finish). Give it the
# time to: the runtime's stop grace period must exceed WRAPGATE_GRACEFUL_TIMEOUT
# (310 s by default; docker-compose.yml sets stop_grace_period: 330s).
STOPSIGNAL SIGTERM
CMD ["gunicorn", "-c", "config/gunicorn.conf.py", "gateway.app:create_app()"]
