"""A short Markdown summary of `pulumi preview --json --diff`, for a pull-request comment.

    summary = summarize(json.loads(Path("preview.json").read_text()))
    summary.machines   # {"client2": {"updated": ["client2-nomad"]}, "cluster": {...}}
    text = render(summary, diff_text=Path("preview.diff.txt").read_text())

What it shows: per machine (servers, the load balancer, clients, then "cluster" for what
runs on no machine, such as the Nomad jobs), which steps would be created, updated,
replaced or deleted, and for updates and replaces which input keys changed. It never shows
an input or output VALUE, so no secret can leak through it; the full text diff, when given,
is Pulumi's own display (which masks secrets as `[secret]`), shown collapsed.

How steps map to the summary:
- `create` and `import` are "created", `update` is "updated", `delete` is "deleted";
  `replace`, `create-replacement`, `delete-replaced` and `import-replacement` of one URN are
  one "replaced" (Pulumi shows the single `replace` step unless asked for
  `--show-replacement-steps`, which adds the other two).
- `same`, `read`, `refresh`, `discard`, `read-replacement`, `read-discard` and
  `remove-pending-replace` change nothing to review and are left out, as is the stack's
  own root resource. An op this module does not know is listed under the table.
- The roll steps (`<machine>-roll`, `<machine>-roll-leader`) that would run again are also
  listed on their own, in the preview's order, which is the order of the machines' turns:
  Consul and Nomad restart one machine at a time in that order.
- A step's machine: a machine component (type `hashicluster:machines:*`) is its own machine;
  any other step belongs to the machine whose name it equals or starts with followed by `-`
  (the longest such name: `frontend-lb-nginx` is on `frontend-lb`), the machines' names
  being those of the machine components seen in the preview, as steps or as parents; else
  to its parent when that is a machine (the gates `consul-servers-ready` .. are children of
  the root server); else "cluster".

Pure: no I/O here (the command line is in review/cli.py).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

CREATED, UPDATED, REPLACED, DELETED = "created", "updated", "replaced", "deleted"
CATEGORIES = (CREATED, UPDATED, REPLACED, DELETED)
CLUSTER = "cluster"
MACHINE_TYPE_PREFIX = "hashicluster:machines:"
ROOT_STACK_TYPE = "pulumi:pulumi:Stack"
DEFAULT_MAX_CHARS = 60_000  # GitHub refuses comments over 65536 characters
DEFAULT_DIFF_LOCATION = "the workflow's artifacts"

OP_CATEGORY = {
    "create": CREATED,
    "import": CREATED,
    "update": UPDATED,
    "replace": REPLACED,
    "create-replacement": REPLACED,
    "delete-replaced": REPLACED,
    "import-replacement": REPLACED,
    "delete": DELETED,
}
IGNORED_OPS = frozenset({"same", "read", "refresh", "discard", "read-replacement", "read-discard",
                         "remove-pending-replace"})
TOTAL_WORDS = {CREATED: "to create", UPDATED: "to update", REPLACED: "to replace",
               DELETED: "to delete"}

_URN_PREFIX = "urn:pulumi:"
_ROLL_STEP = re.compile(r"-roll(-leader)?$")
_TOPOLOGY_NAME = re.compile(r"^(root-server|server\d+|frontend-lb|client\d+)(?=-|$)")
_ANSI = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[@-Z\\-_])")
_UNSAFE_KEY_CHARS = re.compile(r"[^A-Za-z0-9_.$:@/-]")
_MAX_KEY_CHARS = 64


class PreviewError(ValueError):
    """The input is not the JSON of `pulumi preview --json`; the message says what is wrong."""


@dataclass(frozen=True)
class Step:
    """One resource's change, its ops collapsed: what the summary needs and nothing else."""

    urn: str
    name: str
    type: str
    parent: str | None  # the parent's URN, when the state names it
    category: str | None  # one of CATEGORIES, or None for an op this module does not know
    op: str
    keys: tuple[str, ...] = ()  # changed top-level input keys (updates and replaces)


@dataclass
class Summary:
    """What a preview would change, per machine, in cluster order.

    `machines` maps a machine (or "cluster") to category -> sorted step names, with only the
    non-empty categories; `keys` maps an updated or replaced step's name to the sorted input
    keys that changed; `unknown_ops` maps a step's name to an op this module does not know;
    `restarts` lists the roll steps to run again, in their turns' order.
    """

    stack: str | None = None
    machines: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    keys: dict[str, list[str]] = field(default_factory=dict)
    unknown_ops: dict[str, str] = field(default_factory=dict)
    restarts: list[str] = field(default_factory=list)
    errors: int = 0  # error diagnostics the preview reported

    @property
    def totals(self) -> dict[str, int]:
        """How many steps per category, over every machine."""
        counts = dict.fromkeys(CATEGORIES, 0)
        for categories in self.machines.values():
            for category, names in categories.items():
                counts[category] += len(names)
        return counts

    @property
    def changed(self) -> bool:
        return any(self.totals.values()) or bool(self.unknown_ops)


# ---------------------------------------------------------------------------------------------
# Parsing


def split_urn(urn: str) -> tuple[str, str, str]:
    """(stack, qualified type, name) of `urn:pulumi:STACK::PROJECT::QUALIFIED$TYPE::NAME`.

    The qualified type is the parent types' chain joined by `$`, the resource's own type
    last. The name may itself contain `::`.
    """
    if not urn.startswith(_URN_PREFIX):
        raise PreviewError(f"{urn!r} is not a Pulumi URN (urn:pulumi:STACK::PROJECT::TYPE::NAME)")
    parts = urn[len(_URN_PREFIX):].split("::", 3)
    if len(parts) != 4 or not all(parts):
        raise PreviewError(f"{urn!r} is not a Pulumi URN (urn:pulumi:STACK::PROJECT::TYPE::NAME)")
    stack, _project, qualified, name = parts
    return stack, qualified, name


def _urn_type(urn: str) -> str:
    return split_urn(urn)[1].rsplit("$", 1)[-1]


def _is_machine_type(type_: str) -> bool:
    return type_.startswith(MACHINE_TYPE_PREFIX)


def top_key(path: str) -> str:
    """The top-level input key of a detailed-diff property path: `triggers[0]` -> `triggers`,
    `connection.host` -> `connection`, `["a.b"].c` -> `a.b`. Made safe to print in Markdown."""
    if path.startswith('["'):
        end = path.find('"]')
        key = path[2:end] if end > 2 else path
    else:
        key = re.split(r"[.\[]", path, maxsplit=1)[0] or path
    return _UNSAFE_KEY_CHARS.sub("?", key)[:_MAX_KEY_CHARS]


def _object(value: object, where: str) -> dict[str, object]:
    if not isinstance(value, dict):
        raise PreviewError(f"{where} is {_kind(value)}, not an object")
    return value


def _kind(value: object) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean",
             int: "a number", float: "a number", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def _string(step: Mapping[str, object], key: str, where: str) -> str:
    value = step.get(key)
    if not isinstance(value, str) or not value:
        raise PreviewError(f"{where} has no {key!r} string")
    return value


def _state(step: Mapping[str, object], where: str) -> dict[str, object]:
    """The step's new state, else its old one (a delete has only the old), else {}."""
    for key in ("newState", "oldState"):
        value = step.get(key)
        if value is not None:
            return _object(value, f"{where}.{key}")
    return {}


def _changed_keys(step: Mapping[str, object], where: str) -> set[str]:
    """The top-level input keys a step changes, from its detailed diff and its reasons."""
    paths: list[str] = []
    detailed = step.get("detailedDiff")
    if detailed is not None:
        paths += list(_object(detailed, f"{where}.detailedDiff"))
    for key in ("diffReasons", "replaceReasons"):
        reasons = step.get(key)
        if reasons is None:
            continue
        if not isinstance(reasons, list) or not all(isinstance(r, str) for r in reasons):
            raise PreviewError(f"{where}.{key} is not a list of property names")
        paths += reasons
    return {top_key(p) for p in paths if p}


def load(text: str | bytes) -> dict[str, object]:
    """Parse the text of `pulumi preview --json` into its top-level object."""
    try:
        doc: object = json.loads(text)
    except json.JSONDecodeError as err:
        where = f"line {err.lineno} column {err.colno}"
        raise PreviewError(f"invalid JSON at {where}: {err.msg}") from None
    except UnicodeDecodeError as err:
        raise PreviewError(f"not UTF-8 text ({err.reason} at byte {err.start})") from None
    return check_document(doc)


def check_document(doc: object) -> dict[str, object]:
    """The top-level object, checked to look like a preview (steps, changeSummary ..)."""
    top = _object(doc, "the document")
    known = ("steps", "changeSummary", "diagnostics", "config", "duration")
    if not any(key in top for key in known):
        raise PreviewError("the top-level object has none of the keys steps, changeSummary, "
                           "diagnostics, config")
    _steps(top)
    return top


def _steps(doc: Mapping[str, object]) -> list[object]:
    steps = doc.get("steps")
    if steps is None:
        return []  # Pulumi leaves the key out when there is no step at all
    if not isinstance(steps, list):
        raise PreviewError(f"steps is {_kind(steps)}, not a list")
    return steps


def parse_steps(doc: Mapping[str, object]) -> list[Step]:
    """Every resource's change, one Step per URN (replacement steps collapsed), in order."""
    raw = _steps(doc)
    ops: dict[str, list[str]] = {}
    first: dict[str, tuple[str, str | None]] = {}  # urn -> (type, parent)
    keys: dict[str, set[str]] = {}
    for i, item in enumerate(raw):
        where = f"steps[{i}]"
        step = _object(item, where)
        op, urn = _string(step, "op", where), _string(step, "urn", where)
        state = _state(step, where)
        type_ = state.get("type")
        parent = state.get("parent")
        if not isinstance(type_, str) or not type_:
            type_ = _urn_type(urn)
        else:
            split_urn(urn)  # checks it
        if parent is not None and not isinstance(parent, str):
            raise PreviewError(f"{where} has a parent that is {_kind(parent)}, not a URN")
        ops.setdefault(urn, []).append(op)
        first.setdefault(urn, (type_, parent or None))
        keys.setdefault(urn, set()).update(_changed_keys(step, where))
    steps = []
    for urn, seen in ops.items():
        type_, parent = first[urn]
        if type_ == ROOT_STACK_TYPE:
            continue
        category, op = _category(seen)
        if category is None and op in IGNORED_OPS:
            continue
        changed = tuple(sorted(keys[urn])) if category in (UPDATED, REPLACED) else ()
        steps.append(Step(urn=urn, name=split_urn(urn)[2], type=type_, parent=parent,
                          category=category, op=op, keys=changed))
    return steps


def _category(ops: Sequence[str]) -> tuple[str | None, str]:
    """The one category of a URN's ops: replaced if any op replaces, else the last change.

    Returns (None, op) for only ignored ops, or for an op this module does not know.
    """
    if any(OP_CATEGORY.get(op) == REPLACED for op in ops):
        return REPLACED, "replace"
    changes = [op for op in ops if op not in IGNORED_OPS]
    if not changes:
        return None, ops[-1]
    return OP_CATEGORY.get(changes[-1]), changes[-1]


# ---------------------------------------------------------------------------------------------
# Grouping


def machine_names(steps: Sequence[Step]) -> set[str]:
    """Names of the machine components in the preview: changed ones, and parents of steps."""
    names = {s.name for s in steps if _is_machine_type(s.type)}
    for s in steps:
        if s.parent and _is_machine_type(_urn_type(s.parent)):
            names.add(split_urn(s.parent)[2])
    return names


def machine_of(step: Step, machines: set[str]) -> str:
    """The machine a step runs on, or CLUSTER (see the module's docstring)."""
    if _is_machine_type(step.type):
        return step.name
    matches = [m for m in machines if step.name == m or step.name.startswith(m + "-")]
    if matches:
        return max(matches, key=len)
    if step.parent and _is_machine_type(_urn_type(step.parent)):
        return split_urn(step.parent)[2]
    chain = split_urn(step.urn)[1].split("$")[:-1]
    if any(_is_machine_type(t) for t in chain):
        # On a machine whose name the preview does not give: the topology's names tell.
        found = _TOPOLOGY_NAME.match(step.name)
        if found:
            return found.group(1)
    return CLUSTER


def cluster_order(name: str) -> tuple[int, int, str]:
    """Sort key: root-server, server2.., frontend-lb, client1.. (numerically), others, cluster."""
    if name == "root-server":
        return 0, 1, ""
    if m := re.fullmatch(r"server(\d+)", name):
        return 0, int(m.group(1)), ""
    if name == "frontend-lb":
        return 1, 0, ""
    if m := re.fullmatch(r"client(\d+)", name):
        return 2, int(m.group(1)), ""
    if name == CLUSTER:
        return 4, 0, ""
    return 3, 0, name


def summarize(preview: str | bytes | Mapping[str, object]) -> Summary:
    """The Summary of a preview: its JSON text, or that text already parsed."""
    doc = load(preview) if isinstance(preview, str | bytes) else check_document(dict(preview))
    steps = parse_steps(doc)
    machines = machine_names(steps)
    grouped: dict[str, dict[str, list[str]]] = {}
    summary = Summary(stack=_stack(doc), errors=_errors(doc))
    for step in steps:
        if step.category is None:
            summary.unknown_ops[step.name] = step.op
            continue
        grouped.setdefault(machine_of(step, machines), {}).setdefault(step.category, []).append(
            step.name)
        if step.keys:
            summary.keys[step.name] = sorted(set(summary.keys.get(step.name, [])) | set(step.keys))
        if step.category == UPDATED and _ROLL_STEP.search(step.name):
            summary.restarts.append(step.name)
    for machine in sorted(grouped, key=cluster_order):
        summary.machines[machine] = {c: sorted(grouped[machine][c]) for c in CATEGORIES
                                     if c in grouped[machine]}
    return summary


def _stack(doc: Mapping[str, object]) -> str | None:
    for step in _steps(doc):
        if isinstance(step, dict) and isinstance(step.get("urn"), str):
            return split_urn(step["urn"])[0]
    return None


def _errors(doc: Mapping[str, object]) -> int:
    diagnostics = doc.get("diagnostics") or []
    if not isinstance(diagnostics, list):
        raise PreviewError(f"diagnostics is {_kind(diagnostics)}, not a list")
    return sum(1 for d in diagnostics if isinstance(d, dict) and d.get("severity") == "error")


# ---------------------------------------------------------------------------------------------
# Markdown


def strip_ansi(text: str) -> str:
    """The text without terminal escape sequences (colours, cursor moves), with \\n line ends."""
    return _ANSI.sub("", text).replace("\r\n", "\n").replace("\r", "\n")


def _code(text: str) -> str:
    """Inline code that is safe inside a Markdown table cell."""
    return "`" + text.replace("`", "'").replace("|", "\\|") + "`"


def totals_line(summary: Summary) -> str:
    """`7 to update, 2 to replace, 9 to delete`, in Pulumi's order, zero counts left out."""
    totals = summary.totals
    return ", ".join(f"{totals[c]} {TOTAL_WORDS[c]}" for c in CATEGORIES if totals[c])


def _cell(summary: Summary, category: str, names: Sequence[str]) -> str:
    """Step names, one a line; an update or replace followed by the input keys it changes."""
    items = []
    for name in names:
        note = ""
        if category in (UPDATED, REPLACED):
            keys = summary.keys.get(name)
            # A provider may say that a resource changes without saying which inputs (the
            # Nomad jobs' provider does).
            note = f" ({', '.join(keys)})" if keys else " (keys not reported)"
        items.append(_code(name) + note)
    return "<br>".join(items)


def render_summary(summary: Summary) -> str:
    """The heading, the totals and the per-machine table (or "No changes.")."""
    title = f"### Pulumi preview of stack {_code(summary.stack)}" if summary.stack else \
        "### Pulumi preview"
    lines = [title, ""]
    if summary.errors:
        lines += [f"**The preview reported {summary.errors} error(s)**: what follows may be "
                  "incomplete. See the preview's log.", ""]
    if not summary.changed:
        lines.append("No changes.")
        return "\n".join(lines) + "\n"
    totals = totals_line(summary)
    if totals:
        lines += [f"**{totals}**", ""]
        lines += ["| machine | " + " | ".join(CATEGORIES) + " |",
                  "|---|" + "---|" * len(CATEGORIES)]
        for machine, categories in summary.machines.items():
            cells = [_cell(summary, c, categories.get(c, [])) for c in CATEGORIES]
            lines.append(f"| {machine.replace('|', '/')} | " + " | ".join(cells) + " |")
    if summary.restarts:
        lines += ["", "Rolling restarts, one machine at a time, in this order: "
                  + " → ".join(_code(n) for n in summary.restarts)
                  + " (a server that leads waits for its `-roll-leader` turn)."]
    if summary.unknown_ops:
        unknown = ", ".join(f"{_code(n)} ({_UNSAFE_KEY_CHARS.sub('?', op)[:_MAX_KEY_CHARS]})"
                            for n, op in sorted(summary.unknown_ops.items()))
        lines += ["", f"Steps with an op this summary does not know: {unknown}; see the full diff."]
    return "\n".join(lines) + "\n"


def _fence(text: str) -> str:
    """A code fence longer than any run of backticks in the text."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)


def render_diff(diff_text: str, budget: int, diff_location: str = DEFAULT_DIFF_LOCATION) -> str:
    """The full diff, collapsed, in a ```diff fence, in at most `budget` characters if it can.

    Too long, it is cut at a line boundary and ends with how many lines were left out and
    where the whole diff is. The fence is always closed. When not even the wrapper fits,
    a one-line note stands in for the diff.
    """
    lines = strip_ansi(diff_text).rstrip("\n").split("\n")
    fence = _fence("\n".join(lines))
    whole = _diff_block(lines, fence, None, diff_location)
    if len(whole) <= budget:
        return whole
    total = len(lines)
    # Reserve room for the wrapper with the widest numbers it can show, then fill with lines.
    room = budget - len(_diff_block([], fence, (total, total), diff_location))
    kept = 0
    for line in lines:
        if room < len(line) + 1:
            break
        room -= len(line) + 1
        kept += 1
    if kept == 0:
        return (f"\nThe full diff ({total} lines) is too long for this comment; "
                f"it is in {diff_location}.\n")
    return _diff_block(lines[:kept], fence, (kept, total), diff_location)


def _diff_block(lines: Sequence[str], fence: str, cut: tuple[int, int] | None,
                diff_location: str) -> str:
    label = "Full diff" if cut is None else f"Full diff (first {cut[0]} of {cut[1]} lines)"
    body = "".join(line + "\n" for line in lines)
    note = "" if cut is None else (f"{cut[1] - cut[0]} more lines left out; the whole diff is "
                                   f"in {diff_location}.\n\n")
    return (f"\n<details><summary>{label}</summary>\n\n{fence}diff\n{body}{fence}\n\n"
            f"{note}</details>\n")


def render(summary: Summary, diff_text: str | None = None, max_chars: int = DEFAULT_MAX_CHARS,
           diff_location: str = DEFAULT_DIFF_LOCATION) -> str:
    """The whole comment: the summary, always whole, then the full diff cut to fit max_chars."""
    head = render_summary(summary)
    if diff_text is None or not strip_ansi(diff_text).strip():
        return head
    return head + render_diff(diff_text, max_chars - len(head), diff_location)


def markdown(preview: str | bytes | Mapping[str, object], diff_text: str | None = None,
             max_chars: int = DEFAULT_MAX_CHARS, diff_location: str = DEFAULT_DIFF_LOCATION) -> str:
    """summarize() then render(): the preview JSON to the comment's Markdown."""
    return render(summarize(preview), diff_text, max_chars, diff_location)
