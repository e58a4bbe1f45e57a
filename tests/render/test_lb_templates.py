"""The load balancer's templates: nginx.conf, consul-template's config and templates, units.

The pure tests render them and check what they say. The sandbox tests (root, the toolchain's
consul and consul-template, nginx; no machine) run the real thing on loopback inside a
private network namespace: a Consul dev agent with services tagged `lb`
(one healthy with a dead second instance, one without a healthy instance), the real
consul-template rendering the routes, `nginx -t` on the result, and nginx serving it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
import pytest

from toolchain.api import installed
from toolchain.errors import ToolchainError

from ..waiting import HANG_GUARD, wait_until

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = ROOT / "templates"
LB = TEMPLATES / "lb"
# Where the files go on the load balancer (the program installs them there).
CT_DIR = "/etc/consul-template.d/"
UPSTREAMS = "/etc/nginx/conf.d/services.conf"
LOCATIONS = "/etc/nginx/locations.d/services.conf"

ENV = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)),
                         undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
                         autoescape=False)


@dataclass(frozen=True)
class SampleNode:
    """What the templates read from the program's Node."""

    address: str
    hostname: str


LB_NODE = SampleNode("10.210.1.20", "frontend.lb.demo")
LOOPBACK_NODE = SampleNode("127.0.0.2", "frontend.lb.test")  # for nginx -t: an address it can bind
CONSUL_SERVERS = ["10.210.1.10:8500", "10.210.1.11:8500", "10.210.1.12:8500"]


def render(template: str, **context: Any) -> str:
    return ENV.get_template(template).render(**context)


def nginx_conf(node: SampleNode, upstreams: list[str], tls: bool = False) -> str:
    return render("lb/nginx.conf.j2", node=node, consul_ui_upstreams=upstreams, tls=tls,
                  datacenter="dc1")


def consul_template_hcl(node: SampleNode = LB_NODE, tls: bool = False) -> str:
    return render("lb/consul-template.hcl.j2", node=node, consul_ui_upstreams=CONSUL_SERVERS, tls=tls)


def reload_command(hcl: str) -> list[str]:
    """The `command` of the template blocks (all the same)."""
    commands = {m.group(1) for m in re.finditer(r"^\s*command\s*=\s*(\[.*\])\s*$", hcl, re.M)}
    assert len(commands) == 1, commands
    parsed: list[str] = json.loads(commands.pop())
    return parsed


def template_blocks(hcl: str) -> list[dict[str, str]]:
    """source and destination of each `template { ... }` block."""
    blocks = []
    for body in re.findall(r"^template \{\n(.*?)^\}", hcl, re.S | re.M):
        fields = dict(re.findall(r'^\s*(source|destination)\s*=\s*"([^"]*)"', body, re.M))
        blocks.append(fields)
    return blocks


# ---------------------------------------------------------------- nginx.conf

def test_nginx_conf_serves_index_health_routes_and_the_consul_ui() -> None:
    conf = nginx_conf(LB_NODE, CONSUL_SERVERS)
    assert "include /etc/nginx/conf.d/*.conf;" in conf
    assert "include /etc/nginx/locations.d/*.conf;" in conf
    assert "listen 80 default_server;" in conf
    assert re.search(r"location = / \{\n\s+return 200 \"hashicluster load balancer "
                     r"frontend\.lb\.demo \(10\.210\.1\.20\)", conf)
    assert re.search(r"location = /health \{\n\s+access_log off;\n\s+return 200 \"ok\\n\";", conf)
    # the Consul UI on the node's own address only: the local agent keeps 127.0.0.1:8500
    assert "listen 10.210.1.20:8500;" in conf
    for server in CONSUL_SERVERS:
        assert f"server {server} max_fails=1 fail_timeout=5s;" in conf
    assert "proxy_pass http://hashicluster_consul_ui;" in conf
    # Debian's unit passes `-g 'daemon on; master_process on;'` and reads /run/nginx.pid
    assert "pid /run/nginx.pid;" in conf
    assert "daemon" not in conf and "master_process" not in conf


def test_with_tls_the_consul_ui_is_proxied_to_https_checked_against_the_ca() -> None:
    conf = nginx_conf(LB_NODE, ["10.210.1.10:8501"], tls=True)
    assert "proxy_pass https://hashicluster_consul_ui;" in conf
    assert "proxy_ssl_verify on;" in conf and "proxy_ssl_name server.dc1.consul;" in conf
    assert "proxy_ssl_trusted_certificate /etc/consul.d/tls/ca.pem;" in conf
    hcl = consul_template_hcl(tls=True)
    assert 'address = "127.0.0.1:8501"' in hcl and 'ca_cert = "/etc/consul.d/tls/ca.pem"' in hcl
    assert "verify  = true" in hcl


def test_nginx_conf_without_consul_servers_has_no_empty_upstream() -> None:
    conf = nginx_conf(LB_NODE, [])
    assert "hashicluster_consul_ui" not in conf and ":8500;" not in conf
    assert conf.count("{") == conf.count("}")


def nginx_binary() -> str:
    found = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/sbin")
    if found is None:
        pytest.skip("nginx is not installed on this host: `apt-get install nginx` (it need not "
                    "run; these tests start their own)")
    return found


NGINX_TEMP_PATHS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")


def write_nginx_tree(root: Path, conf: str, generated: dict[str, str] | None = None) -> Path:
    """nginx.conf and the generated files under ROOT, with /etc/nginx and the log and pid
    paths moved there; returns the nginx.conf to pass to `nginx -c`."""
    etc, logs = root / "etc-nginx", root / "log"
    for d in (etc / "conf.d", etc / "locations.d", logs, root / "temp"):
        d.mkdir(parents=True, exist_ok=True)
    (etc / "mime.types").write_text("types {\n    text/html html;\n    text/plain txt;\n}\n")
    moved = (conf.replace("/etc/nginx/", f"{etc}/").replace("/var/log/nginx/", f"{logs}/")
             .replace("/run/nginx.pid", f"{root}/nginx.pid"))
    # nginx makes its temporary directories at start, at paths built into the binary
    # (/var/lib/nginx/... for Debian's, which its package creates): keep them in ROOT too.
    temps = "".join(f"    {kind}_temp_path {root}/temp/{kind};\n" for kind in NGINX_TEMP_PATHS)
    assert "\nhttp {\n" in moved, "the template's http block"
    moved = moved.replace("\nhttp {\n", "\nhttp {\n" + temps, 1)
    (etc / "nginx.conf").write_text(moved)
    for path, content in (generated or {}).items():
        (etc / path.removeprefix("/etc/nginx/")).write_text(content)
    return etc / "nginx.conf"


def nginx_test(nginx: str, conf_file: Path) -> subprocess.CompletedProcess[str]:
    """`nginx -t` in a network namespace of its own: it binds the listen addresses to check
    them, and 127.0.0.2 (the sample node's address) exists there once loopback is up."""
    return subprocess.run(["unshare", "--net", "--", "sh", "-c",
                           'ip link set lo up && exec "$0" -t -c "$1"', nginx, str(conf_file)],
                          capture_output=True, text=True, check=False, timeout=30)


@pytest.mark.skipif(os.geteuid() != 0, reason="nginx -t opens the log files as root")
def test_nginx_accepts_the_config_before_any_route_exists(tmp_path: Path) -> None:
    """Before consul-template's first render the generated directories are empty (or absent)."""
    nginx = nginx_binary()
    conf_file = write_nginx_tree(tmp_path, nginx_conf(LOOPBACK_NODE, CONSUL_SERVERS))
    shutil.rmtree(conf_file.parent / "locations.d")
    res = nginx_test(nginx, conf_file)
    assert res.returncode == 0, res.stderr
    assert "test is successful" in res.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="nginx -t opens the log files as root")
def test_nginx_refuses_a_broken_route(tmp_path: Path) -> None:
    """nginx -t does catch mistakes (so the checks here and on the machine could fail)."""
    nginx = nginx_binary()
    conf_file = write_nginx_tree(tmp_path, nginx_conf(LOOPBACK_NODE, CONSUL_SERVERS),
                                 {LOCATIONS: "location /x/ { proxy_pass http://x/; }\n"
                                             "upstream x { }\n"})
    assert nginx_test(nginx, conf_file).returncode != 0


# ---------------------------------------------------------------- consul-template

def test_the_consul_templates_are_generic() -> None:
    """Every service tagged `lb`, its passing instances; no service is named."""
    name_filter = '(.Name | regexMatch "^[A-Za-z0-9][A-Za-z0-9-]*$")'
    for ctmpl in ("services.ctmpl", "locations.ctmpl"):
        text = (LB / ctmpl).read_text()
        assert "fib" not in text.lower()
        assert "{{- range services }}" in text
        assert f'{{{{- if and (.Tags | contains "lb") {name_filter} }}}}' in text
        assert 'service (printf "%s|passing" .Name)' in text
    locations = (LB / "locations.ctmpl").read_text()
    assert 'return 503 "no healthy instance of {{ .Name }}\\n";' in locations
    assert "proxy_next_upstream error timeout http_502 http_503;" in locations
    assert "proxy_connect_timeout 1s;" in locations


def test_consul_template_config() -> None:
    hcl = consul_template_hcl()
    assert re.search(r'^consul \{\n\s+address = "127\.0\.0\.1:8500"', hcl, re.M)
    wait = re.search(r'^wait \{\n\s+min = "(\d+)(ms|s)"\n\s+max = "(\d+)(ms|s)"', hcl, re.M)
    assert wait is not None
    seconds = [int(wait[1]) / (1000 if wait[2] == "ms" else 1),
               int(wait[3]) / (1000 if wait[4] == "ms" else 1)]
    assert seconds[0] <= 1 and seconds[1] <= 3
    assert template_blocks(hcl) == [
        {"source": f"{CT_DIR}services.ctmpl", "destination": UPSTREAMS},
        {"source": f"{CT_DIR}locations.ctmpl", "destination": LOCATIONS}]
    assert hcl.count("error_on_missing_key = false") == 2
    assert reload_command(hcl)[:2] == ["/bin/sh", "-c"]


def fake_tools(bin_dir: Path, nginx_exit: int) -> Path:
    """`nginx` exiting NGINX_EXIT and a `systemctl` that logs its arguments."""
    bin_dir.mkdir(exist_ok=True)
    log = bin_dir / "calls"
    for name, body in (("nginx", f'echo "nginx $*" >>{log}; exit {nginx_exit}'),
                       ("systemctl", f'echo "systemctl $*" >>{log}')):
        (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / name).chmod(0o755)
    return log


@pytest.mark.parametrize(("nginx_exit", "calls", "message"), [
    (0, ["nginx -t -q", "systemctl try-reload-or-restart nginx"], ""),
    (1, ["nginx -t -q"], "nginx -t refused the new routes"),
])
def test_reload_runs_only_after_nginx_t_passes(tmp_path: Path, nginx_exit: int,
                                               calls: list[str], message: str) -> None:
    log = fake_tools(tmp_path / "bin", nginx_exit)
    res = subprocess.run(reload_command(consul_template_hcl()), capture_output=True, text=True,
                         env={"PATH": f"{tmp_path / 'bin'}:/usr/bin:/bin"}, check=False)
    assert res.returncode == 0, "a failing command would stop consul-template"
    assert log.read_text().splitlines() == calls
    assert message in res.stderr


# ---------------------------------------------------------------- systemd units

def test_units() -> None:
    ct = render("systemd/consul-template.service.j2", node=LB_NODE,
                consul_ui_upstreams=CONSUL_SERVERS)
    assert "ExecStart=/usr/local/bin/consul-template " \
           "-config=/etc/consul-template.d/consul-template.hcl\n" in ct
    assert "After=network-online.target consul.service nginx.service\n" in ct
    cadvisor = render("systemd/cadvisor.service.j2", node=LB_NODE)
    assert "ExecStart=/usr/local/bin/cadvisor -port 8080 -listen_ip 10.210.1.20\n" in cadvisor
    assert "Restart=on-failure\n" in cadvisor and "User=" not in cadvisor


def test_systemd_accepts_the_units(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    units = {"consul-template.service": render("systemd/consul-template.service.j2",
                                               node=LB_NODE, consul_ui_upstreams=CONSUL_SERVERS),
             "cadvisor.service": render("systemd/cadvisor.service.j2", node=LB_NODE)}
    for name, text in units.items():
        (tmp_path / name).write_text(text)
    res = subprocess.run([analyze, "verify", *(str(tmp_path / n) for n in units)],
                         capture_output=True, text=True, check=False, timeout=60)
    # The binaries live on the machines, not here; anything else is a mistake in a unit.
    problems = [line for line in (res.stdout + res.stderr).splitlines() if line.strip()
                and not re.search(r"Command /usr/local/bin/(consul-template|cadvisor) is not "
                                  r"executable", line)]
    assert problems == []


# ---------------------------------------------------------------- the real thing, in a sandbox

def binary(tool: str) -> str:
    try:
        return str(installed(tool).path)
    except ToolchainError as err:
        pytest.fail(f"{err} (these tests run the real {tool}; `./run test` builds it)")


# An HTTP client run inside the sandbox's namespace: prints status, headers, body.
HTTP_CLIENT = """
import json, sys, urllib.error, urllib.request
class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None
method, url, body = sys.argv[1], sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else None
req = urllib.request.Request(url, method=method, data=body.encode() if body else None)
try:
    resp = urllib.request.build_opener(NoRedirect).open(req, timeout=10)
    status, headers, text = resp.status, dict(resp.headers), resp.read().decode()
except urllib.error.HTTPError as err:
    status, headers, text = err.code, dict(err.headers), err.read().decode()
print(json.dumps({"status": status, "headers": headers, "body": text}))
"""


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: str


class Sandbox:
    """A private network namespace (loopback only) and the processes started in it."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.procs: list[subprocess.Popen[bytes]] = []
        # holds the namespace open; brings its loopback up first
        holder = subprocess.Popen(["unshare", "--net", "--", "sh", "-c",
                                   "ip link set lo up && echo up && exec sleep 3600"],
                                  stdout=subprocess.PIPE, start_new_session=True)
        self.procs.append(holder)
        assert holder.stdout is not None and holder.stdout.readline() == b"up\n"
        self.netns = f"/proc/{holder.pid}/ns/net"

    def cmd(self, *args: str) -> list[str]:
        return ["nsenter", f"--net={self.netns}", "--", *args]

    def start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        """Start a long-running process in the namespace, its output in WORKDIR/NAME.log."""
        with (self.workdir / f"{name}.log").open("wb") as out:
            p = subprocess.Popen(self.cmd(*args), stdout=out, stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL, start_new_session=True)
        self.procs.append(p)
        return p

    def run(self, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.cmd(*args), capture_output=True, text=True, check=False,
                              timeout=timeout)

    def http(self, method: str, url: str, body: str | None = None) -> Response:
        res = self.run(sys.executable, "-c", HTTP_CLIENT, method, url,
                       *([body] if body is not None else []))
        if res.returncode != 0:
            raise ConnectionError(f"{method} {url}: {res.stderr.strip().splitlines()[-1:]}")
        return Response(**json.loads(res.stdout))

    def wait_for(self, what: str, check: Callable[[], Any], timeout: float = HANG_GUARD) -> None:
        def logs() -> str:
            return "".join(f"\n--- {p.name}\n{p.read_text()[-2000:]}"
                           for p in sorted(self.workdir.glob("*.log")))

        wait_until(what, check, timeout=timeout, poll=0.1, state=logs,
                   ignore=(ConnectionError, ValueError, KeyError))

    def close(self) -> None:
        for p in reversed(self.procs):
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in reversed(self.procs):
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
            if p.stdout is not None:
                p.stdout.close()


CONSUL = "http://127.0.0.1:8500"
LB_ADDRESS = LOOPBACK_NODE.address  # the load balancer's own address (lo has all of 127/8)
SERVICES = [
    # a healthy service with a second, dead instance: its requests must be retried
    {"Name": "web", "ID": "web-1", "Tags": ["lb"], "Port": 18081},
    {"Name": "web", "ID": "web-2", "Tags": ["lb", "canary"], "Port": 18082},
    # tagged, but its only instance fails its check
    {"Name": "sick", "ID": "sick-1", "Tags": ["lb"], "Port": 18083, "Status": "critical"},
    # healthy, not tagged: not routed
    {"Name": "quiet", "ID": "quiet-1", "Tags": ["internal"], "Port": 18084},
    # tagged, but a name nginx cannot take as it is: not routed
    {"Name": "bad_name", "ID": "bad-1", "Tags": ["lb"], "Port": 18085},
]


@dataclass
class LoadBalancer:
    sandbox: Sandbox
    hcl: Path
    generated: dict[str, str]
    conf_file: Path

    def consul_template_once(self) -> dict[str, str]:
        """The files consul-template renders now (its -dry output), by destination."""
        res = self.sandbox.run(binary("consul-template"), "-config", str(self.hcl), "-once",
                               "-dry")
        assert res.returncode == 0, res.stderr
        return {m[1]: m[2] for m in re.finditer(r"^> (\S+)\n(.*?)(?=^> |\Z)", res.stdout,
                                                re.S | re.M)}

    def get(self, path: str, port: int = 80) -> Response:
        return self.sandbox.http("GET", f"http://{LB_ADDRESS}:{port}{path}")

    def access_log(self, request: str) -> str:
        """nginx's access log line of the latest REQUEST ("GET /path HTTP/1.1"), once written
        (nginx logs a request after its answer went out)."""
        log = self.conf_file.parent.parent / "log" / "access.log"
        lines: list[str] = []

        def logged() -> bool:
            lines[:] = [line for line in log.read_text().splitlines() if f'"{request}"' in line]
            return bool(lines)

        self.sandbox.wait_for(f"the access log line of {request}", logged)
        return lines[-1]


@pytest.fixture(scope="module")
def lb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoadBalancer]:
    if os.geteuid() != 0:
        pytest.skip("the load balancer sandbox needs root (a network namespace, nginx as root)")
    nginx, consul = nginx_binary(), binary("consul")
    binary("consul-template")  # fail before starting anything if it is missing
    work = tmp_path_factory.mktemp("lb")
    sandbox = Sandbox(work)
    try:
        sandbox.start("consul", consul, "agent", "-dev", "-bind", "127.0.0.1", "-client",
                      "127.0.0.1", "-hcl", "disable_update_check = true", "-log-level", "warn")
        sandbox.wait_for("the Consul dev agent", lambda: "8300" in sandbox.http(
            "GET", f"{CONSUL}/v1/status/leader").body)
        for s in SERVICES:
            body = {"Name": s["Name"], "ID": s["ID"], "Tags": s["Tags"], "Address": "127.0.0.1",
                    "Port": s["Port"],
                    "Check": {"TTL": "10m", "Status": s.get("Status", "passing")}}
            assert sandbox.http("PUT", f"{CONSUL}/v1/agent/service/register",
                                json.dumps(body)).status == 200
        sandbox.wait_for("the services in the catalog", lambda: set(json.loads(sandbox.http(
            "GET", f"{CONSUL}/v1/catalog/services").body)) >= {s["Name"] for s in SERVICES})
        (work / "www").mkdir()
        (work / "www" / "hello").write_text("hello from web-1\n")
        sandbox.start("web-1", sys.executable, "-m", "http.server", "18081", "--bind",
                      "127.0.0.1", "--directory", str(work / "www"))
        # consul-template's real config, reading the templates from the repository
        hcl = work / "consul-template.hcl"
        hcl.write_text(consul_template_hcl().replace(CT_DIR, f"{LB}/"))
        balancer = LoadBalancer(sandbox, hcl, {}, work / "etc-nginx" / "nginx.conf")
        balancer.generated = balancer.consul_template_once()
        write_nginx_tree(work, nginx_conf(LOOPBACK_NODE, ["127.0.0.1:8500"]),
                         balancer.generated)
        sandbox.start("nginx", nginx, "-c", str(balancer.conf_file), "-g", "daemon off;")
        sandbox.wait_for("nginx", lambda: balancer.get("/health").status == 200)
        sandbox.wait_for("web-1", lambda: sandbox.http(
            "GET", "http://127.0.0.1:18081/hello").status == 200)
        yield balancer
    finally:
        sandbox.close()


def test_consul_template_renders_a_route_per_tagged_service(lb: LoadBalancer) -> None:
    assert set(lb.generated) == {UPSTREAMS, LOCATIONS}
    upstreams, locations = lb.generated[UPSTREAMS], lb.generated[LOCATIONS]
    assert re.search(r"upstream web \{\n"
                     r"    server 127\.0\.0\.1:18081 max_fails=3 fail_timeout=5s;\n"
                     r"    server 127\.0\.0\.1:18082 max_fails=3 fail_timeout=5s;\n"
                     r"    keepalive 16;\n\}", upstreams)
    assert "proxy_pass http://web/;" in locations
    # no healthy instance: no (empty) upstream, and a route that answers 503 at once
    assert "upstream sick" not in upstreams
    assert re.search(r'location /sick/ \{\n(    .*\n)*    return 503 "no healthy instance of '
                     r'sick\\n";\n\}', locations)
    for absent in ("quiet", "bad_name"):
        assert absent not in upstreams + locations


def test_nginx_accepts_the_rendered_routes(lb: LoadBalancer) -> None:
    """As consul-template's command runs it on the machine: next to the running nginx."""
    res = lb.sandbox.run(nginx_binary(), "-t", "-c", str(lb.conf_file))
    assert res.returncode == 0, res.stderr
    assert "test is successful" in res.stderr


def test_the_load_balancer_serves_its_routes(lb: LoadBalancer) -> None:
    index = lb.get("/")
    assert index.status == 200
    assert index.body.startswith("hashicluster load balancer frontend.lb.test (127.0.0.2)\n")
    assert (lb.get("/health").status, lb.get("/health").body) == (200, "ok\n")
    # the prefix is stripped; the dead instance's share is retried on the live one
    for _ in range(6):
        resp = lb.get("/web/hello")
        assert (resp.status, resp.body) == (200, "hello from web-1\n")
    redirect = lb.get("/web")
    assert (redirect.status, redirect.headers["Location"]) == (301, "/web/")
    sick = lb.get("/sick/anything")
    assert (sick.status, sick.body) == (503, "no healthy instance of sick\n")
    assert sick.headers["Content-Type"].startswith("text/plain")
    # nginx answered itself: no instance was tried (and so none waited for), where a routed
    # request went to one
    assert "upstream=- " in lb.access_log("GET /sick/anything HTTP/1.1")
    assert "upstream=127.0.0.1:" in lb.access_log("GET /web/hello HTTP/1.1")
    for path in ("/quiet/", "/bad_name/", "/nothing/"):
        assert lb.get(path).status == 404
    # the Consul UI and API through the load balancer
    assert lb.get("/v1/status/leader", port=8500).body.strip() == '"127.0.0.1:8300"'
    assert lb.get("/ui/", port=8500).status == 200


def test_a_service_that_recovers_is_routed_again(lb: LoadBalancer) -> None:
    sandbox = lb.sandbox
    assert sandbox.http("PUT", f"{CONSUL}/v1/agent/check/pass/service:sick-1").status == 200
    sandbox.wait_for("sick-1 passing", lambda: json.loads(sandbox.http(
        "GET", f"{CONSUL}/v1/health/service/sick?passing").body) != [])
    generated = lb.consul_template_once()
    assert "upstream sick {\n    server 127.0.0.1:18083" in generated[UPSTREAMS]
    assert "proxy_pass http://sick/;" in generated[LOCATIONS]
    assert "no healthy instance of sick" not in generated[LOCATIONS]
