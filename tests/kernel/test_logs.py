"""No secret in any log line: a known password through every log path, configured or not, and through a
real `mes` run that fails on it; tracebacks without local variables."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from kernel.embedded.broker import free_port
from kernel.logs import redact_secrets

PASSWORD = "Kn0wn-S3cret-pw"
URL = f"postgresql://mes:{PASSWORD}@db.plant:5432/mes"
TOKEN = "mes_0123456789ab_" + "s" * 43

SCRIPT = textwrap.dedent(f"""
    import logging, sys
    from kernel.logs import configure_logging, get_logger
    if sys.argv[1] != "unconfigured":
        configure_logging("INFO", sys.argv[1])
    log = get_logger("test")

    def connect(database_url):
        password = {PASSWORD!r}
        raise ConnectionError(f"could not connect to {{database_url}}")

    try:
        connect({URL!r})
    except ConnectionError:
        log.exception("connecting failed")
    log.warning("starting", url={URL!r}, password={PASSWORD!r}, authorization="Bearer {TOKEN}")
    log.warning("libpq form host=db password={PASSWORD} dbname=mes")
    logging.getLogger("a.library").warning("connecting to %s with %s", {URL!r}, "{TOKEN}")
    try:
        connect({URL!r})
    except ConnectionError:
        logging.getLogger("a.library").exception("the library failed")
""")


@pytest.mark.parametrize("mode", ["unconfigured", "console", "json"])
def test_a_known_password_appears_in_no_log_line_and_tracebacks_have_no_locals(mode):
    done = subprocess.run([sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "NO_COLOR": "1"})
    output = done.stdout + done.stderr
    assert "connecting failed" in output and "starting" in output and "the library failed" in output, output
    assert PASSWORD not in output, output
    assert TOKEN not in output and "s" * 43 not in output, output
    assert "database_url =" not in output and "password =" not in output, f"a traceback showed locals:\n{output}"
    assert "Traceback" in output and "mes:***@db.plant" in output
    if mode == "json":
        lines = [json.loads(line) for line in done.stdout.splitlines() + done.stderr.splitlines() if line.startswith("{")]
        assert {line["event"] for line in lines} >= {"connecting failed", "starting"}


def test_a_failing_mes_run_with_a_password_in_its_database_url_does_not_print_it(tmp_path):
    url = f"postgresql://mes:{PASSWORD}@127.0.0.1:{free_port()}/mes"  # nothing listens there
    done = subprocess.run([sys.executable, "-m", "app", "db", "upgrade"], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "MES_DATABASE_URL": url, "MES_DATA_DIR": str(tmp_path), "NO_COLOR": "1"})
    output = done.stdout + done.stderr
    assert done.returncode != 0 and output.strip(), output
    assert PASSWORD not in output, output


def test_redaction_covers_urls_keywords_headers_keys_and_tokens():
    assert redact_secrets("opc.tcp://op:p@ss@plc:4840/ and mqtt://edge:pw@broker:1883") == \
        "opc.tcp://op:***@plc:4840/ and mqtt://edge:***@broker:1883"
    assert redact_secrets("host=db password=secret dbname=mes") == "host=db password=*** dbname=mes"
    assert redact_secrets('{"password": "two words", "token": "abc"}') == '{"password": ***, "token": ***}'
    assert redact_secrets(f"Authorization: Bearer {TOKEN}") == "Authorization: Bearer ***"
    assert redact_secrets(f"key {TOKEN} used") == "key mes_0123456789ab_*** used"
    assert redact_secrets("jwt eyJhbGciOi.eyJzdWIiOi.c2lnbmF0dXJl end") == "jwt *** end"
    assert redact_secrets("modbus 10.0.0.5:502, a token bucket") == "modbus 10.0.0.5:502, a token bucket"
