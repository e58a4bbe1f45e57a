"""The command line of `python3 -m bench`.

    run       the benchmark (`./run bench` is the entry point: it provides the virtualenv,
              the toolchain and the lab's base image first)
    wrk       HTTP load with wrk            } run inside the lab network by `run`:
    probe     wait until a URL answers 200  } python3 -m lab exec -- python3 -m bench VERB ...
    failover  stop one fib allocation and   }
              watch the load balancer       }

Exit status: 0; 1 when a measurement or a step failed (the message names it and the fix);
2 for a bad command line; 130 after Ctrl-C (the cluster is destroyed first).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

RUN_HELP = """\
Measures what users of the cluster feel, on a lab cluster of its own (stack `bench`, lab
network 10.210.4.0/24, a copy of this working tree with its own file backend), and prints
a table: each figure is the median of --runs runs, with the smallest and largest value.

  1. cold `pulumi up` from no machines to a healthy cluster, then /fib/10 through the
     load balancer (a `pulumi destroy` between runs);
  2. per-step durations from the engine's event log, the critical path through the
     resources' dependencies and wall time / critical path;
  3. no-op `pulumi up` (plain and `--refresh`, the drift check) and `pulumi preview`;
  4. a one-client change (`pulumi config set --path
     hashicluster:clientSettings.client2.meta.bench VALUE`): preview, then up;
  5. requests/s and p50/p99 latency of fib with wrk (inside the lab network, the same threads
     and connections for each target): through the load balancer, straight to all fib
     instances at once (from Consul's catalog; wrk's threads spread over them) and to each;
     the LB's overhead as the requests/s it loses against all instances straight;
  6. failover: one fib allocation stopped, the load balancer watched until it no longer
     answers from it and no request fails;
  7. two-tier load balancing (`hashicluster:loadBalancing two-tier`): the `pulumi up` that
     switches to it, then the same load through the front balancer, and its requests/s and
     p50 against the one-tier figures of 5.

With --clients 3,10,25 it measures instead what the cluster costs by its size (bench/scale.py):
for each client count a cluster of its own, from nothing (cold up, no-op preview and up, one
client added and removed, destroy, the peak memory of the controller and of the host), each
figure measured once and given as its ratio to the first size's; --markdown OUT draws them
beside OUT (OUT-scaling.svg).

Everything is destroyed at the end, also after an error or Ctrl-C. Needs root.
The entry point is `./run bench ARGS`: it provides the virtualenv, the toolchain and the
lab's base image first (`./run setup`), then runs `python3 -m bench run ARGS`.
"""


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{value} is not a positive number")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} seconds is negative")
    return value


def _sizes(text: str) -> tuple[int, ...]:
    from bench.scale import parse_sizes

    try:
        return parse_sizes(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python3 -m bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    verbs = p.add_subparsers(dest="verb", metavar="VERB", required=True)
    r = verbs.add_parser("run", help="the benchmark (entry point: ./run bench)", description=RUN_HELP,
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    r.add_argument("--runs", type=_positive_int, help="runs of each measurement (default 3; 1 with --quick)")
    r.add_argument("--quick", action="store_true",
                   help="for development: 1 run, 3 s of load per target")
    r.add_argument("--json", type=Path, metavar="OUT", help="also write the results as JSON to OUT")
    r.add_argument("--markdown", type=Path, metavar="OUT", help="also write the report as Markdown to OUT")
    r.add_argument("--load-seconds", type=_seconds, metavar="S",
                   help="seconds of load per target and run (default 10; 3 with --quick)")
    r.add_argument("--concurrency", type=_positive_int, default=8, metavar="N",
                   help="connections of the load generator (default %(default)s)")
    r.add_argument("--clients", type=_sizes, metavar="N,N,...",
                   help="instead: what the cluster costs by its size, one lab cluster per client count "
                        "(e.g. 3,10,25): cold up, no-op preview and up, adding and removing a client, "
                        "destroy, peak memory; each figure's ratio to the first size's")
    r.add_argument("--keep-workdir", action="store_true",
                   help="keep the project copy, the command logs and event logs (kept anyway on failure)")

    w = verbs.add_parser("wrk", help="HTTP load with wrk; JSON on stdout (inside the lab network)")
    w.add_argument("url")
    w.add_argument("--seconds", type=_seconds, default=10.0)
    w.add_argument("--threads", type=_positive_int, default=3)
    w.add_argument("--connections", type=_positive_int, default=9)
    w.add_argument("--spread", default="", metavar="HOST:PORT,...",
                   help="addresses the threads go to in turn (instead of the URL's host)")

    probe = verbs.add_parser("probe", help="wait until URL answers 200; JSON on stdout "
                                           "(inside the lab network)")
    probe.add_argument("url")
    probe.add_argument("--timeout", type=_seconds, default=30.0)
    probe.add_argument("--contains", default="", help="text the body must hold")

    fail = verbs.add_parser("failover", help="stop one allocation, watch the LB; JSON on stdout "
                                             "(inside the lab network)")
    fail.add_argument("--lb", required=True, metavar="URL", help="fib through the load balancer")
    fail.add_argument("--nomad", required=True, metavar="URL", help="Nomad's HTTP API")
    fail.add_argument("--consul", required=True, metavar="URL", help="Consul's HTTP API")
    fail.add_argument("--job", default="fib")
    fail.add_argument("--count", type=_positive_int, default=3, help="allocations the job runs")
    fail.add_argument("--settle", type=_seconds, default=3.0,
                      help="quiet seconds (no answer from the stopped instance, no error) that end it")
    fail.add_argument("--timeout", type=_seconds, default=60.0)
    return p


def _run(args: argparse.Namespace) -> int:
    from bench import runner
    from bench.workspace import BenchError

    quick = bool(args.quick)
    settings = runner.Settings(
        runs=args.runs or (1 if quick else 3),
        load_seconds=args.load_seconds if args.load_seconds is not None else (3.0 if quick else 10.0),
        load_warmup=0.5 if quick else 1.0,
        concurrency=args.concurrency,
        failover_settle=2.0 if quick else 3.0,
        quick=quick,
        keep_workdir=bool(args.keep_workdir),
        clients=args.clients or (),
    )
    try:
        return runner.main(settings, args.json, args.markdown)
    except BenchError as err:
        print(f"bench: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("bench: interrupted", file=sys.stderr)
        return 130


def _wrk(args: argparse.Namespace) -> int:
    from bench import wrk

    spread = [target for target in args.spread.split(",") if target]
    result = wrk.run(args.url, args.seconds, args.threads, args.connections, spread)
    print(json.dumps(result.as_dict()))
    return 0


def _probe(args: argparse.Namespace) -> int:
    from bench import probe

    result = probe.wait_for(args.url, args.timeout, contains=args.contains)
    print(json.dumps(result.as_dict()))
    return 0


def _failover(args: argparse.Namespace) -> int:
    from bench import failover

    result = failover.run(args.lb, args.nomad, args.consul, args.job, args.count, settle=args.settle,
                          timeout=args.timeout)
    print(json.dumps(result))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    verbs = {"run": _run, "wrk": _wrk, "probe": _probe, "failover": _failover}
    try:
        return verbs[args.verb](args)
    except ValueError as err:  # LoadError, EventLogError ...: a bad input, named
        print(f"bench: error: {err}", file=sys.stderr)
        return 1
    except RuntimeError as err:  # FailoverError
        print(f"bench: error: {err}", file=sys.stderr)
        return 1
