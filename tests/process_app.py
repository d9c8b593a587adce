"""The platform in a process of its own, as gunicorn serves it in production
(``gunicorn tests.process_app:app``) or as a worker starts it, for tests that
need a real server or a process to kill (``tests/test_transfer.py``): the
parent test's settings come in TEST_APP_CONFIG (JSON), on the parent's
databases and folders."""

from __future__ import annotations

import json
import os

from app import create_app
from config import TestConfig


class _Config(TestConfig):
    pass


for _key, _value in json.loads(os.environ["TEST_APP_CONFIG"]).items():
    setattr(_Config, _key, _value)

app = create_app(_Config)
