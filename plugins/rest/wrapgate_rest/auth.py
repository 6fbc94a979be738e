"""How a connection's requests authenticate: one ``requests`` session per connection.

Secrets are read from the ``encrypted`` section when the session is built and
live only in it (headers, ``auth``, the OAuth 2.0 token); nothing here puts a
secret in a URL that is stored or shown. An API key that travels as a query
parameter is added to each request as it is sent (:meth:`Credentials.params`).

OAuth 2.0 uses authlib's requests session: the client credentials or refresh
token grant at ``auth.tokenURL``, the token cached in the session and renewed
before it expires, and renewed at once when the API answers 401 anyway.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

import requests

from gateway.errors import ConnectionOffline, CredentialsRefused

from .schemas import TEMPLATE


def render_headers(headers: Mapping[str, str], encrypted: Mapping[str, Any]) -> dict[str, str]:
    """Header values with ``{{encrypted.<field>}}`` filled in (a missing field: empty)."""
    return {
        name: TEMPLATE.sub(lambda found: str(encrypted.get(found.group(1)) or ""), value)
        for name, value in headers.items()
    }


class Credentials:
    """The auth of one connection, applied to its session."""

    def __init__(self, auth: Mapping[str, Any], encrypted: Mapping[str, Any]):
        self.kind = auth["type"]
        self.auth = auth
        self.encrypted = encrypted
        self._lock = threading.Lock()

    def session(self, timeout: tuple[float, float]) -> requests.Session:
        if self.kind == "oauth2":
            # Imported on first use: authlib brings cryptography, slow to load in every worker.
            from authlib.integrations.requests_client import OAuth2Session

            return OAuth2Session(
                client_id=self.encrypted.get("clientId"),
                client_secret=self.encrypted.get("clientSecret"),
                scope=self.auth.get("scope"),
                token_endpoint=self.auth["tokenURL"],
                token_endpoint_auth_method=self.auth["clientAuth"],
                grant_type=self.auth["grant"],
                default_timeout=timeout,
            )
        session = requests.Session()
        secret = self.encrypted
        if self.kind == "bearer":
            session.headers["Authorization"] = f"Bearer {secret.get('token') or ''}"
        elif self.kind == "basic":
            session.auth = (self.auth.get("username") or "", secret.get("password") or "")
        elif self.kind == "apiKey" and not self.auth.get("queryParam"):
            session.headers[self.auth["headerName"]] = secret.get("apiKey") or ""
        return session

    @property
    def query_keys(self) -> frozenset[str]:
        """Query parameters that carry a secret: never kept in a stored URL."""
        if self.kind == "apiKey" and self.auth.get("queryParam"):
            return frozenset([self.auth["queryParam"]])
        return frozenset()

    def params(self) -> dict[str, str]:
        return {key: self.encrypted.get("apiKey") or "" for key in self.query_keys}

    @property
    def refreshable(self) -> bool:
        return self.kind == "oauth2"

    def ready(self, session: requests.Session) -> None:
        """Get an access token when the session has none yet (oauth2 only)."""
        if self.kind == "oauth2" and not session.token:  # type: ignore[attr-defined]
            self.renew(session, stale=None)

    def renew(self, session: Any, stale: str | None) -> None:
        """A fresh access token; ``stale`` is the one the API refused (another
        request of the connection may have renewed it meanwhile)."""
        from authlib.integrations.base_client import OAuthError

        with self._lock:
            current = (session.token or {}).get("access_token")
            if session.token and current != stale:
                return
            try:
                if self.auth["grant"] == "refresh_token":
                    refresh = (session.token or {}).get("refresh_token") or self.encrypted.get("refreshToken")
                    if not refresh:
                        raise CredentialsRefused(
                            "oauth2 refresh_token grant: encrypted.refreshToken is empty"
                        )
                    # The server may rotate the refresh token; authlib keeps the new one in the session.
                    session.refresh_token(self.auth["tokenURL"], refresh_token=refresh)
                else:
                    session.fetch_token(self.auth["tokenURL"], grant_type="client_credentials")
            except OAuthError as exc:
                raise CredentialsRefused(f"the token endpoint refused: {exc.error}") from None
            except (requests.ConnectionError, requests.Timeout):
                raise ConnectionOffline("the token endpoint cannot be reached") from None
            except ValueError:
                raise CredentialsRefused("the token endpoint answered no access token") from None
