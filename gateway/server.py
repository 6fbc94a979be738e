"""``wrapgate serve``: gunicorn, configured by :mod:`gateway.gunicorn_conf`.

The very settings ``config/gunicorn.conf.py`` gives production, so the
embedded default and a container run the same server.
"""

from __future__ import annotations

from gunicorn.app.base import BaseApplication

from . import gunicorn_conf


class _Server(BaseApplication):
    def __init__(self, overrides: dict):
        self._overrides = overrides
        super().__init__()

    def load_config(self) -> None:
        settings = {k: v for k, v in vars(gunicorn_conf).items() if k in self.cfg.settings and v is not None}
        settings.update(self._overrides)
        for key, value in settings.items():
            self.cfg.set(key, value)

    def load(self):
        from .app import create_app

        return create_app()


def run(bind: str, workers: int | None = None) -> None:
    overrides: dict = {"bind": [bind]}
    if workers:
        overrides["workers"] = workers
    _Server(overrides).run()
