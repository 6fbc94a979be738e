# Production gunicorn configuration of the gateway:
#
#     gunicorn -c config/gunicorn.conf.py "gateway.app:create_app()"
#
# Every setting, with the reason for its value, is in gateway/gunicorn_conf.py
# (shared with `wrapgate serve`); each reads its WRAPGATE_* variable, so a
# deployment tunes the environment, not this file. Assignments added below
# this import win over it.
from gateway.gunicorn_conf import *  # noqa: F403
