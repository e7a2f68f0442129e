"""deploy/nginx/parley.conf, for real: Debian's nginx on loopback with a self-signed certificate,
in front of the test Daphne and a real gpu worker.

Only the lines marked EDIT (upstream, ports, certificate, static root) are rewritten; every proxy
setting runs as shipped. Through nginx: an SSE reply arrives while it is still being written, a
WebSocket chat turn and a voice turn (binary audio both ways) work, HSTS is on every response,
static files come from disk, and oversized uploads stop at nginx.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import re
import shutil
import ssl
import subprocess
import wave
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client

from accounts.tests.factories import user_make
from chat.models import Message
from chat.tests.factories import conversation_make
from common.stack import process_stop, wait_for
from config import services
from inference.tests.factories import api_key_make
from inference.tests.speech import speech_clip

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

CONF = Path(__file__).resolve().parent.parent / "deploy" / "nginx" / "parley.conf"
LONG = "Write a long story about a lighthouse keeper and a storm, in many paragraphs."


def _conf_for_test(*, upstream: str, http_port: int, https_port: int, cert: Path, key: Path, static: Path) -> str:
    """The shipped file with its EDIT lines pointed at this test's ports, certificate and static root."""
    text = CONF.read_text()
    replacements = {
        r"server web:8000;.*": f"server {upstream};",
        r"listen 80;.*": f"listen 127.0.0.1:{http_port};",
        r"listen \[::\]:80;.*": "",
        r"listen 443 ssl http2;.*": f"listen 127.0.0.1:{https_port} ssl http2;",
        r"listen \[::\]:443 ssl http2;.*": "",
        r"ssl_certificate\s+/etc/nginx/tls/parley.crt;.*": f"ssl_certificate {cert};",
        r"ssl_certificate_key\s+/etc/nginx/tls/parley.key;.*": f"ssl_certificate_key {key};",
        r"alias /srv/parley/static/;.*": f"alias {static}/;",
        r"server_name _;  # EDIT.*": "server_name localhost;",
    }
    for pattern, replacement in replacements.items():
        text, count = re.subn(pattern, replacement, text)
        assert count == 1, f"the shipped parley.conf no longer has one line matching {pattern!r}"
    assert "# EDIT" not in text
    return text


@pytest.fixture(scope="module")
def nginx(live_daphne, tmp_path_factory):
    binary = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
    if binary is None:
        pytest.fail("nginx is not installed; `make test` installs Debian's nginx package.")
    root = tmp_path_factory.mktemp("nginx")
    cert, key = root / "parley.crt", root / "parley.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    static = root / "static"
    static.mkdir()
    (static / "probe.txt").write_text("served by nginx from disk\n")
    http_port, https_port = services._free_port(), services._free_port()
    (root / "parley.conf").write_text(_conf_for_test(
        upstream=live_daphne["url"].removeprefix("http://"), http_port=http_port, https_port=https_port,
        cert=cert, key=key, static=static))
    for name in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (root / name).mkdir()
    # As root, workers run as root too: pytest's temporary directories are private to their owner.
    user = "user root;" if os.geteuid() == 0 else ""
    (root / "nginx.conf").write_text(f"""
{user}
worker_processes 1;
daemon off;
pid {root}/nginx.pid;
error_log {root}/error.log info;
events {{ worker_connections 256; }}
http {{
    include /etc/nginx/mime.types;
    access_log {root}/access.log;
    client_body_temp_path {root}/body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
    include {root}/parley.conf;
}}
""")
    check = subprocess.run([binary, "-t", "-p", str(root), "-c", str(root / "nginx.conf")], capture_output=True,
                           text=True)
    assert check.returncode == 0, check.stderr
    process = subprocess.Popen([binary, "-p", str(root), "-c", str(root / "nginx.conf")],
                               stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: services.port_in_use(https_port), timeout=20, what="nginx", log=root / "error.log")
        context = ssl.create_default_context(cafile=str(cert))
        yield {"https_port": https_port, "http_port": http_port, "context": context, "root": root}
    finally:
        process_stop(process)


def _https(nginx) -> http.client.HTTPSConnection:
    return http.client.HTTPSConnection("localhost", nginx["https_port"], context=nginx["context"], timeout=180)


def _session_cookie(user) -> str:
    client = Client()
    client.force_login(user)
    return f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"


def test_tls_with_hsts_static_from_disk_redirect_and_upload_limit(nginx):
    connection = _https(nginx)
    connection.request("GET", "/healthz")
    response = connection.getresponse()
    assert response.status == 200 and json.loads(response.read()) == {"status": "ok"}
    hsts = response.headers.get_all("Strict-Transport-Security")
    assert hsts == ["max-age=31536000; includeSubDomains; preload"]

    connection.request("GET", "/static/probe.txt")  # exists only in nginx's static root, not in Daphne's
    response = connection.getresponse()
    assert response.status == 200 and response.read() == b"served by nginx from disk\n"
    assert response.headers["Strict-Transport-Security"].startswith("max-age=31536000")

    # nginx answers 413 from the Content-Length alone, before any byte of the body is read.
    connection.putrequest("POST", "/api/knowledge/collections/1/documents")
    connection.putheader("Content-Length", str(60 * 1024 * 1024))
    connection.putheader("Content-Type", "application/octet-stream")
    connection.endheaders()
    response = connection.getresponse()
    assert response.status == 413
    connection.close()

    plain = http.client.HTTPConnection("127.0.0.1", nginx["http_port"], timeout=10)
    plain.request("GET", "/app/", headers={"Host": "localhost"})
    response = plain.getresponse()
    assert response.status == 301 and response.headers["Location"] == "https://localhost/app/"
    plain.close()


def test_sse_reply_arrives_while_it_is_still_being_written(nginx, celery_worker, bundled_models):
    api_key, secret = api_key_make()
    conversation = conversation_make(user=api_key.user)
    connection = _https(nginx)
    connection.request("POST", f"/api/conversations/{conversation.pk}/messages", body=json.dumps({"text": LONG}),
                       headers={"Authorization": f"Bearer {secret}", "Content-Type": "application/json"})
    response = connection.getresponse()
    assert response.status == 200 and response.headers["Content-Type"].startswith("text/event-stream")
    assert response.headers["Strict-Transport-Security"].startswith("max-age=31536000")

    deltas, status_at_first_delta = [], None
    while len(deltas) < 5:
        line = response.fp.readline()
        assert line, "the stream ended before five deltas"
        if not line.startswith(b"data: "):
            continue
        frame = json.loads(line[6:])
        if frame["type"] == "delta":
            if not deltas:
                # Token by token: the first delta is through nginx while the row is still `streaming`.
                # Had nginx buffered the response, it would only arrive once the reply was done.
                status_at_first_delta = Message.objects.get(role="assistant").status
            deltas.append(frame["text"])
    assert status_at_first_delta == Message.Status.STREAMING
    connection.close()  # hanging up through nginx stops the reply
    wait_for(lambda: Message.objects.get(role="assistant").status != Message.Status.STREAMING, timeout=60,
             what="the reply to stop after the client hung up")
    assert Message.objects.get(role="assistant").status == Message.Status.INTERRUPTED


def _wss(nginx, path: str, cookie: str):
    import websockets

    port = nginx["https_port"]
    return websockets.connect(f"wss://localhost:{port}{path}", ssl=nginx["context"], origin=f"https://localhost:{port}",
                              additional_headers={"Cookie": cookie}, max_size=None)


def test_websocket_chat_turn_through_nginx(nginx, celery_worker, bundled_models):
    user = user_make()
    conversation = conversation_make(user=user)
    cookie = _session_cookie(user)

    async def talk() -> list[dict]:
        async with _wss(nginx, f"/ws/chat/{conversation.pk}/", cookie) as socket:
            await socket.send(json.dumps({"type": "ping"}))
            assert json.loads(await asyncio.wait_for(socket.recv(), timeout=30)) == {"type": "pong"}
            await socket.send(json.dumps({"type": "user_message", "text": "Say hello in five words."}))
            frames = []
            while not frames or frames[-1]["type"] not in ("metrics", "error"):
                frames.append(json.loads(await asyncio.wait_for(socket.recv(), timeout=180)))
            return frames

    frames = asyncio.run(talk())
    kinds = [frame["type"] for frame in frames]
    assert kinds[0] == "start" and "delta" in kinds and kinds[-2:] == ["done", "metrics"], kinds
    reply = Message.objects.get(role="assistant")
    assert reply.status == "done" and reply.text == "".join(f["text"] for f in frames if f["type"] == "delta")


def test_voice_turn_binary_frames_pass_both_ways(nginx, celery_worker, bundled_models, tmp_path):
    user = user_make()
    conversation = conversation_make(user=user)
    cookie = _session_cookie(user)
    with wave.open(str(speech_clip("what is the capital of France", tmp_path))) as clip:
        pcm = clip.readframes(clip.getnframes())

    async def talk() -> tuple[list[dict], int]:
        async with _wss(nginx, f"/ws/voice/{conversation.pk}/", cookie) as socket:
            await socket.send(json.dumps({"type": "start", "sample_rate": 16000}))
            for offset in range(0, len(pcm), 640):  # 20 ms PCM16 frames, as the page sends them
                await socket.send(pcm[offset:offset + 640])
            await socket.send(json.dumps({"type": "end"}))
            frames, audio = [], 0
            while not frames or frames[-1]["type"] not in ("done", "error"):
                message = await asyncio.wait_for(socket.recv(), timeout=180)
                if isinstance(message, bytes):
                    audio += len(message)
                else:
                    frames.append(json.loads(message))
            return frames, audio

    frames, audio_bytes = asyncio.run(talk())
    kinds = [frame["type"] for frame in frames]
    assert kinds[-1] == "done", frames
    transcript = next(frame for frame in frames if frame["type"] == "transcript")["text"].lower()
    assert "france" in transcript
    assert "audio_start" in kinds and audio_bytes / 2 / 22050 > 0.5  # over half a second of reply audio
