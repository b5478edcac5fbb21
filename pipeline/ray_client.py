"""A client of a Ray cluster's Jobs API (``dmt submit``, ``dmt jobs``): its address, its
token, the connection, with errors that say what to do.

Token authentication (on by default since Ray 2.59): the client sends the token, taken from
``--token-file``, else RAY_AUTH_TOKEN, else the file RAY_AUTH_TOKEN_PATH, else
~/.ray/auth_token, unless RAY_AUTH_MODE=disabled. cluster/local/start.sh prints the exports of
its cluster.
"""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_ADDRESS = "http://127.0.0.1:8265"


class SubmitError(Exception):
    """A submission that cannot go ahead; the message says why and what to do."""


# ------------------------------------------------------------------------------------ client

def default_address() -> str:
    """The Jobs API address, as Ray's ``ray job`` CLI finds it: ``$RAY_API_SERVER_ADDRESS``,
    else ``$RAY_ADDRESS`` when it is a dashboard URL (``http://...``; a ``host:port`` there is
    the GCS address that drivers join), else http://127.0.0.1:8265."""
    for name in ("RAY_API_SERVER_ADDRESS", "RAY_ADDRESS"):
        env = os.environ.get(name, "")
        if env.startswith(("http://", "https://")):
            return env
    return DEFAULT_ADDRESS


def read_token(token_file: str | None = None) -> tuple[str | None, str | None]:
    """(token, where it came from) to send, or (None, None): ``--token-file``, else Ray's own
    order (RAY_AUTH_TOKEN, the file RAY_AUTH_TOKEN_PATH, ~/.ray/auth_token); none when
    ``RAY_AUTH_MODE=disabled``."""
    if token_file:
        if not Path(token_file).is_file():
            raise SubmitError(f"--token-file {token_file}: no such file")
        return Path(token_file).read_text().strip(), f"--token-file {token_file}"
    if os.environ.get("RAY_AUTH_MODE", "").lower() == "disabled":
        return None, None
    if os.environ.get("RAY_AUTH_TOKEN"):
        return os.environ["RAY_AUTH_TOKEN"].strip(), "RAY_AUTH_TOKEN"
    path = os.environ.get("RAY_AUTH_TOKEN_PATH")
    if path:
        if not Path(path).is_file():
            raise SubmitError(f"RAY_AUTH_TOKEN_PATH={path}: no such file")
        return Path(path).read_text().strip(), f"RAY_AUTH_TOKEN_PATH ({path})"
    default = Path.home() / ".ray" / "auth_token"
    if default.is_file():
        return default.read_text().strip(), str(default)
    return None, None


def auth_headers(token_file: str | None = None) -> tuple[dict[str, str], str | None]:
    """The ``Authorization: Bearer`` header for the Jobs API (empty without a token) and the
    token's source. Passed through ``JobSubmissionClient(headers=...)``, Ray's public way to
    send headers: a header given there is sent as is, so the token reaches the cluster whatever
    ``RAY_AUTH_MODE`` this process started with (Ray reads that once per process)."""
    token, source = read_token(token_file)
    return ({"Authorization": f"Bearer {token}"} if token else {}), source


def auth_hint(address: str, source: str | None) -> str:
    have = f"this command sent the token from {source}" if source else "no token was sent"
    return (f"authentication failed at {address} ({have}). The cluster runs with token "
            f"authentication: export RAY_AUTH_MODE=token and RAY_AUTH_TOKEN=<the cluster's "
            f"token> (cluster/local/start.sh prints both; on KubeRay read the auth Secret), or "
            f"pass --token-file FILE")


def connect(address: str, token_file: str | None = None):
    """A ``JobSubmissionClient`` for ``address``, with the token when there is one; its
    ``token_source`` attribute says where the token came from (None: no token sent)."""
    headers, source = auth_headers(token_file)
    # heavy: on use (this module loads with `dmt --help`, through `dmt submit`'s arguments)
    from ray.exceptions import AuthenticationError
    from ray.job_submission import JobSubmissionClient

    try:
        client = JobSubmissionClient(address, headers=headers)
        client.list_jobs()  # fail here, clearly, on a wrong token or address
    except AuthenticationError:
        raise SubmitError(auth_hint(address, source)) from None
    except ConnectionError as exc:
        raise SubmitError(f"cannot reach the Ray dashboard at {address} ({exc}); is the cluster "
                          f"up (cluster/local/start.sh), and is --address / $RAY_ADDRESS its "
                          f"dashboard URL?") from None
    except RuntimeError as exc:
        raise SubmitError(f"{address}: {exc}") from None
    client.token_source = source
    return client
