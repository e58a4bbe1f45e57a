"""Command line: `python3 -m vagrantbox build|add|boot|host|machine|exec`.

  build | add | boot         the project's libvirt box (see vagrantbox/build.py)
  host deps | up | clean     Debian packages; a libvirt daemon in its own network namespace
  machine up | reload | down | status   one machine of the `vagrant` provider (Vagrantfile on stdin)
  exec -- CMD                run CMD where this host's libvirt networks are
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from vagrantbox import libvirt, machine, spec
from vagrantbox.boot import boot, extract_disk
from vagrantbox.build import build, recipe_file
from vagrantbox.errors import BoxError
from vagrantbox.host import default_out_dir, log


def parser() -> argparse.ArgumentParser:
    """Arguments of every verb."""
    top = argparse.ArgumentParser(prog="python3 -m vagrantbox", description=__doc__)
    verbs = top.add_subparsers(dest="verb", required=True)
    for verb, text in (
        ("build", "build the box (no-op when it exists, unless --rebuild)"),
        ("add", "build if needed, then `vagrant box add --force` it"),
        ("boot", "boot the built box under QEMU (TCG, no network) until a login prompt"),
    ):
        sub = verbs.add_parser(verb, help=text, description=text)
        sub.add_argument("--name", default=spec.DEFAULT_NAME, help="Vagrant box name (%(default)s)")
        sub.add_argument("--out", type=Path, default=None, help=f"output directory ({default_out_dir()})")
        sub.add_argument("--size", default=spec.DEFAULT_SIZE, help="disk size, whole GiB (%(default)s)")
        sub.add_argument("--mirror", default=spec.DEFAULT_MIRROR, help="Debian mirror (%(default)s)")
        sub.add_argument("--rebuild", action="store_true", help="build again even if the box exists")
        sub.add_argument("--pubkey", type=Path, default=None,
                         help="public key for the vagrant user (default: the vagrant package's insecure key)")
        if verb == "boot":
            sub.add_argument("--timeout", type=float, default=240.0, help="seconds (%(default)s)")
    host = verbs.add_parser("host", help="install what the Vagrant path needs (deps), start (up) or "
                            "clean up (clean) this host's libvirt daemon")
    host.add_argument("action", choices=("deps", "up", "clean"))
    mach = verbs.add_parser("machine", help="create (up), reconfigure (reload), destroy (down) one VM, "
                            "or say whether it runs (status: JSON)")
    mach.add_argument("action", choices=("up", "reload", "down", "status"))
    mach.add_argument("name", help="the machine's name in its Vagrantfile")
    mach.add_argument("--dir", type=Path, required=True, help="the machine's own Vagrant directory")
    mach.add_argument("--provider", default="libvirt", help="Vagrant provider (%(default)s)")
    run = verbs.add_parser("exec", help="run a command in the network namespace of this host's libvirtd")
    run.add_argument("command", nargs=argparse.REMAINDER)
    return top


def run_machine(args: argparse.Namespace) -> int:
    """`machine up|reload|down|status`: the Vagrantfile comes on stdin; up, reload and status
    print JSON."""
    if args.action == "status":
        print(json.dumps({"name": args.name, "state": machine.power_state(args.dir, args.name)}))
        return 0
    if args.action == "down":
        machine.down(args.dir, args.name)
        return 0
    vagrantfile = sys.stdin.read()
    if "Vagrant.configure" not in vagrantfile:
        raise BoxError("no Vagrantfile on stdin (`machine up|reload` reads the machine's Vagrantfile)")
    act = machine.up if args.action == "up" else machine.reload
    print(machine.to_json(act(args.dir, args.name, args.provider, vagrantfile)))
    return 0


def box_from(args: argparse.Namespace) -> spec.BoxSpec:
    """The BoxSpec the arguments describe."""
    try:
        return spec.BoxSpec(
            name=spec.validate_name(args.name), size_gb=spec.parse_size(args.size), mirror=args.mirror
        )
    except ValueError as error:
        raise BoxError(str(error)) from error


def add(box: spec.BoxSpec, box_file: Path) -> None:
    """`vagrant box add --force --name NAME FILE`, unless Vagrant has this very build already."""
    if shutil.which("vagrant") is None:
        raise BoxError(
            f"vagrant is not installed (apt-get install -y vagrant vagrant-libvirt); the box is {box_file}"
        )
    added = box_file.with_name(box_file.name + ".added")
    built = recipe_file(box_file).read_text() if recipe_file(box_file).exists() else ""
    listing = subprocess.run(["vagrant", "box", "list"], capture_output=True, text=True, check=False).stdout
    if built and added.exists() and added.read_text() == built and box.name in listing.split():
        log(f"Vagrant already has this build of {box.name}")
        return
    cmd = ["vagrant", "box", "add", "--force", "--name", box.name, str(box_file)]
    log(" ".join(cmd))
    if subprocess.run(cmd, check=False).returncode != 0:
        raise BoxError(f"`{' '.join(cmd)}` failed (see its output above)")
    added.write_text(built)


def run_boot(box_file: Path, timeout: float) -> int:
    """Boot BOX_FILE's disk; print the timing; 0 when a login prompt appeared."""
    with tempfile.TemporaryDirectory(prefix="vagrantbox-boot-") as tmp:
        result = boot(extract_disk(box_file, Path(tmp)), timeout)
    if result.login_prompt:
        print(f"login prompt after {result.seconds:.1f} s")
        return 0
    print(result.console[-3000:])
    print(f"no login prompt within {timeout:.0f} s", file=sys.stderr)
    return 1


def main(argv: list[str] | None = None) -> int:
    """Run one verb; errors print one clear message and exit 1."""
    args = parser().parse_args(argv)
    try:
        if args.verb == "host":
            {"deps": libvirt.host_deps, "up": libvirt.host_up, "clean": libvirt.host_clean}[args.action]()
            return 0
        if args.verb == "machine":
            return run_machine(args)
        if args.verb == "exec":
            command = args.command[1:] if args.command[:1] == ["--"] else args.command
            if not command:
                raise BoxError("nothing to run: python3 -m vagrantbox exec -- CMD [ARGS]")
            return libvirt.exec_in_netns(command)
        box = box_from(args)
        box_file = build(box, args.out or default_out_dir(), rebuild=args.rebuild, pubkey_file=args.pubkey)
        if args.verb == "add":
            add(box, box_file)
        elif args.verb == "boot":
            return run_boot(box_file, args.timeout)
        else:
            print(box_file)
        return 0
    except BoxError as error:
        print(f"vagrantbox: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
