"""Run localstripe, the Stripe stand-in for local runs and tests, with the gaps Parley relies on filled.

    python -m billing.localstripe_server --port 8420 [--data-dir var/stripe] [--from-scratch]

What this launcher adds to localstripe 1.15.10:
- Its state goes to `<data-dir>/localstripe.pickle`, not the shared /tmp/localstripe.pickle, and is
  written at most once a second (localstripe rewrites the whole pickle on every object change,
  which is quadratic once there are thousands of objects).
- Stripe's idempotency semantics, which localstripe ignores: a POST with an `Idempotency-Key` that
  was seen before with the same parameters gets the saved response replayed (nothing runs twice);
  with other parameters it gets a 400 `idempotency_error`. Keys are kept 24 hours, as Stripe does.
  Concurrent requests with one key are serialised, so the second one replays the first.
- `POST /v1/payment_intents/{id}/confirm` accepts (and ignores) `off_session`, as Stripe does;
  localstripe answers 400 to any parameter there.
- Listens on loopback only (localstripe binds every interface).

This module imports only localstripe and the standard library, so it starts without Django.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import logging
import os
import pickle
import socket
import time
from pathlib import Path
from urllib.parse import parse_qsl

IDEMPOTENCY_TTL_SECONDS = 24 * 3600
FLUSH_INTERVAL_SECONDS = 1.0
# Stripe saves the result of any request that started executing, errors included (a card decline
# is replayed as the same decline). It does not save validation failures or server errors.
_REPLAYABLE_STATUSES = {200, 201, 202, 402}

logger = logging.getLogger("localstripe.parley")


class _State:
    data_dir: Path = Path("var/stripe")
    dirty = False
    # key -> (expires_at, fingerprint, status, body bytes, content type)
    idempotency: dict[str, tuple[float, str, int, bytes, str]] = {}
    in_flight: dict[str, asyncio.Lock] = {}


def _pickle_path() -> Path:
    return _State.data_dir / "localstripe.pickle"


def _idempotency_path() -> Path:
    return _State.data_dir / "idempotency.pickle"


def _patch_localstripe() -> None:
    """Patch localstripe's storage and confirm route; must run before localstripe.server is imported."""
    from localstripe import resources

    def try_load_from_disk(self) -> None:
        try:
            with _pickle_path().open("rb") as f:
                old = pickle.load(f)
        except FileNotFoundError:
            return
        dict.clear(self)
        dict.update(self, old)
        try:
            with _idempotency_path().open("rb") as f:
                _State.idempotency = pickle.load(f)
        except FileNotFoundError:
            pass

    def mark_dirty(self) -> None:
        _State.dirty = True

    def clear(self) -> None:
        dict.clear(self)
        _State.idempotency.clear()
        _State.dirty = True

    resources.Store.try_load_from_disk = try_load_from_disk
    resources.Store.dump_to_disk = mark_dirty
    resources.Store.clear = clear

    original_confirm = resources.PaymentIntent._api_confirm

    def confirm(id, off_session=None, **kwargs):
        return original_confirm(id, **kwargs)

    for index, (method, url, _func) in enumerate(resources.extra_apis):
        if url == "/v1/payment_intents/{id}/confirm":
            resources.extra_apis[index] = (method, url, confirm)


def flush_to_disk() -> None:
    """Write the store and the idempotency keys if anything changed (atomically, via rename)."""
    from localstripe.resources import store

    if not _State.dirty:
        return
    _State.dirty = False
    now = time.time()
    _State.idempotency = {k: v for k, v in _State.idempotency.items() if v[0] > now}
    _State.data_dir.mkdir(parents=True, exist_ok=True)
    for path, payload in ((_pickle_path(), dict(store)), (_idempotency_path(), _State.idempotency)):
        tmp = path.with_suffix(".tmp")
        with tmp.open("wb") as f:
            pickle.dump(payload, f, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, path)


def _fingerprint(method: str, path: str, body: bytes, content_type: str) -> str:
    if "json" in content_type:
        try:
            canonical = json.dumps(json.loads(body or b"null"), sort_keys=True)
        except ValueError:
            canonical = body.decode("utf-8", "replace")
    else:
        canonical = json.dumps(sorted(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)))
    return hashlib.sha256(f"{method} {path} {canonical}".encode()).hexdigest()


def _idempotency_error(message: str, status: int = 400):
    from aiohttp import web

    body = {"error": {"type": "idempotency_error", "message": message}}
    return web.json_response(body, status=status)


def make_idempotency_middleware():
    from aiohttp import web

    @web.middleware
    async def idempotency_middleware(request, handler):
        key = request.headers.get("Idempotency-Key")
        if request.method != "POST" or not key or not request.path.startswith("/v1/"):
            return await handler(request)
        # Keys are scoped to the API key, as in Stripe.
        scope = request.headers.get("Authorization", "") + "|" + key
        body = await request.read()  # aiohttp caches it; the handler reads it again
        fingerprint = _fingerprint(request.method, request.path, body, request.content_type)
        lock = _State.in_flight.setdefault(scope, asyncio.Lock())
        async with lock:
            saved = _State.idempotency.get(scope)
            if saved and saved[0] > time.time():
                _, saved_fingerprint, status, saved_body, content_type = saved
                if saved_fingerprint != fingerprint:
                    return _idempotency_error(
                        f"Keys for idempotent requests can only be used with the same parameters they were "
                        f"first used with. Try using a key other than '{key}' if you meant to execute a "
                        "different request."
                    )
                response = web.Response(status=status, body=saved_body, content_type=content_type)
                response.headers["Idempotent-Replayed"] = "true"
                response.headers["Idempotency-Key"] = key
                return response
            response = await handler(request)
            if response.status in _REPLAYABLE_STATUSES and isinstance(response, web.Response):
                _State.idempotency[scope] = (
                    time.time() + IDEMPOTENCY_TTL_SECONDS, fingerprint, response.status,
                    response.body if isinstance(response.body, bytes) else bytes(response.text or "", "utf-8"),
                    response.content_type,
                )
                _State.dirty = True
            response.headers["Idempotency-Key"] = key
        _State.in_flight.pop(scope, None)
        return response

    return idempotency_middleware


def build_app():
    """localstripe's aiohttp app with the idempotency middleware in front of it."""
    _patch_localstripe()
    from localstripe import server

    app = server.app
    # Middlewares run in list order; ours goes first so a replay never reaches localstripe, and
    # localstripe's error middleware (after ours) still turns its UserErrors into responses we can save.
    app.middlewares.insert(0, make_idempotency_middleware())

    async def flusher(app):
        async def loop():
            while True:
                await asyncio.sleep(FLUSH_INTERVAL_SECONDS)
                try:
                    flush_to_disk()
                except OSError:
                    logger.exception("could not save localstripe's state")

        task = asyncio.ensure_future(loop())
        yield
        task.cancel()
        _State.dirty = True
        flush_to_disk()

    app.cleanup_ctx.append(flusher)
    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=int(os.environ.get("STRIPE_LOCAL_PORT", "8420")))
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--data-dir", default=os.environ.get("PARLEY_STRIPE_DATA_DIR", ""))
    parser.add_argument("--from-scratch", action="store_true", help="ignore saved state")
    parser.add_argument("--quiet", action="store_true", help="no access log")
    args = parser.parse_args(argv)

    var_dir = Path(os.environ.get("PARLEY_VAR_DIR") or Path(__file__).resolve().parent.parent / "var")
    _State.data_dir = Path(args.data_dir) if args.data_dir else var_dir / "stripe"
    _State.data_dir.mkdir(parents=True, exist_ok=True)

    app = build_app()
    from aiohttp import web
    from localstripe.resources import store

    if not args.from_scratch:
        store.try_load_from_disk()

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((args.host, args.port))
    except OSError as exc:
        raise SystemExit(
            f"localstripe: port {args.port} on {args.host} is taken ({exc.strerror}); "
            "stop what uses it or set STRIPE_LOCAL_PORT"
        )
    access_log = None
    if not args.quiet:
        access_log = logging.getLogger("aiohttp.access")
        access_log.setLevel(logging.INFO)
        access_log.addHandler(logging.StreamHandler())
    logging.basicConfig(level=logging.INFO)
    print(f"localstripe: listening on http://{args.host}:{args.port} (state in {_State.data_dir})", flush=True)
    web.run_app(app, sock=sock, access_log=access_log, print=None)


if __name__ == "__main__":
    main()
