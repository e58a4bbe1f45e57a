"""Small HTTP calls to lab addresses, for the parts of the benchmark that run inside the lab
network: one GET or PUT, and waiting until a URL answers 200."""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from bench.target import Target

# Straight to the address: never through a proxy of the environment (http_proxy ...).
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass(frozen=True)
class Answer:
    """An HTTP status (0: no answer) and the body, or why there was none."""

    status: int
    body: str

    def json(self) -> Any:
        return json.loads(self.body)


def request(url: str, method: str = "GET", timeout: float = 5.0) -> Answer:
    """One request to a lab address (Target.parse refuses any other); never raises for
    HTTP or network errors, which come back as the Answer. An https URL is checked against
    the CA in SSL_CERT_FILE (the cluster's, from the stack's `caCertificate` output);
    NOMAD_TOKEN and CONSUL_HTTP_TOKEN, when set, go as the ACL tokens."""
    Target.parse(url, schemes=("http", "https"))
    req = urllib.request.Request(url, method=method, data=b"" if method in ("PUT", "POST") else None)
    # With ACLs: the tokens from the environment (each API reads its own header).
    for header, variable in (("X-Nomad-Token", "NOMAD_TOKEN"), ("X-Consul-Token", "CONSUL_HTTP_TOKEN")):
        if os.environ.get(variable):
            req.add_header(header, os.environ[variable])
    try:
        with _OPENER.open(req, timeout=timeout) as resp:
            return Answer(resp.status, resp.read().decode(errors="replace"))
    except urllib.error.HTTPError as err:
        return Answer(err.code, err.read().decode(errors="replace"))
    except (OSError, ValueError) as err:
        return Answer(0, f"{type(err).__name__}: {err}")


@dataclass(frozen=True)
class Probe:
    """How long URL took to answer 200, and that answer (or the last one seen)."""

    ok: bool
    elapsed: float
    tries: int
    answer: Answer

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "elapsed_s": round(self.elapsed, 3), "tries": self.tries,
                "status": self.answer.status, "body": self.answer.body}


def wait_for(url: str, timeout: float, interval: float = 0.2, contains: str = "") -> Probe:
    """GET URL until it answers 200 (with CONTAINS in the body) or TIMEOUT seconds pass."""
    start = time.monotonic()
    tries = 0
    while True:
        tries += 1
        answer = request(url, timeout=min(5.0, max(0.5, timeout)))
        elapsed = time.monotonic() - start
        if answer.status == 200 and contains in answer.body:
            return Probe(True, elapsed, tries, answer)
        if elapsed >= timeout:
            return Probe(False, elapsed, tries, answer)
        time.sleep(interval)
