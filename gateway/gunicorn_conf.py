"""gunicorn settings of the gateway, one reason per line.

``config/gunicorn.conf.py`` (the production entry) imports this module, and
``wrapgate serve`` runs gunicorn with it, so both run the same server.
Every value can be set from the environment; defaults suit a 2-core container.
"""

import multiprocessing
import os


def _cores():
    """Cores this process may use: the container's CPU quota (cgroup v2 cpu.max) and
    affinity, not the host's core count, which a container sees too."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else multiprocessing.cpu_count()
    try:
        with open("/sys/fs/cgroup/cpu.max") as fh:
            quota, period = fh.read().split()
        if quota != "max":
            cores = min(cores, max(1, -(-int(quota) // int(period))))
    except (OSError, ValueError):
        pass
    return cores


def _env_number(name, default, kind=int):
    value = os.environ.get(name)
    return kind(value) if value not in (None, "") else default


# -- Socket -------------------------------------------------------------------
# Listen on every interface of the container; WRAPGATE_BIND overrides (host:port).
bind = [os.environ.get("WRAPGATE_BIND", "0.0.0.0:" + os.environ.get("PORT", "8000"))]
# Connections the kernel queues while every worker is busy accepting.
backlog = 2048

# -- Workers ------------------------------------------------------------------
# gevent: one process per core, each serving many calls at once on greenlets.
# Wrapper calls mostly wait on an external system; a thread per call (gthread)
# caps concurrency at its thread count, a sync worker at one call. gevent lets a
# connection at its limit of 25 slow calls wait beside other connections' pings.
# gateway.worker adds a drain to gunicorn's gevent worker (readyz 503 first,
# idle keep-alive connections closed): see its docstring.
worker_class = os.environ.get("WRAPGATE_WORKER_CLASS", "gateway.worker.WrapgateWorker")
# One worker per core the container may use: serialising large pages is CPU work,
# more processes than cores only adds memory. WRAPGATE_WORKERS (or WEB_CONCURRENCY) overrides.
workers = _env_number("WRAPGATE_WORKERS", _env_number("WEB_CONCURRENCY", _cores()))
# Greenlets (simultaneous calls) per worker; the gateway's own in-flight cap
# (WRAPGATE_MAX_IN_FLIGHT) answers 503 before this queue would form.
worker_connections = _env_number("WRAPGATE_WORKER_CONNECTIONS", 1000)
# Plugins load in each worker after gevent has patched the standard library.
preload_app = False

# -- Timeouts (PROTOCOL.md: a call of up to 5 minutes must never be cut) ---------
_call_timeout = _env_number("WRAPGATE_CALL_TIMEOUT", 300.0, float)
# A gevent worker's heartbeat only stops when CPU work blocks its loop; the
# master kills a worker silent this long. Above the call deadline, so that
# even a plugin stuck in a C call for a whole call is answered, not killed.
timeout = int(_call_timeout) + 30
# On SIGTERM or a reload, in-flight calls get this long to finish. Above the
# call deadline: a deploy never cuts a call. The container's stop grace period
# must be longer still (docker-compose.yml: stop_grace_period).
graceful_timeout = _env_number("WRAPGATE_GRACEFUL_TIMEOUT", int(_call_timeout) + 10)
# Idle keep-alive sockets stay open longer than any common load balancer's idle
# timeout (AWS ALB 60 s, nginx 75 s, GCP 600 s), so the balancer, never the
# gateway, closes an idle connection and no request races a close.
keepalive = _env_number("WRAPGATE_KEEPALIVE", 620)

# -- Logging --------------------------------------------------------------------
# No access log: the app writes one JSON line per request with far more in it.
accesslog = None
errorlog = "-"
loglevel = os.environ.get("WRAPGATE_LOG_LEVEL", "info").lower()
# gunicorn's own lines (boot, worker exits, timeouts) in the app's JSON format, so a
# log pipeline parses every line of the container the same way.
if os.environ.get("WRAPGATE_LOG_FORMAT", "json").lower() == "json":
    logconfig_dict = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "gateway.logs.JsonFormatter"}},
        "handlers": {
            name: {"class": "logging.StreamHandler", "formatter": "json", "stream": stream}
            for name, stream in (("console", "ext://sys.stdout"), ("error_console", "ext://sys.stderr"))
        },
        "loggers": {
            "gunicorn.error": {"level": loglevel.upper(), "handlers": ["error_console"], "propagate": False}
        },
    }

# -- Mechanics --------------------------------------------------------------------
# Workers' heartbeat files in memory, not on a container's overlay disk.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None
# Proxy headers are trusted only from the local network's balancer.
forwarded_allow_ips = os.environ.get("WRAPGATE_FORWARDED_ALLOW_IPS", "127.0.0.1")

# gunicorn's control socket sits at one fixed path per user; several gateways
# on one host (tests, blue/green) would fight over it, and nothing here uses it.
control_socket_disable = True

wsgi_app = "gateway.app:create_app()"


# -- Server hooks (they run in the master) -------------------------------------------
_arbiter = None
_metrics_dir = None


def on_starting(server):
    _start_metrics_dir(server)
    _start_arbiter(server)


def _start_metrics_dir(server):
    # prometheus_client's multiprocess mode: every worker writes samples to files in
    # this folder and /metrics adds them up. It must exist, empty, before any worker.
    global _metrics_dir
    import tempfile

    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if folder:
        os.makedirs(folder, exist_ok=True)
        for name in os.listdir(folder):  # samples of a previous run would be added in
            if name.endswith(".db"):
                os.unlink(os.path.join(folder, name))
    else:
        folder = _metrics_dir = tempfile.mkdtemp(prefix="wrapgate-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = folder
    server.log.info("metrics samples in %s", folder)


def post_worker_init(worker):
    # After the app is built: plugins' prints, warnings and uncaught exceptions in
    # threads and greenlets become JSON log lines, masked like every record.
    from gateway import logs

    logs.capture_output()


def child_exit(server, worker):
    # A dead worker's live gauges (in-flight, waiting) must stop counting.
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def _start_arbiter(server):
    # The local limiter counts slots across workers in an arbiter process that
    # the master starts before any worker exists; workers find it through the
    # environment they inherit. Not needed when slots live in Redis (or nowhere).
    global _arbiter
    from gateway import config
    from gateway.limits import arbiter

    try:
        settings = config.load(require_token=False)
    except Exception:  # noqa: BLE001 - the app reports a bad configuration itself, by name
        return
    if settings.limiter == "local" and not settings.limiter_socket:
        _arbiter = arbiter.Supervisor(server.log).start()
        os.environ["WRAPGATE_LIMITER_SOCKET"] = _arbiter.path
        server.log.info("local limiter arbiter pid %s at %s", _arbiter.proc.pid, _arbiter.path)


def on_exit(server):
    if _arbiter is not None:
        _arbiter.stop()
    if _metrics_dir is not None:
        import shutil

        shutil.rmtree(_metrics_dir, ignore_errors=True)
