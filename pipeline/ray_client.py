"""A client of a Ray cluster's Jobs API (``dmt submit``, ``dmt jobs``): its address, its
token, the connection, with errors that say what to do.

Token authentication (on by default since Ray 2.59): the client sends the token when
RAY_AUTH_MODE=token, taken from RAY_AUTH_TOKEN, else the file RAY_AUTH_TOKEN_PATH, else
~/.ray/auth_token. When RAY_AUTH_MODE is unset and one of these exists, token mode is turned on
for this command. cluster/local/start.sh prints the exports of its cluster.
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


def token_source() -> str | None:
    """Where the token this process would send comes from (None: no token anywhere)."""
    if os.environ.get("RAY_AUTH_TOKEN"):
        return "RAY_AUTH_TOKEN"
    path = os.environ.get("RAY_AUTH_TOKEN_PATH")
    if path:
        return f"RAY_AUTH_TOKEN_PATH ({path})"
    default = Path.home() / ".ray" / "auth_token"
    if default.is_file():
        return str(default)
    return None


def enable_token_auth(token_file: str | None = None) -> str | None:
    """Send the cluster token with every request when one is available; return its source.

    Ray's HTTP client adds the ``Authorization: Bearer`` header only when ``RAY_AUTH_MODE`` is
    ``token`` in this process; with the mode unset a present token is used, as ``ray job`` does.
    ``RAY_AUTH_MODE=disabled`` is respected.
    """
    if token_file:
        if not Path(token_file).is_file():
            raise SubmitError(f"--token-file {token_file}: no such file")
        os.environ["RAY_AUTH_TOKEN_PATH"] = str(Path(token_file).resolve())
        os.environ.pop("RAY_AUTH_TOKEN", None)  # the env var would win over the file
    mode = os.environ.get("RAY_AUTH_MODE", "").lower()
    source = token_source()
    if mode == "disabled" or (not mode and source is None):
        return None
    os.environ["RAY_AUTH_MODE"] = "token"
    # No public API re-reads the auth mode in a running process: Ray reads its config (and
    # caches the token) once, at the first client call.
    from ray._raylet import AuthenticationTokenLoader, Config

    Config.initialize("")  # the config is read once per process: re-read RAY_AUTH_MODE
    AuthenticationTokenLoader.instance().reset_cache()
    return source


def auth_hint(address: str) -> str:
    source = token_source()
    have = f"this command sent the token from {source}" if source and \
        os.environ.get("RAY_AUTH_MODE", "").lower() == "token" else "no token was sent"
    return (f"authentication failed at {address} ({have}). The cluster runs with token "
            f"authentication: export RAY_AUTH_MODE=token and RAY_AUTH_TOKEN=<the cluster's "
            f"token> (cluster/local/start.sh prints both; on KubeRay read the auth Secret), or "
            f"pass --token-file FILE")


def connect(address: str, token_file: str | None = None):
    """A ``JobSubmissionClient`` for ``address``, with the token when there is one."""
    enable_token_auth(token_file)
    # heavy: on use (this module loads with `dmt --help`, through `dmt submit`'s arguments)
    from ray.exceptions import AuthenticationError
    from ray.job_submission import JobSubmissionClient

    try:
        client = JobSubmissionClient(address)
        client.list_jobs()  # fail here, clearly, on a wrong token or address
    except AuthenticationError:
        raise SubmitError(auth_hint(address)) from None
    except ConnectionError as exc:
        raise SubmitError(f"cannot reach the Ray dashboard at {address} ({exc}); is the cluster "
                          f"up (cluster/local/start.sh), and is --address / $RAY_ADDRESS its "
                          f"dashboard URL?") from None
    except RuntimeError as exc:
        raise SubmitError(f"{address}: {exc}") from None
    return client
