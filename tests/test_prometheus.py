"""The shipped alert rules and Grafana dashboard against a real Prometheus scraping a test stack.

Debian's `prometheus` runs on loopback and scrapes the test Daphne's /metrics every second. Every
dashboard query and every alert expression must parse and return a series: a panel or rule that
names a metric Parley does not export returns nothing and fails here.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml

from chat.tests.factories import conversation_make
from common.stack import process_stop, wait_for
from config import services
from inference.tests.factories import api_key_make

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
DASHBOARD = DEPLOY / "grafana" / "parley.json"


def _binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed; `make test` installs Debian's prometheus package.")
    return path


def _query(base: str, expr: str) -> dict:
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as error:
        body = error.read()
        try:  # a 400 carries Prometheus's parse error as JSON
            return json.loads(body)
        except ValueError:  # a 503 while its storage starts up is plain text
            return {"status": "error", "error": f"HTTP {error.code}: {body[:200]!r}"}


def _left_side(expr: str) -> str:
    """`<query> <op> <threshold>` → `<query>`: the comparison filters series out when nothing fires."""
    match = re.fullmatch(r"(?s)(.*\S)\s*(>|<|>=|<=|==|!=)\s*[-+0-9.e]+\s*", expr)
    assert match, f"alert expression is not `<query> <comparison> <number>`: {expr}"
    return match.group(1)


def _dashboard_queries() -> list[tuple[str, str]]:
    dashboard = json.loads(DASHBOARD.read_text())
    queries = [(panel["title"], target["expr"]) for panel in dashboard["panels"]
               for target in panel.get("targets", [])]
    assert len(queries) >= 15
    return queries


def _alert_rules() -> list[dict]:
    return [rule for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]]


def test_promtool_accepts_the_alert_rules():
    result = subprocess.run([_binary("promtool"), "check", "rules", str(ALERTS)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    names = {rule["alert"] for rule in _alert_rules()}
    assert {"ParleyVoiceFirstAudioP95High", "ParleyTTFTP95High", "ParleyHTTP5xxRate", "ParleyQueueBackingUp",
            "ParleyGpuHeartbeatMissing", "ParleyChargeFailures", "ParleyWebhookBacklog"} <= names


def test_every_panel_and_alert_returns_a_series_from_a_live_stack(live_daphne, celery_worker, bundled_models,
                                                                  tmp_path):
    # One real chat turn over SSE, so the chat histograms hold an observation and the worker a model.
    api_key, secret = api_key_make()
    conversation = conversation_make(user=api_key.user)
    request = urllib.request.Request(
        f"{live_daphne['url']}/api/conversations/{conversation.pk}/messages", method="POST",
        data=json.dumps({"text": "Say hello."}).encode(),
        headers={"Authorization": f"Bearer {secret}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=180) as response:
        assert '"type": "done"' in response.read().decode()

    port = services._free_port()
    target = live_daphne["url"].removeprefix("http://")
    config = tmp_path / "prometheus.yml"
    config.write_text(yaml.safe_dump({
        # A scrape may take a second on a busy machine (the collectors read Redis and PostgreSQL).
        "global": {"scrape_interval": "2s", "scrape_timeout": "2s", "evaluation_interval": "1s"},
        "rule_files": [str(ALERTS)],
        "scrape_configs": [{"job_name": "parley", "metrics_path": "/metrics",
                            "authorization": {"type": "Bearer", "credentials": live_daphne["metrics_token"]},
                            "static_configs": [{"targets": [target]}]}],
    }))
    check = subprocess.run([_binary("promtool"), "check", "config", str(config)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    log = tmp_path / "prometheus.log"
    with log.open("w") as out:
        prometheus = subprocess.Popen(
            [_binary("prometheus"), f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'data'}",
             f"--web.listen-address=127.0.0.1:{port}"], stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        # Three good scrapes give every rate() two points inside its window.
        def scraped() -> bool:
            try:
                result = _query(base, 'sum_over_time(up{job="parley"}[1m]) >= 3')
            except OSError:
                return False
            return bool(result.get("data", {}).get("result"))

        try:
            wait_for(scraped, timeout=90, what="Prometheus scraping the test Daphne", log=log)
        except RuntimeError as exc:
            with urllib.request.urlopen(f"{base}/api/v1/targets", timeout=10) as response:
                targets = json.loads(response.read())["data"]["activeTargets"]
            raise AssertionError(f"{exc}\ntargets: {[(t['health'], t['lastError']) for t in targets]}") from None

        empty = []
        for title, expr in _dashboard_queries():
            result = _query(base, expr)
            assert result["status"] == "success", f"panel {title!r}: {expr}\n{result.get('error')}"
            if not result["data"]["result"]:
                empty.append(f"panel {title!r}: {expr}")
        for rule in _alert_rules():
            result = _query(base, rule["expr"])
            assert result["status"] == "success", f"alert {rule['alert']}: {result.get('error')}"
            if not _query(base, _left_side(rule["expr"]))["data"]["result"]:
                empty.append(f"alert {rule['alert']}: {_left_side(rule['expr'])}")
        assert not empty, "queries that return no series (a metric Parley doesn't export?):\n" + "\n".join(empty)

        # Prometheus evaluated every loaded rule without an error.
        def rules_evaluated() -> bool:
            with urllib.request.urlopen(f"{base}/api/v1/rules", timeout=10) as response:
                rules = [r for g in json.loads(response.read())["data"]["groups"] for r in g["rules"]]
            return len(rules) == len(_alert_rules()) and all(r.get("lastEvaluation", "").startswith("2")
                                                             and r["health"] == "ok" for r in rules)

        wait_for(rules_evaluated, timeout=30, what="every alert rule evaluated healthy", log=log)
    finally:
        process_stop(prometheus)
