"""aioresponses for aiohttp >= 3.14: a response class that supplies the new ``stream_writer``.

aioresponses <= 0.7.9 builds ``ClientResponse`` without the ``stream_writer`` argument aiohttp
3.14 requires, so every mocked answer fails with a ``TypeError``. Pass ``response_class=CompatResp``
to each registered answer until https://github.com/pnuckowski/aioresponses/issues/289 is fixed.
"""

from __future__ import annotations

from typing import Any
from unittest.mock import Mock

import aiohttp

__all__ = ["CompatResp"]


class CompatResp(aiohttp.ClientResponse):
    """A ``ClientResponse`` that aioresponses <= 0.7.9 can build under aiohttp >= 3.14."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("stream_writer", Mock(output_size=0))
        super().__init__(*args, **kwargs)
