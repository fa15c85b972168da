"""A browser-like HTTP client for the console: a cookie jar that treats the loopback node as a
secure origin (so `__Host-` cookies flow as a browser's would), redirects followed, CSRF tokens read
from the page. For the tests that need no JavaScript-capable browser."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from yarl import URL

from gateway.console._sessions import COOKIE, SIGN_IN_COOKIE
from gateway.demo import DEMO_PASSWORD

_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
_HIDDEN = re.compile(r'<input type="hidden" name="([a-z_]+)" value="([^"]*)"')


@dataclass
class ConsoleClient:
    base: str  # http://127.0.0.1:<port>
    http: aiohttp.ClientSession = field(init=False)

    def __post_init__(self) -> None:
        jar = aiohttp.CookieJar(unsafe=True, treat_as_secure_origin=[self.base])
        self.http = aiohttp.ClientSession(cookie_jar=jar)

    async def close(self) -> None:
        await self.http.close()

    def _cookie(self, name: str) -> str | None:
        for morsel in self.http.cookie_jar:
            if morsel.key == name and morsel.value:
                return morsel.value
        return None

    @property
    def cookie(self) -> str | None:
        """The session cookie."""
        return self._cookie(COOKIE)

    @property
    def sign_in_cookie(self) -> str | None:
        """The sealed cookie of a sign-in under way."""
        return self._cookie(SIGN_IN_COOKIE)

    def set_cookie(self, value: str, name: str = COOKIE) -> None:
        self.http.cookie_jar.update_cookies({name: value}, URL(self.base))

    async def get(self, path: str, **kwargs: Any) -> tuple[int, str, aiohttp.ClientResponse]:
        async with self.http.get(self.base + path, **kwargs) as reply:
            return reply.status, await reply.text(), reply

    async def post(
        self, path: str, data: dict[str, str], **kwargs: Any
    ) -> tuple[int, str, aiohttp.ClientResponse]:
        async with self.http.post(self.base + path, data=data, **kwargs) as reply:
            return reply.status, await reply.text(), reply

    async def begin(self) -> str:
        """Start a sign-in; the provider's form page, as HTML."""
        status, page, _ = await self.get("/console/auth/start")
        assert status == 200 and "Demo identity provider" in page, page[:500]
        return page

    async def sign_in(self, username: str, password: str = DEMO_PASSWORD) -> tuple[int, str]:
        page = await self.begin()
        form = dict(_HIDDEN.findall(page))
        form.update(username=username, password=password)
        status, text, _ = await self.post("/dev-idp/authorize", form)
        return status, text

    @staticmethod
    def csrf(page: str) -> str:
        found = _CSRF.search(page)
        assert found is not None, "no CSRF token on the page"
        return found.group(1)
