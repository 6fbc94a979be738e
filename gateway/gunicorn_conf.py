"""gunicorn settings of the gateway, one reason per line.

``config/gunicorn.conf.py`` (the production entry) imports this module, and
``wrapgate serve`` runs gunicorn with it, so both run the same server.
Every value derives from :class:`gateway.config.Settings` (the TOML file named by
``WRAPGATE_CONFIG``, then ``WRAPGATE_*`` variables), loaded once; defaults suit
a 2-core container.
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


def _settings():
    # The gateway's one source of settings (TOML file, then WRAPGATE_* variables),
    # read once here; every gunicorn value below is derived from it. The token is
    # the app's to demand: commands that only read this module need none.
    from gateway import config
    from gateway.errors import ConfigurationError

    try:
        return config.load(require_token=False)
    except ConfigurationError as exc:
        raise SystemExit(f"wrapgate: {exc}") from None


settings = _settings()

# -- Socket -------------------------------------------------------------------
# Listen on every interface of the container; WRAPGATE_BIND (or PORT) overrides.
bind = [settings.bind]
# Connections the kernel queues while every worker is busy accepting.
backlog = 2048

# -- Workers ------------------------------------------------------------------
# gevent: one process per core, each serving many calls at once on greenlets.
# Wrapper calls mostly wait on an external system; a thread per call (gthread)
# caps concurrency at its thread count, a sync worker at one call. gevent lets a
# connection at its limit of 25 slow calls wait beside other connections' pings.
# gateway.worker adds a drain to gunicorn's gevent worker (readyz 503 first,
# idle keep-alive connections closed): see its docstring.
worker_class = settings.worker_class
# One worker per core the container may use: serialising large pages is CPU work,
# more processes than cores only adds memory. WRAPGATE_WORKERS (or WEB_CONCURRENCY) overrides.
workers = settings.workers or _cores()
# Connections (greenlets) per worker. Below it the gateway answers 503 first: calls
# past WRAPGATE_MAX_IN_FLIGHT (4/5 of it), new connections past 9/10 (gateway.worker),
# so that a full worker never leaves connections queued unanswered in the backlog.
worker_connections = settings.worker_connections
# Plugins load in each worker after gevent has patched the standard library.
preload_app = False
# A worker is replaced after this many requests (a random few more each, so that
# workers do not restart together): a backstop for memory a plugin never gives
# back. The RSS bound (WRAPGATE_MAX_WORKER_MEMORY, gateway.worker) acts first.
max_requests = settings.max_requests
max_requests_jitter = settings.max_requests_jitter if settings.max_requests else 0

# -- Timeouts (PROTOCOL.md: a call of up to 5 minutes must never be cut) ---------
# A gevent worker's heartbeat only stops when CPU work blocks its loop; the
# master kills a worker silent this long. Above the call deadline, so that
# even a plugin stuck in a C call for a whole call is answered, not killed.
timeout = settings.worker_timeout
# On SIGTERM or a reload, in-flight calls get this long to finish. Above the
# call deadline: a deploy never cuts a call. The container's stop grace period
# must be longer still (docker-compose.yml: stop_grace_period).
graceful_timeout = settings.graceful_seconds
# Idle keep-alive sockets stay open longer than any common load balancer's idle
# timeout (AWS ALB 60 s, nginx 75 s, GCP 600 s), so the balancer, never the
# gateway, closes an idle connection and no request races a close.
keepalive = int(settings.keepalive)

# -- Logging --------------------------------------------------------------------
# No access log: the app writes one JSON line per request with far more in it.
accesslog = None
# gunicorn's logger, minus the access line it would build for nothing (gateway.worker).
logger_class = "gateway.worker.GunicornLogger"
errorlog = "-"
loglevel = settings.log_level.lower()
# gunicorn's own lines (boot, worker exits, timeouts) in the app's JSON format, so a
# log pipeline parses every line of the container the same way.
if settings.log_format == "json":
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
forwarded_allow_ips = ",".join(settings.forwarded_allow_ips)

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
    from gateway.limits import arbiter

    if settings.limiter == "local" and not settings.limiter_socket:
        _arbiter = supervisor = arbiter.Supervisor(server.log).start()
        os.environ["WRAPGATE_LIMITER_SOCKET"] = supervisor.path
        server.log.info(
            "local limiter arbiter pid %s at %s", getattr(supervisor.proc, "pid", None), supervisor.path
        )


def on_exit(server):
    if _arbiter is not None:
        _arbiter.stop()
    if _metrics_dir is not None:
        import shutil

        shutil.rmtree(_metrics_dir, ignore_errors=True)
