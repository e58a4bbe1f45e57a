"""Pure: the shell scripts that install and start an agent, and the gates that wait for health.

Every script checks before it acts (a second run changes nothing), refuses a binary whose
sha256 is not the pinned one before touching the installed copy, and restarts the
service only when something it installed changed.

Consul and Nomad are not restarted by the step that changes them on a running cluster: it
stages the change (new binary and files in place, the running agent untouched) and marks
the agent for a restart in PENDING; the machine's roll step (`roll_script`) restarts it when
its turn comes, one machine at a time, and waits until it is healthy again.
"""

from __future__ import annotations

import base64
import shlex
from collections.abc import Sequence
from dataclasses import dataclass

from cluster.config import DEFAULT_MIRROR, BinaryPin, InstallSpec
from cluster.render import API_ENV, File

STAGING = "/var/lib/hashicluster/staging"
PENDING = "/var/lib/hashicluster/restart"  # one file per agent awaiting its roll
# Scripts that call the Consul or Nomad API first read how (the URLs, the CA, `api` for curl).
USE_API = f"[ ! -r {API_ENV} ] || . {API_ENV}"
q = shlex.quote


def staged_path(pin: BinaryPin) -> str:
    """Where an uploaded binary waits on the machine until it is verified and installed."""
    return f"{STAGING}/{pin.product}-{pin.version}"


def release_url(install: InstallSpec, pin: BinaryPin) -> str:
    """The vendor's download. HashiCorp products come from the configured mirror, which has
    the vendor's layout: MIRROR/PRODUCT/VERSION/PRODUCT_VERSION_linux_amd64.zip."""
    url = pin.url.format(version=pin.version)
    if url.startswith(DEFAULT_MIRROR + "/"):
        url = install.mirror + url[len(DEFAULT_MIRROR):]
    return url


def _converge_binary(install: InstallSpec, pin: BinaryPin, binary: str) -> list[str]:
    """Lines that put the pinned binary at /usr/local/bin/PRODUCT, or stop with nothing installed.

    Checks first: with the pinned binary already in place (upload: its sha256; release: the
    zip's sha256 recorded when it was installed) nothing is fetched or written.
    """
    what = f"{pin.product} {pin.version}"
    target = f"/usr/local/bin/{binary}"
    put = [f'  install -m 0755 "$new" {target}.new && mv {target}.new {target}; changed=1',
           '  rm -f "$new"']
    if install.source == "upload":
        return [
            f'if [ "$(sha256sum {target} 2>/dev/null | cut -d" " -f1)" != {q(pin.sha256)} ]; then',
            f"  new={q(staged_path(pin))}",
            f'  [ -f "$new" ] || fail "{what}: $new was not uploaded"',
            '  got=$(sha256sum "$new" | cut -d" " -f1)',
            f'  [ "$got" = {q(pin.sha256)} ] || fail "{what}: sha256 of the uploaded binary is $got, '
            f'expected {pin.sha256}; nothing installed"',
            *put,
            "fi",
        ]
    url = release_url(install, pin)
    marker = f"{STAGING}/{pin.product}.installed-zip-sha256"
    return [
        f'if [ "$(cat {marker} 2>/dev/null)" != {q(pin.sha256)} ] || [ ! -x {target} ]; then',
        f"  zip={q(STAGING)}/{pin.product}-{pin.version}.download",
        f'  curl -fsSL --retry 3 -o "$zip" {q(url)} || fail "{what}: download of {url} failed"',
        '  got=$(sha256sum "$zip" | cut -d" " -f1)',
        f'  [ "$got" = {q(pin.sha256)} ] || {{ rm -f "$zip"; fail "{what}: sha256 of {url} is $got, '
        f'expected {pin.sha256}; nothing installed"; }}',
        f"  new={q(STAGING)}/{pin.product}-{pin.version}.bin",
        (f'  unzip -p "$zip" {q(binary)} > "$new" && rm -f "$zip"' if pin.archive == "zip"
         else '  mv "$zip" "$new"'),
        *put,
        f"  echo {q(pin.sha256)} > {marker}",
        "fi",
    ]


def _put_file(f: File, marker: str) -> list[str]:
    """Write a file only if its content, mode or owner differ; note the change."""
    return [
        f"tmp=$(mktemp) && cat > \"$tmp\" <<'{marker}'",
        f.content.rstrip("\n"),
        marker,
        f'if ! cmp -s "$tmp" {q(f.path)}; then',
        f"  install -D -m {f.mode} -o {f.owner} -g {f.owner} \"$tmp\" {q(f.path)}; changed=1",
        "else",
        f"  chmod {f.mode} {q(f.path)}; chown {f.owner}:{f.owner} {q(f.path)}",
        "fi",
        'rm -f "$tmp"',
    ]


@dataclass(frozen=True)
class Agent:
    """One service to install on one node: consul, nomad, consul-template, cadvisor, nginx."""

    product: str  # also the systemd unit's name
    pin: BinaryPin | None  # the binary to put in /usr/local/bin (None: from packages)
    files: list[File]
    user: str  # the service user ("root" for Nomad clients)
    data_dir: str | None
    ready: str  # shell condition that is true once the local service works
    ready_state: str  # shell command that prints the state shown when it never gets ready
    timeout: int = 120
    packages: tuple[str, ...] = ()  # Debian packages it needs
    check: str = ""  # a config test that must pass before a (re)start, e.g. `nginx -t`
    secrets: tuple[str, ...] = ()  # files that come on stdin (see secrets_bundle), never in the text
    retired: tuple[str, ...] = ()  # secret files it may have had and must not have now


def secrets_bundle(files: Sequence[File]) -> str:
    """The stdin of an install step: one line per secret file, `PATH MODE OWNER BASE64`."""
    return "".join(f"{f.path} {f.mode} {f.owner} {base64.b64encode(f.content.encode()).decode()}\n"
                   for f in files)


def _read_secrets(agent: Agent) -> list[str]:
    """Lines that write the secret files of the stdin bundle (checking that each expected one
    came), and remove the retired ones. The values pass through the shell's own `read` and
    `printf` (builtins: no process has them in its arguments) into 0600 temporary files."""
    lines = [
        "while read -r path mode owner data; do",
        '  tmp=$(mktemp) && printf %s "$data" | base64 -d > "$tmp"',
        '  if ! cmp -s "$tmp" "$path"; then',
        '    install -D -m "$mode" -o "$owner" -g "$owner" "$tmp" "$path"; changed=1',
        "  else",
        '    chmod "$mode" "$path"; chown "$owner:$owner" "$path"',
        "  fi",
        '  rm -f "$tmp"',
        "done",
    ]
    for path in agent.secrets:
        lines.append(f'[ -s {q(path)} ] || fail "{agent.product}: the secret file {path} '
                     'did not arrive on stdin"')
    for path in agent.retired:
        lines.append(f"if [ -e {q(path)} ]; then rm -f {q(path)}; changed=1; fi")
    return lines


def install_script(agent: Agent, install: InstallSpec, restart: bool = True) -> str:
    """Install (or converge) one agent: binary, user, data dir, config, unit, running service.

    With `restart=False` a change does not restart a running agent: it is staged and marked
    pending for the roll step. A stopped agent is started either way.
    """
    product = agent.product
    lines = [
        "set -eu",
        f"# {product} {agent.pin.version} sha256 {agent.pin.sha256}" if agent.pin else f"# {product}",
        'fail() { echo "error: $*" >&2; exit 1; }',
        "changed=0",
        f"mkdir -p {STAGING}",
    ]
    for package in agent.packages:
        lines += [f"dpkg -s {package} >/dev/null 2>&1 || "
                  f"DEBIAN_FRONTEND=noninteractive apt-get install -y -q {package} >/dev/null "
                  f'|| fail "{product}: cannot install the Debian package {package}"']
    if agent.pin is not None:
        lines += _converge_binary(install, agent.pin, product)
    if agent.user != "root":
        lines += [f"id -u {agent.user} >/dev/null 2>&1 || "
                  f"useradd --system --home-dir {agent.data_dir} --shell /bin/false {agent.user}"]
    if agent.data_dir:
        lines += [f"install -d -m 0750 -o {agent.user} -g {agent.user} {agent.data_dir}",
                  f"install -d -m 0750 -o {agent.user} -g {agent.user} /etc/{product}.d"]
    for f in agent.files:
        lines += _put_file(f, "HASHICLUSTER_EOF")
    if agent.secrets or agent.retired:
        lines += _read_secrets(agent)
    if agent.check:
        lines += [f'{agent.check} || fail "{product}: the new configuration does not pass `{agent.check}`"']
    lines += ['if [ "$changed" = 1 ]; then systemctl daemon-reload; fi',
              f"systemctl enable --quiet {product}"]
    if restart:
        lines += [f'if [ "$changed" = 1 ]; then systemctl restart {product}; '
                  f'else systemctl start {product}; fi']
    else:
        lines += [
            'if [ "$changed" = 1 ] && systemctl is-active --quiet ' + product + '; then',
            f"  mkdir -p {PENDING} && touch {PENDING}/{product}",
            f'  echo "{product}: changed; staged for a rolling restart"',
            "fi",
            f"systemctl start {product}",
        ]
    lines += [USE_API, *wait_for(f"the local {product} agent", agent.ready, agent.ready_state, agent.timeout)]
    return "\n".join(lines) + "\n"


def uninstall_script(product: str, before: Sequence[str] = ()) -> str:
    """Stop the agent and remove what install_script put in place (data included).

    BEFORE: lines that take the agent out of the cluster first (a drain, a leave).
    """
    return "\n".join([
        "set -u",
        *before,
        f"systemctl disable --now --quiet {product} 2>/dev/null || true",
        # What the agent mounted under its data dir (Nomad: each allocation's secrets/ and
        # private/) goes before the dir itself.
        f"awk '$2 ~ \"^/opt/{product}/\" {{print $2}}' /proc/mounts | sort -r | xargs -r umount -l",
        f"rm -rf /etc/{product}.d /opt/{product} /usr/local/bin/{product} "
        # Only this product's staging files: versions start with a digit, so `consul-[0-9]*`
        # leaves consul-template's alone.
        f"/etc/systemd/system/{product}.service {STAGING}/{product}-[0-9]* "
        f"{STAGING}/{product}.installed-zip-sha256 {PENDING}/{product}",
        "systemctl daemon-reload",
    ]) + "\n"


@dataclass(frozen=True)
class Restart:
    """One agent as a roll step restarts it: when it counts as healthy again, and (servers)
    when its machine leads the product's servers."""

    product: str
    healthy: str  # shell condition: the agent, and the cluster around it, work again
    state: str  # shell command that prints the state shown when it never gets healthy
    leads: str = ""  # shell condition: this machine is the product's leader (servers only)
    timeout: int = 180


def roll_script(machine: str, restarts: Sequence[Restart], defer_leader: bool = False,
                prelude: Sequence[str] = ()) -> str:
    """Restart the agents of one machine whose change is pending, one after the other, each
    waiting until healthy before the next; nothing pending, nothing restarted.

    With DEFER_LEADER, an agent whose machine leads its servers stays pending: the second,
    leader-last pass restarts it. Every restart is logged with UTC timestamps on stdout.
    PRELUDE: shell lines the conditions need (functions, a count taken before any restart).
    """
    lines = ["set -eu", "stamp() { date -u +%Y-%m-%dT%H:%M:%S.%3NZ; }", *prelude, "restarted=0"]
    for r in restarts:
        marker = f"{PENDING}/{r.product}"
        restart = [
            f'echo "$(stamp) {machine}: restarting {r.product}"',
            f"systemctl restart {r.product}",
            *wait_for(f"{r.product} on {machine} after its restart", r.healthy, r.state, r.timeout),
            f"rm -f {marker}",
            f'echo "$(stamp) {machine}: {r.product} healthy"',
            "restarted=1",
        ]
        if defer_leader and r.leads:
            restart = [f"if {r.leads}; then",
                       f'echo "$(stamp) {machine}: leads the {r.product} servers; '
                       'restarted in the leader pass"',
                       "else", *restart, "fi"]
        lines += [f"if [ -e {marker} ]; then", *restart, "fi"]
    lines += [f'[ "$restarted" = 1 ] || echo "{machine}: no restart"']
    return "\n".join(lines) + "\n"


def wait_for(what: str, condition: str, state: str, timeout: int) -> list[str]:
    """Poll `condition` until it holds; after `timeout` seconds, fail with the last state seen."""
    return [
        f"deadline=$(( $(date +%s) + {timeout} ))",
        f"until {condition}; do",
        '  if [ "$(date +%s)" -ge "$deadline" ]; then',
        f'    echo "error: {what} not ready after {timeout}s; last state seen:" >&2',
        f"    ({state}) >&2 2>&1 || true",
        "    exit 1",
        "  fi",
        "  sleep 0.2",
        "done",
        f'echo "{what}: ready"',
    ]


def gate_script(what: str, condition: str, state: str, timeout: int = 180) -> str:
    """A whole-cluster gate, run on a server: done means working."""
    return "\n".join(["set -eu", USE_API, *wait_for(what, condition, state, timeout)]) + "\n"
