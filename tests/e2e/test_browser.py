"""The demo as a person sees it: headless Chromium (tests/e2e/browser.py) runs on the host and
reaches the lab through the host's link to the lab switch (`python3 -m lab link up`, as
`./run up` makes it). By the seed's names it opens the load balancer's index, fib through the
load balancer, the Consul UI and the Nomad UI (each logged in with the stack's management
token, as a user pastes it) and cAdvisor, and the test reads what the rendered pages show.

The names resolve as the stack's /etc/hosts block says (`hostsLines`, given to the browser so
that another stack's block in /etc/hosts cannot interfere); the browser trusts the cluster's
CA the way a user's does (imported into its certificate store). The screenshots go to
HASHICLUSTER_SCREENSHOTS when set (the README's come from `HASHICLUSTER_SCREENSHOTS=docs/screenshots
./run test tests/e2e/test_browser.py`), else to the test's temporary directory.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import Project

pytestmark = pytest.mark.e2e

BROWSER = Path(__file__).with_name("browser.py")


@pytest.fixture
def host_link(project: Project) -> Iterator[None]:
    """The host's link to the lab switch, up for the test (left up if it was up already)."""
    had = "no link" not in project.lab("link", "status").stdout
    project.lab("link", "up")
    yield
    if not had:
        project.lab("link", "down")


def consul_login(lb_address: str, secret: str) -> str:
    """What the Consul UI keeps in localStorage once a user logs in with SECRET: the token's
    accessor and secret (the UI shows "Log in" while the accessor is missing). Asked by address:
    the host's /etc/hosts may name another stack's load balancer."""
    url = f"http://{lb_address}:8500/v1/acl/token/self"
    request = urllib.request.Request(url, headers={"X-Consul-Token": secret})
    with urllib.request.urlopen(request, timeout=30) as response:
        accessor = json.load(response)["AccessorID"]
    return json.dumps({"AccessorID": accessor, "SecretID": secret})


def pages(outputs: dict[str, Any], secrets: dict[str, Any], shots: Path) -> list[dict[str, Any]]:
    """What to open, as whom, and what each page must (and must not) show."""
    roles = {m["role"]: m for m in reversed(list(outputs["machines"].values()))}  # the first of each
    lb, root = roles["lb"]["hostname"], roles["server"]["hostname"]
    client1 = outputs["machines"]["client1"]["hostname"]
    return [
        {"name": "index", "url": f"http://{lb}/", "expect": [f"load balancer {lb}", "/<service>/"],
         "screenshot": str(shots / "lb-index.png")},
        {"name": "fib", "url": f"http://{lb}/fib/10", "expect": ['"fib": 55'],
         "screenshot": str(shots / "fib.png")},
        {"name": "consul", "url": f"http://{lb}:8500/ui/dc1/services/fib/instances",
         "storage": {"consul:token": consul_login(roles["lb"]["address"], secrets["consulManagementToken"])},
         "expect": ["Logout", "client1", "client2", "client3", "All service checks passing"],
         "absent": ["Log in", "failing", "warning"], "screenshot": str(shots / "consul-ui.png")},
        {"name": "nomad", "url": f"https://{root}:4646/ui/jobs/fib@default",
         "storage": {"nomadTokenSecret": secrets["nomadManagementToken"]},
         "expect": ["3/3 Allocations Running", "Healthy"], "absent": ["Sign In", "Not Authorized"],
         "screenshot": str(shots / "nomad-ui.png")},
        {"name": "cadvisor", "url": f"http://{client1}:8080/", "expect": [f"Containers on {client1}", "fib"],
         "screenshot": str(shots / "cadvisor.png")},
    ]


def look(project: Project, request: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The browser's findings per page."""
    proc = subprocess.run([sys.executable, str(BROWSER)], input=json.dumps(request), capture_output=True,
                          text=True, timeout=600, check=False, cwd=project.path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {page["name"]: page for page in json.loads(proc.stdout)}


def test_the_demo_in_a_real_browser(project: Project, cluster: dict[str, Any], host_link: None,
                                    tmp_path: Path) -> None:
    secrets = json.loads(project.pulumi("stack", "output", "--json", "--show-secrets").stdout)
    ca = tmp_path / "ca.pem"
    ca.write_text(cluster["caCertificate"])
    hosts = {name: line.split()[0] for line in cluster["hostsLines"] for name in line.split()[1:]}
    shots = Path(os.environ.get("HASHICLUSTER_SCREENSHOTS") or tmp_path / "screenshots").resolve()
    shots.mkdir(parents=True, exist_ok=True)
    seen = look(project, {"hosts": hosts, "ca": str(ca), "pages": pages(cluster, secrets, shots)})
    assert sorted(seen) == ["cadvisor", "consul", "fib", "index", "nomad"]
    for name, page in seen.items():
        assert (page["missing"], page["present"]) == ([], []), \
            f"{name} ({page['url']}) shows {page['present']}, not {page['missing']}:\n{page['text']}"
        assert Path(page["screenshot"]).stat().st_size > 0, name
    # Every instance of fib, with its checks passing, on the page a person reads.
    assert seen["consul"]["text"].count("All service checks passing") == 3, seen["consul"]["text"]
    print(f"screenshots: {shots}")
