"""Command line: ``python3 -m toolchain {ensure,env,path,status,plugins}``."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from toolchain.ensure import SOURCE_ENV, SOURCES, ensure, format_seconds, resolve_source
from toolchain.errors import ToolchainError
from toolchain.paths import CACHE_ENV, Layout
from toolchain.pins import ARCHITECTURES, DEFAULT_ARCH, linux_platform, load_pins
from toolchain.plugins import link_plugins
from toolchain.shellenv import binary_path, env_lines, status_lines


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for all sub-commands."""
    parser = argparse.ArgumentParser(
        prog="python3 -m toolchain",
        description=(
            "Provide the Pulumi CLI, its plugins and the cluster binaries, cached under "
            f"${CACHE_ENV}/toolchain (default /var/cache/hashicluster/toolchain)."
        ),
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p_ensure = sub.add_parser(
        "ensure", help="install missing tools (the default version of every pinned tool by default)"
    )
    p_ensure.add_argument(
        "tools",
        nargs="*",
        metavar="TOOL[@VERSION]",
        help="tools to ensure: TOOL is its default version, TOOL@VERSION one of its extra versions",
    )
    p_ensure.add_argument(
        "--source",
        choices=SOURCES,
        help=f"release: official artefact, sha256-verified (default); build: from source with "
        f"go through the module proxy. Default from ${SOURCE_ENV}.",
    )
    p_ensure.add_argument(
        "--jobs", type=int, default=1, metavar="N", help="tools installed in parallel (default 1)"
    )
    add_arch_argument(p_ensure, "the architecture to install for: another than amd64 is cached apart "
                      "and only for the tools the machines run (default amd64)")
    sub.add_parser("env", help='print shell export lines (eval "$(python3 -m toolchain env)")')
    p_path = sub.add_parser("path", help="print the path of a tool's main binary")
    p_path.add_argument("tool", metavar="TOOL[@VERSION]")
    add_arch_argument(p_path, "the architecture of the binary (default amd64)")
    sub.add_parser("status", help="show every pinned version of every tool and what is cached")
    p_plugins = sub.add_parser("plugins", help="link the toolchain's Pulumi plugins into a Pulumi home "
                               "(done by `ensure`; for another PULUMI_HOME)")
    p_plugins.add_argument("--home", type=Path, default=None,
                           help="the Pulumi home (default: $PULUMI_HOME, else the toolchain's)")
    return parser


def add_arch_argument(parser: argparse.ArgumentParser, help_text: str) -> None:
    """``--arch`` with the architectures the toolchain knows."""
    parser.add_argument("--arch", choices=ARCHITECTURES, default=DEFAULT_ARCH, help=help_text)


def cmd_ensure(args: argparse.Namespace, layout: Layout) -> int:
    """Ensure tools; exit 1 if any failed."""
    if args.jobs < 1:
        raise ToolchainError("--jobs must be at least 1")
    pins = load_pins()
    source = resolve_source(args.source)
    start = time.monotonic()
    outcomes = ensure(layout, pins, args.tools, source, jobs=args.jobs, stream=sys.stderr, arch=args.arch)
    failed = [o for o in outcomes if o.action == "failed"]
    elapsed = format_seconds(time.monotonic() - start)
    if failed:
        arch = "" if args.arch == DEFAULT_ARCH else f" ({linux_platform(args.arch)})"
        print(
            f"toolchain: {len(failed)} of {len(outcomes)} tools failed{arch} ({elapsed}): "
            + ", ".join(f"{o.tool} {o.version}" for o in failed),
            file=sys.stderr,
        )
        return 1
    if args.arch == DEFAULT_ARCH:  # the Pulumi plugins are the controller's, amd64 only
        link_plugins(layout, pins)
    print(f"toolchain: {len(outcomes)} tools ready ({elapsed})", file=sys.stderr)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    args = build_parser().parse_args(argv)
    layout = Layout.from_env()
    try:
        if args.command == "ensure":
            return cmd_ensure(args, layout)
        pins = load_pins()
        if args.command == "env":
            print("\n".join(env_lines(layout, pins)))
        elif args.command == "path":
            print(binary_path(layout, pins, args.tool, args.arch))
        elif args.command == "status":
            print("\n".join(status_lines(layout, pins)))
        elif args.command == "plugins":
            home = args.home or (Path(os.environ["PULUMI_HOME"]) if os.environ.get("PULUMI_HOME") else None)
            for link in link_plugins(layout, pins, home):
                print(link)
    except ToolchainError as exc:
        print(f"toolchain: error: {exc}", file=sys.stderr)
        return 1
    except PermissionError as exc:
        print(
            f"toolchain: error: {exc}; run as root or set ${CACHE_ENV} to a writable dir",
            file=sys.stderr,
        )
        return 1
    return 0
