"""Trusting an external OpenID Connect provider: tokens verified against its JWKS over HTTP, role from a claim."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
import pytest
from conftest import ApiWorld
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi.testclient import TestClient
from jwt.algorithms import RSAAlgorithm

from app.main import create_app

ISSUER = "https://idp.example.test/realms/insurer"
AUDIENCE = "middle-office-api"


@pytest.fixture(scope="module")
def provider() -> Iterator[tuple[str, rsa.RSAPrivateKey]]:
    """A JWKS endpoint on a local port, as a provider publishes its signing keys."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(RSAAlgorithm.to_jwk(key.public_key()))
    body = json.dumps({"keys": [{**jwk, "kid": "k1", "use": "sig", "alg": "RS256"}]}).encode()

    class Jwks(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:  # type: ignore[no-untyped-def]
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Jwks)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/certs", key
    server.shutdown()


def _token(key: rsa.RSAPrivateKey, **claims) -> str:  # type: ignore[no-untyped-def]
    now = int(time.time())
    base = {"iss": ISSUER, "aud": AUDIENCE, "sub": "u-42", "iat": now, "exp": now + 300, "role": "admin"}
    return jwt.encode({**base, **claims}, key, algorithm="RS256", headers={"kid": "k1"})


def test_tokens_of_the_configured_provider_are_trusted_and_others_refused(
    world: ApiWorld, provider: tuple[str, rsa.RSAPrivateKey]
) -> None:
    jwks_url, key = provider
    settings = world.settings.model_copy(
        update={"oidc_jwks_url": jwks_url, "oidc_issuer": ISSUER, "oidc_audience": AUDIENCE}
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        ok = client.get("/v1/audit", headers={"Authorization": f"Bearer {_token(key)}"})
        assert ok.status_code == 200, ok.text
        marketer = client.get("/v1/audit", headers={"Authorization": f"Bearer {_token(key, role='marketer')}"})
        assert marketer.status_code == 403
        wrong_audience = client.get("/v1/audit", headers={"Authorization": f"Bearer {_token(key, aud='other')}"})
        assert wrong_audience.status_code == 401
        other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        forged = client.get("/v1/audit", headers={"Authorization": f"Bearer {_token(other_key)}"})
        assert forged.status_code == 401
        no_role = client.get("/v1/audit", headers={"Authorization": f"Bearer {_token(key, role='root')}"})
        assert no_role.status_code == 401 and "role" in no_role.json()["detail"]
        # The built-in issuer is off: its token endpoint says where tokens come from.
        login = client.post(
            "/v1/auth/token", data={"grant_type": "client_credentials", "client_id": "x", "client_secret": "y"}
        )
        assert login.status_code == 404 and "OpenID Connect" in login.json()["detail"]
