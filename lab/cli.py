"""Command line: `python3 -m lab <verb>` (run as root)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable

from lab import base, clean, deps, forward, hostkind, machines, netns, sshkeys
from lab.errors import LabError
from lab.names import LAB_NETWORK, SWITCH_NETNS, check_name
from lab.paths import DEFAULT_SUITE, Paths

DESCRIPTION = """\
systemd-nspawn "machines" on this host, for the `nspawn` machine provider.

Each machine boots systemd from a copy-on-write overlay of one cached debootstrap base
and has its own network namespace (hcl-NAME) whose eth0 is plugged into the lab switch:
the bridge br-lab (10.210.0.1/16) in the namespace hcl-lab. Nothing is routed out of the
lab; run what talks to machines inside hcl-lab (`lab exec -- CMD`), or open a loopback
forward from the host (`lab forward`).
"""
EPILOG = """\
examples:
  python3 -m lab deps
  python3 -m lab up lab-server --address 10.210.1.10      # prints JSON for the caller
  python3 -m lab ssh lab-server systemctl is-system-running
  python3 -m lab exec -- pulumi up --stack lab
  python3 -m lab forward 8500 10.210.1.10:8500          # http://127.0.0.1:8500 on the host
  python3 -m lab down lab-server
  python3 -m lab clean-all

environment: HASHICLUSTER_CACHE (default /var/cache/hashicluster; the base is in
<cache>/lab/base-<suite>-<hash of its package list>), HASHICLUSTER_LAB_STATE (default
/var/lib/hashicluster/lab), HASHICLUSTER_LAB_RUNTIME (default /run/hashicluster/lab),
HASHICLUSTER_LAB_UP_TIMEOUT (the default of `up --timeout`, for slow hosts where `up` is run
by the Pulumi program: HASHICLUSTER_LAB_UP_TIMEOUT=600 ./run up).
"""
UP_TIMEOUT_ENV = "HASHICLUSTER_LAB_UP_TIMEOUT"
FORWARD_HELP = """\
Loopback forwards from the host's network namespace into the lab.

  lab forward LOCAL_PORT ADDRESS:PORT [--owner STACK]
                                        listen on 127.0.0.1:LOCAL_PORT (host namespace) and
                                        relay each connection to ADDRESS:PORT in the lab
  lab forward --list [--json]           the running forwards (and whose they are)
  lab forward --stop [LOCAL_PORT] [--owner STACK]
                                        stop one forward, or all of them (all of STACK's)

Each forward is a small background process: it makes its listening socket in the host's
network namespace, then moves into hcl-lab, so the connections it opens to ADDRESS:PORT
start inside the lab. Forwards are recorded in the lab's runtime directory (default
/run/hashicluster/lab/forwards); `lab clean-all` stops them too.
"""


def _sysctl(text: str) -> tuple[str, str]:
    """Parse KEY=VALUE for --sysctl."""
    key, sep, value = text.partition("=")
    if not sep or not key.startswith("net."):
        raise argparse.ArgumentTypeError(f"{text!r} is not net.KEY=VALUE")
    return key, value


def _seconds(text: str) -> float:
    """A positive number of seconds."""
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number of seconds "
                                         "(check HASHICLUSTER_LAB_UP_TIMEOUT too)")
    return value


def _port(text: str) -> int:
    """A TCP port number."""
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a TCP port (1-65535)")
    return int(text)


def parser() -> argparse.ArgumentParser:
    """The argument parser with every verb."""
    p = argparse.ArgumentParser(prog="python3 -m lab", description=DESCRIPTION, epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    verbs = p.add_subparsers(dest="verb", required=True, metavar="VERB")

    verbs.add_parser("deps", help="apt-get install the host packages the lab needs")

    b = verbs.add_parser("base", help="build the cached base root filesystem (if missing); "
                         "prints its path")
    b.add_argument("--suite", default=DEFAULT_SUITE, help="Debian suite (default: %(default)s)")
    b.add_argument("--mirror", help="Debian mirror URL (default: the one the host's apt uses)")
    b.add_argument("--rebuild", action="store_true",
                   help="build it again even if it exists (refused while machines exist)")

    u = verbs.add_parser("up", help="create or boot a machine and wait until it is ready; "
                         "prints a JSON object with how to reach it")
    u.add_argument("name", help="machine name: 1-40 of [a-z0-9-]")
    u.add_argument("--address", required=True,
                   help=f"its IPv4 address, inside {LAB_NETWORK} but not 10.210.0.0/24")
    u.add_argument("--prefix-len", type=int, default=LAB_NETWORK.prefixlen,
                   help="prefix length of eth0's subnet (default: %(default)s)")
    u.add_argument("--hostname", help="host name (default: the machine name)")
    u.add_argument("--sysctl", action="append", type=_sysctl, default=[], metavar="NET.KEY=VALUE",
                   help="a network sysctl of the machine, set from outside (repeatable)")
    u.add_argument("--containers", action="store_true",
                   help="let it run containers (Docker, Nomad's exec driver): CAP_NET_ADMIN, the "
                   "keyring system calls, /var/lib/docker on the host's filesystem, IP forwarding "
                   "and writable cgroup controllers (given or not to a running machine: applied at its next "
                   "reboot, which /run/reboot-required inside it asks for)")
    u.add_argument("--suite", default=DEFAULT_SUITE, help="base suite (default: %(default)s)")
    u.add_argument("--mirror", help="Debian mirror, if the base must be built")
    u.add_argument("--timeout", type=_seconds, default=os.environ.get(UP_TIMEOUT_ENV) or "120",
                   help=f"seconds to wait until systemd is running (default: %(default)s, or "
                   f"${UP_TIMEOUT_ENV})")

    d = verbs.add_parser("down", help="destroy a machine (fine if it does not exist)")
    d.add_argument("name")
    d.add_argument("--timeout", type=float, default=machines.DOWN_TIMEOUT,
                   help="seconds to wait for a clean power-off before SIGKILL (default: "
                   "%(default)s: the machine and its disk go, nothing in it needs to shut down)")

    st = verbs.add_parser("stop", help="power a machine off, keeping its disk (`up` boots it again)")
    st.add_argument("name")
    st.add_argument("--timeout", type=float, default=machines.STOP_TIMEOUT,
                    help="seconds to wait for a clean power-off before SIGKILL "
                    "(default: %(default)s)")

    s = verbs.add_parser("status", help="the host kind, then every machine: name, address, "
                         "running, pid")
    s.add_argument("--json", action="store_true", help="a JSON list instead of a table")

    hk = verbs.add_parser("host", help="what kind of host this is (systemd as PID 1? cgroup v1 or "
                          "v2?) and how the lab runs machines on it")
    hk.add_argument("--json", action="store_true", help="a JSON object instead of a sentence")

    e = verbs.add_parser("exec", help="run a command inside the lab network namespace",
                         description="Run CMD inside hcl-lab (creating the lab network if "
                         "needed), with this process's stdin/stdout and exit code.")
    e.add_argument("command", nargs=argparse.REMAINDER, metavar="[--] CMD ...")

    sh = verbs.add_parser("ssh", help="ssh into a machine as root with the lab key")
    sh.add_argument("name")
    sh.add_argument("command", nargs=argparse.REMAINDER, metavar="CMD ...")

    f = verbs.add_parser("forward", help="loopback forwards from the host into the lab",
                         description=FORWARD_HELP,
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    f.add_argument("local_port", nargs="?", type=_port, metavar="LOCAL_PORT")
    f.add_argument("target", nargs="?", metavar="ADDRESS:PORT")
    group = f.add_mutually_exclusive_group()
    group.add_argument("--list", action="store_true", help="list the running forwards")
    group.add_argument("--stop", action="store_true",
                       help="stop the forward on LOCAL_PORT, or every forward (of --owner)")
    f.add_argument("--owner", metavar="NAME",
                   help="whose forward it is (a stack's name): --stop stops only its own")
    f.add_argument("--json", action="store_true", help="--list as a JSON list of records")

    ln = verbs.add_parser("link", help="the host's own link to the lab switch: `up` routes the lab "
                          "network from the host (browsers, curl), `down` removes it, `status` shows it")
    ln.add_argument("action", choices=("up", "down", "status"))

    c = verbs.add_parser("clean-all", help="remove every trace of the lab (keeps the base and "
                         "the SSH key)")
    c.add_argument("--purge", action="store_true",
                   help="remove the cached base and the SSH key too")

    # Internal: the body of a forwarder process (started by `forward`).
    fw = verbs.add_parser("_forwarder")
    fw.add_argument("local_port", type=int)
    fw.add_argument("target")
    fw.add_argument("--owner", default="")
    return p


def _cmd_base(paths: Paths, args: argparse.Namespace) -> int:
    suite = base.check_suite(args.suite)
    deps.require_root()
    current = base.path(paths, suite)
    with machines.global_lock(paths):
        if args.rebuild and current.exists():
            users = [n for n in machines.names(paths)
                     if (r := machines.load(paths, n)) is None or r.base == str(current)]
            if users:
                raise LabError(f"machines {', '.join(users)} use the base", "`python3 -m lab "
                               "clean-all` (or `down` them) before --rebuild")
            clean.remove_base(paths, suite)
        print(base.ensure(paths, suite, args.mirror))
    return 0


def _cmd_up(paths: Paths, args: argparse.Namespace) -> int:
    info = machines.up(paths, args.name, args.address, args.prefix_len, args.hostname,
                       base.check_suite(args.suite), dict(args.sysctl), args.timeout, args.mirror,
                       containers=args.containers)
    print(json.dumps(info))
    return 0


def _cmd_down(paths: Paths, args: argparse.Namespace) -> int:
    machines.down(paths, args.name, args.timeout)
    return 0


def _cmd_stop(paths: Paths, args: argparse.Namespace) -> int:
    machines.power_off(paths, args.name, args.timeout)
    return 0


def _cmd_status(paths: Paths, args: argparse.Namespace) -> int:
    rows = machines.status(paths)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"host: {hostkind.current().describe()}")
    print(f"{'NAME':<28} {'ADDRESS':<15} {'STATE':<8} {'PID':>7} {'MEMORY':>9}")
    for r in rows:
        mem = f"{r['memory_bytes'] / 2**20:.0f} MiB" if r["memory_bytes"] else "-"
        print(f"{r['name']:<28} {r['address'] or '?':<15} "
              f"{'running' if r['running'] else 'stopped':<8} {r['pid'] or '-':>7} {mem:>9}")
    return 0


def _cmd_host(paths: Paths, args: argparse.Namespace) -> int:
    kind = hostkind.current()
    print(json.dumps(kind.as_dict()) if args.json else kind.describe())
    return 0


def _strip_dashes(command: list[str]) -> list[str]:
    """argparse.REMAINDER keeps a leading `--`."""
    return command[1:] if command[:1] == ["--"] else command


def _cmd_exec(paths: Paths, args: argparse.Namespace) -> int:
    command = _strip_dashes(args.command)
    if not command:
        raise LabError("no command to run", "python3 -m lab exec -- CMD ARGS...")
    deps.require_root()
    deps.require(*deps.NETWORK_PROGRAMS)
    with machines.global_lock(paths):
        netns.ensure_switch()
    netns.enter(SWITCH_NETNS)
    return _exec(command)


def _exec(command: list[str]) -> int:
    """Replace this process by COMMAND (so exit code and stdio pass straight through)."""
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execvp(command[0], command)
    except OSError as err:
        raise LabError(f"cannot run {command[0]}: {err.strerror}",
                       "check the command name and PATH") from None


def _cmd_ssh(paths: Paths, args: argparse.Namespace) -> int:
    name = check_name(args.name)
    rec = machines.load(paths, name)
    if rec is None:
        raise LabError(f"no lab machine named {name!r}", "`python3 -m lab status` lists them")
    deps.require_root()
    command = _strip_dashes(args.command)
    ssh = sshkeys.ssh_args(paths, rec.address, batch=bool(command) or not sys.stdin.isatty())
    netns.enter(SWITCH_NETNS)
    return _exec([*ssh, *command])


def _cmd_forward(paths: Paths, args: argparse.Namespace) -> int:
    if args.list:
        return forward.list_forwards(paths, args.json)
    if args.stop:
        return forward.stop(paths, args.local_port, args.owner)
    if args.local_port is None or args.target is None:
        raise LabError("forward needs LOCAL_PORT and ADDRESS:PORT (or --list / --stop)",
                       "python3 -m lab forward 8500 10.210.1.10:8500")
    return forward.start(paths, args.local_port, args.target, args.owner or "")


def _cmd_forwarder(paths: Paths, args: argparse.Namespace) -> int:
    return forward.serve(paths, args.local_port, args.target, args.owner)


def _cmd_link(paths: Paths, args: argparse.Namespace) -> int:
    deps.require_root()
    if args.action == "up":
        print(f"the host routes {netns.host_link_up()}")
    elif args.action == "down":
        print("the host's link to the lab removed" if netns.host_link_down() else "no link to remove")
    else:
        route = netns.host_link_route()
        print(f"the host routes {route}" if route else "no link: the lab is reachable from `python3 -m lab "
              "exec` and the loopback forwards only")
    return 0


def _cmd_clean_all(paths: Paths, args: argparse.Namespace) -> int:
    clean.clean_all(paths, purge=args.purge)
    return 0


def _cmd_deps(paths: Paths, args: argparse.Namespace) -> int:
    return deps.install()


COMMANDS: dict[str, Callable[[Paths, argparse.Namespace], int]] = {
    "deps": _cmd_deps, "base": _cmd_base, "up": _cmd_up, "down": _cmd_down, "stop": _cmd_stop,
    "status": _cmd_status, "host": _cmd_host, "exec": _cmd_exec, "ssh": _cmd_ssh, "forward": _cmd_forward,
    "_forwarder": _cmd_forwarder, "clean-all": _cmd_clean_all, "link": _cmd_link,
}


def main(argv: list[str] | None = None) -> int:
    """Run one verb; print LabErrors as `lab: error: ...` and exit 1."""
    args = parser().parse_args(argv)
    try:
        return COMMANDS[args.verb](Paths.from_env(), args)
    except LabError as err:
        print(f"lab: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("lab: interrupted", file=sys.stderr)
        return 130
