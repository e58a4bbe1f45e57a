"""The command line: `python3 -m review summarize --json PREVIEW.json [--diff DIFF.txt] ...`
and `python3 -m review run [--base REV]` (see review/run.py).

Prints the Markdown summary of a preview (or writes it to --out). Exit status 0 on success,
1 when an input cannot be read or is not a preview (one line on stderr names the problem
and the fix), 2 for a bad command line.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from review import run, summary

PROG = "review"
SAVE_PREVIEW = ("save only the standard output of `pulumi preview --json --diff` "
                "(its messages go to stderr): `pulumi preview --json --diff > preview.json`")
SAVE_DIFF = "save the output of `pulumi preview --diff` to a file and pass that file"


class CliError(Exception):
    """A problem with an input or output; the message names it and the fix."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"python3 -m {PROG}", description="Summaries of `pulumi preview` for code review.")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    s = verbs.add_parser(
        "summarize", help="Markdown summary of a preview, for a pull-request comment",
        description="Turn the JSON of `pulumi preview --json --diff` into a Markdown summary: "
                    "per machine, the steps to create, update, replace and delete (never a "
                    "value), then optionally the full text diff, collapsed.")
    s.add_argument("--json", required=True, type=Path, metavar="PREVIEW.json",
                   help="the output of `pulumi preview --json --diff`")
    s.add_argument("--diff", type=Path, metavar="DIFF.txt",
                   help="the output of `pulumi preview --diff`, shown collapsed (colours removed)")
    s.add_argument("--max-chars", type=_positive, default=summary.DEFAULT_MAX_CHARS, metavar="N",
                   help="cut the full diff so the comment fits in N characters "
                        f"(default {summary.DEFAULT_MAX_CHARS}); the summary is never cut")
    s.add_argument("--diff-location", default=summary.DEFAULT_DIFF_LOCATION, metavar="TEXT",
                   help="where readers find the whole diff when it is cut "
                        f"(default: {summary.DEFAULT_DIFF_LOCATION!r})")
    s.add_argument("--out", type=Path, metavar="FILE",
                   help="write the Markdown here, not to stdout")
    r = verbs.add_parser(
        "run", help="preview the working tree against a lab cluster running the base revision",
        description=run.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    run.add_arguments(r)
    return parser


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{value} is not a positive number of characters")
    return value


def _read(path: Path, what: str, fix: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as err:
        raise CliError(f"cannot read {what} {path}: {err.strerror or err}. Fix: {fix}") from None


def summarize(args: argparse.Namespace) -> str:
    """The Markdown of `summarize`, from the files the arguments name."""
    path: Path = args.json
    data = _read(path, "the preview JSON", SAVE_PREVIEW)
    diff_text = None
    if args.diff is not None:
        diff_text = _read(args.diff, "the diff", SAVE_DIFF).decode("utf-8", errors="replace")
    try:
        return summary.markdown(data, diff_text, args.max_chars, args.diff_location)
    except summary.PreviewError as err:
        raise CliError(f"{path} is not the JSON of `pulumi preview --json`: {err}. "
                       f"Fix: {SAVE_PREVIEW}") from None


def _write(text: str, out: Path | None) -> None:
    if out is None:
        sys.stdout.buffer.write(text.encode())
        sys.stdout.buffer.flush()
        return
    try:
        out.write_text(text, encoding="utf-8")
    except OSError as err:
        raise CliError(f"cannot write {out}: {err.strerror or err}. Fix: pass --out a file "
                       "in a directory that exists and is writable") from None


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.verb == "run":
            return run.main(args)
        _write(summarize(args), args.out)
    except (CliError, run.ReviewError) as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 1
    return 0
