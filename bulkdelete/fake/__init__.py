"""A stand-in for CometChat's v3 user API, written from the API documentation alone.

The package imports nothing from the rest of bulkdelete (a test holds it to that), so the tool
cannot pass its tests by sharing a mistake with it. Its defaults are what CometChat documents;
every behaviour the documents leave open is a flag. Integration tests run it as ``bulkdelete
fake-server``, ``bulkdelete demo`` runs it in-process, benchmarks push load at it.

Its modules, each with its part of the behaviour in its docstring:

- ``config``: ``FakeConfig``, every flag, checked once;
- ``stats``: ``FakeStats``, the counters and the timeline served at ``GET /_fake/stats``;
- ``users``: each user's state, and the users file;
- ``gate``: what every ``/v3`` request passes (count, key, window), the fault dice, and how
  answers are sent;
- ``user_endpoints``: ``DELETE`` and ``GET /v3/users/{uid}``, ``GET /v3/users``;
- ``bulk_endpoints``: ``DELETE /v3/users`` (deactivate many) and ``PUT /v3/users`` (reactivate
  many); each endpoint module hands ``serving.build_app`` its routes the same way;
- ``window``: the server clock and the rate window;
- ``faults`` and ``answers``: injected faults, error bodies and the 200s that prove nothing;
- ``live``: the app's other clients, taking from the same window;
- ``serving``: the application, the TCP server, and the portal or proxy in front of the API.
"""

from bulkdelete.fake.answers import PORTAL_PAGE, stream_huge_answer
from bulkdelete.fake.config import FakeConfig
from bulkdelete.fake.faults import retry_after_text
from bulkdelete.fake.serving import FakeServer, build_app, serve
from bulkdelete.fake.stats import STATS, FakeStats, fetch_stats
from bulkdelete.fake.users import load_users
from bulkdelete.fake.window import RateWindow, ServerClock

__all__ = [
    "PORTAL_PAGE",
    "STATS",
    "FakeConfig",
    "FakeServer",
    "FakeStats",
    "RateWindow",
    "ServerClock",
    "build_app",
    "fetch_stats",
    "load_users",
    "retry_after_text",
    "serve",
    "stream_huge_answer",
]
