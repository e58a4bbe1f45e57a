"""The preview summarizer (review/): grouping, collapsing, rendering, cutting, the CLI.

The fixtures in tests/unit/fixtures/review/ are real `pulumi preview` outputs of this
program, trimmed (see their README.md). Cases the real ones do not cover are derived from
them in the tests below, by the functions named `derived_*`.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from review import summary as s

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).parent / "fixtures" / "review"
MACHINE = "hashicluster:machines:NspawnMachine"
FAKE_SECRET = "FAKE-SECRET-hunter2-0xdeadbeef"

Doc = dict[str, Any]


def fixture(name: str) -> Doc:
    doc: Doc = json.loads((FIXTURES / name).read_text())
    return doc


def step_of(doc: Doc, name: str, op: str | None = None) -> Doc:
    """The (first) step of a resource name, optionally of one op."""
    for step in doc["steps"]:
        if step["urn"].endswith("::" + name) and (op is None or step["op"] == op):
            result: Doc = step
            return result
    raise AssertionError(f"no step {name} {op or ''} in the fixture")


def machine_steps(node: str, role: str) -> list[str]:
    """The steps the program makes on one node of the lab stack (upload source)."""
    names = [node, f"{node}-lab", f"{node}-identity", f"{node}-consul", f"{node}-consul-upload"]
    if role == "server":
        names += [f"{node}-nomad", f"{node}-nomad-upload",
                  "consul-servers-ready", "nomad-servers-ready", "cluster-ready"]
    if role == "lb":
        names += [f"{node}-nginx", f"{node}-consul-template", f"{node}-consul-template-upload"]
    if role == "client":
        names += [f"{node}-nomad", f"{node}-nomad-upload",
                  f"{node}-cadvisor", f"{node}-cadvisor-upload"]
    return sorted(names)


# ------------------------------------------------------------------------------- real previews


def test_all_creates_groups_every_step_under_its_machine() -> None:
    summary = s.summarize(fixture("preview-create.json"))
    assert summary.machines == {
        "root-server": {"created": machine_steps("root-server", "server")},
        "frontend-lb": {"created": machine_steps("frontend-lb", "lb")},
        "client1": {"created": machine_steps("client1", "client")},
        "client2": {"created": machine_steps("client2", "client")},
        "client3": {"created": machine_steps("client3", "client")},
        "cluster": {"created": ["job-fib"]},
    }
    # The stack's root resource is not a step to review: 47 creates for Pulumi, 46 here.
    assert fixture("preview-create.json")["changeSummary"] == {"create": 47}
    assert summary.totals == {"created": 46, "updated": 0, "replaced": 0, "deleted": 0}
    assert summary.stack == "review-fixture"
    assert summary.keys == {}


def test_all_creates_markdown() -> None:
    text = s.markdown(fixture("preview-create.json"))
    assert text.startswith("### Pulumi preview of stack `review-fixture`\n")
    assert "**46 to create**" in text
    assert "| machine | created | updated | replaced | deleted |" in text
    row = next(line for line in text.splitlines() if line.startswith("| frontend-lb |"))
    assert "`frontend-lb-nginx`" in row and "`frontend-lb-consul-template-upload`" in row
    row = next(line for line in text.splitlines() if line.startswith("| cluster |"))
    assert row == "| cluster | `job-fib` |  |  |  |"


def test_update_replace_delete() -> None:
    summary = s.summarize(fixture("preview-change.json"))
    assert summary.machines == {
        "root-server": {"updated": ["cluster-ready", "root-server-identity"]},
        "frontend-lb": {"updated": ["frontend-lb-identity"], "replaced": ["frontend-lb-nginx"]},
        "client1": {"updated": ["client1-identity"], "replaced": ["client1-cadvisor-upload"]},
        "client2": {"updated": ["client2-identity", "client2-nomad"]},
        "client3": {"deleted": machine_steps("client3", "client")},
        "cluster": {"updated": ["job-fib"]},
    }
    assert summary.keys == {
        "cluster-ready": ["create", "triggers", "update"],
        "root-server-identity": ["create"],
        "frontend-lb-identity": ["create"],
        "frontend-lb-nginx": ["connection"],
        "client1-identity": ["create"],
        "client1-cadvisor-upload": ["remotePath"],
        "client2-identity": ["create"],
        "client2-nomad": ["create", "triggers", "update"],
    }
    counts = fixture("preview-change.json")["changeSummary"]
    assert summary.totals == {"created": 0, "updated": counts["update"],
                              "replaced": counts["replace"], "deleted": counts["delete"]}


def test_update_replace_delete_markdown() -> None:
    text = s.markdown(fixture("preview-change.json"))
    assert "**7 to update, 2 to replace, 9 to delete**" in text
    lines = text.splitlines()
    assert ("| client2 |  | `client2-identity` (create)<br>"
            "`client2-nomad` (create, triggers, update) |  |  |") in lines
    assert ("| frontend-lb |  | `frontend-lb-identity` (create) | "
            "`frontend-lb-nginx` (connection) |  |") in lines
    # The Nomad jobs' provider says that a job changes, not which inputs.
    assert "| cluster |  | `job-fib` (keys not reported) |  |  |" in lines


def test_replacement_steps_collapse_into_one_replaced() -> None:
    """`--show-replacement-steps` adds create-replacement and delete-replaced: same summary."""
    shown = fixture("preview-change-replacement-steps.json")
    ops = [step["op"] for step in shown["steps"] if step["urn"].endswith("::frontend-lb-nginx")]
    assert sorted(ops) == ["create-replacement", "delete-replaced", "replace"]
    assert s.summarize(shown) == s.summarize(fixture("preview-change.json"))


def test_no_changes() -> None:
    doc = fixture("preview-same.json")
    assert [step["op"] for step in doc["steps"]] == ["same"]
    summary = s.summarize(doc)
    assert summary.machines == {} and not summary.changed
    text = s.markdown(doc, diff_text="")
    assert text == "### Pulumi preview of stack `review-fixture`\n\nNo changes.\n"
    assert "|" not in text


def test_machines_in_cluster_order() -> None:
    assert list(s.summarize(fixture("preview-change.json")).machines) == [
        "root-server", "frontend-lb", "client1", "client2", "client3", "cluster"]
    names = ["cluster", "client10", "client2", "frontend-lb", "server3", "backup", "root-server",
             "server2", "client1"]
    assert sorted(names, key=s.cluster_order) == [
        "root-server", "server2", "server3", "frontend-lb", "client1", "client2", "client10",
        "backup", "cluster"]


# ------------------------------------------------------------------------- derived previews


def derived_update_of(doc: Doc, names: list[str]) -> Doc:
    """The create preview, as if only `names` were updated (old state = new state)."""
    steps = [copy.deepcopy(step_of(doc, n)) for n in names]
    for step in steps:
        step["op"] = "update"
        step["oldState"] = copy.deepcopy(step["newState"])
        step["diffReasons"] = ["triggers"]
        step["detailedDiff"] = {"triggers[0]": {"kind": "update", "inputDiff": True}}
    return {"steps": [step_of(doc, "hashicluster-review-fixture"), *steps], "changeSummary": {}}


def test_grouping_without_any_machine_component_in_the_preview() -> None:
    """Updates alone: the machines are known only as the steps' parents."""
    names = ["client2-nomad", "frontend-lb-nginx", "nomad-servers-ready", "job-fib"]
    doc = derived_update_of(fixture("preview-create.json"), names)
    assert s.summarize(doc).machines == {
        "root-server": {"updated": ["nomad-servers-ready"]},
        "frontend-lb": {"updated": ["frontend-lb-nginx"]},
        "client2": {"updated": ["client2-nomad"]},
        "cluster": {"updated": ["job-fib"]},
    }


def test_grouping_without_parents_falls_back_to_names() -> None:
    doc = derived_update_of(fixture("preview-create.json"), ["client2-nomad", "frontend-lb-nginx"])
    for step in doc["steps"]:
        for key in ("oldState", "newState"):
            step.get(key, {}).pop("parent", None)
    assert s.summarize(doc).machines == {"frontend-lb": {"updated": ["frontend-lb-nginx"]},
                                         "client2": {"updated": ["client2-nomad"]}}


def test_longest_machine_name_wins() -> None:
    """With machines `frontend` and `frontend-lb`, frontend-lb-nginx is on frontend-lb."""
    doc = fixture("preview-create.json")
    lb = step_of(doc, "frontend-lb")
    other = copy.deepcopy(lb)
    other["urn"] = other["newState"]["urn"] = lb["urn"].replace("::frontend-lb", "::frontend")
    nginx = copy.deepcopy(step_of(doc, "frontend-lb-nginx"))
    nginx["newState"].pop("parent")
    summary = s.summarize({"steps": [other, lb, nginx]})
    assert summary.machines == {"frontend-lb": {"created": ["frontend-lb", "frontend-lb-nginx"]},
                                "frontend": {"created": ["frontend"]}}
    step = s.parse_steps({"steps": [nginx]})[0]
    assert s.machine_of(step, {"frontend", "frontend-lb"}) == "frontend-lb"


def test_delete_before_replace_order_collapses_too() -> None:
    doc = fixture("preview-change-replacement-steps.json")
    nginx = [copy.deepcopy(st) for st in doc["steps"] if st["urn"].endswith("::frontend-lb-nginx")]
    nginx.sort(key=lambda st: ["delete-replaced", "replace", "create-replacement"].index(st["op"]))
    summary = s.summarize({"steps": nginx})
    assert summary.machines == {"frontend-lb": {"replaced": ["frontend-lb-nginx"]}}
    assert summary.totals["replaced"] == 1 and summary.totals["deleted"] == 0


def test_reads_and_refreshes_are_no_changes_and_unknown_ops_are_listed() -> None:
    doc = derived_update_of(fixture("preview-create.json"), ["client1-nomad", "client2-nomad"])
    doc["steps"][1]["op"] = "refresh"
    doc["steps"][2]["op"] = "frobnicate"
    summary = s.summarize(doc)
    assert summary.machines == {} and summary.unknown_ops == {"client2-nomad": "frobnicate"}
    text = s.render(summary)
    assert "does not know: `client2-nomad` (frobnicate)" in text
    assert "No changes." not in text
    doc["steps"][2]["op"] = "read"
    assert s.markdown(doc).endswith("No changes.\n")


def derived_with_secret(doc: Doc) -> Doc:
    """The change preview with a secret value in a step's inputs, diff and diagnostics."""
    doc = copy.deepcopy(doc)
    nomad = step_of(doc, "client2-nomad")
    nomad["oldState"]["inputs"]["environment"] = {"NOMAD_TOKEN": "old-" + FAKE_SECRET}
    nomad["newState"]["inputs"]["environment"] = {"NOMAD_TOKEN": FAKE_SECRET}
    nomad["newState"]["outputs"] = {"stdout": FAKE_SECRET}
    nomad["diffReasons"].append("environment")
    nomad["detailedDiff"]["environment.NOMAD_TOKEN"] = {"kind": "update", "inputDiff": True}
    doc["config"]["hashicluster:token"] = FAKE_SECRET
    doc["diagnostics"].append({"message": f"error: bad token {FAKE_SECRET}", "severity": "error"})
    return doc


def test_values_are_never_printed() -> None:
    doc = derived_with_secret(fixture("preview-change.json"))
    assert FAKE_SECRET in json.dumps(doc)
    text = s.markdown(doc)
    assert FAKE_SECRET not in text and "NOMAD_TOKEN" not in text
    assert "`client2-nomad` (create, environment, triggers, update)" in text
    assert "**The preview reported 1 error(s)**" in text


def test_config_values_stay_out() -> None:
    doc = fixture("preview-change.json")
    assert "10.210.7.0/24" in doc["config"]["hashicluster:machines"]
    text = s.markdown(doc)
    assert "10.210.7." not in text and "nodeClass" not in text and "batch" not in text


@pytest.mark.parametrize(("path", "key"), [
    ("triggers[0]", "triggers"),
    ("connection.host", "connection"),
    ("create", "create"),
    ('["a.b"].c', "a.b"),
    ("weird`|key<b>", "weird??key?b?"),
    ("x" * 100, "x" * 64),
])
def test_top_key(path: str, key: str) -> None:
    assert s.top_key(path) == key


def test_markdown_special_characters_in_names_are_escaped() -> None:
    doc = derived_update_of(fixture("preview-create.json"), ["job-fib"])
    step = doc["steps"][1]
    step["urn"] = step["urn"].replace("::job-fib", "::job-a|b`c")
    text = s.markdown(doc)
    assert "`job-a\\|b'c`" in text


# ----------------------------------------------------------------------------- the full diff


def real_diff() -> str:
    return (FIXTURES / "preview-change.diff.txt").read_text()


def test_full_diff_is_collapsed_without_ansi_codes() -> None:
    diff = real_diff()
    assert "\x1b[" in diff
    text = s.markdown(fixture("preview-change.json"), diff_text=diff)
    assert "\x1b" not in text
    assert ("\n<details><summary>Full diff</summary>\n\n"
            "```diff\nPreviewing update (review-fixture):\n") in text
    assert text.endswith("    18 changes. 29 unchanged\n```\n\n</details>\n")
    assert "left out" not in text


def test_strip_ansi() -> None:
    coloured = "\x1b[38;5;3m~ x\x1b[0m\r\n\x1b]8;;http://a\x07link\x1b]8;;\x07"
    assert s.strip_ansi(coloured) == "~ x\nlink"


def test_long_diff_is_cut_at_a_line_with_the_table_whole_and_the_fence_closed() -> None:
    summary = s.summarize(fixture("preview-change.json"))
    head = s.render_summary(summary)
    limit = len(head) + 3000
    text = s.render(summary, real_diff(), max_chars=limit, diff_location="the `preview` artifact")
    assert len(text) <= limit
    assert text.startswith(head)
    rest = text[len(head):]
    body = rest.split("```diff\n", 1)[1].split("\n```\n", 1)[0].split("\n")
    all_lines = s.strip_ansi(real_diff()).split("\n")
    assert body == all_lines[:len(body)] and len(body) > 5
    left_out = len(all_lines) - 1 - len(body)  # the file ends with a newline
    assert f"<summary>Full diff (first {len(body)} of {len(all_lines) - 1} lines)</summary>" in rest
    assert rest.endswith(f"```\n\n{left_out} more lines left out; the whole diff is in "
                         "the `preview` artifact.\n\n</details>\n")
    assert rest.count("```") == 2


@pytest.mark.parametrize("room", [None, 0, 150])
def test_summary_is_kept_whole_even_over_the_limit(room: int | None) -> None:
    """No room for the diff after the table (or none for a single line of it): a note."""
    summary = s.summarize(fixture("preview-change.json"))
    limit = 1 if room is None else len(s.render_summary(summary)) + room
    text = s.render(summary, real_diff(), max_chars=limit)
    assert text.startswith(s.render_summary(summary))
    assert "```" not in text
    assert text.endswith("The full diff (272 lines) is too long for this comment; "
                         "it is in the workflow's artifacts.\n")


def test_every_cut_fits() -> None:
    summary = s.summarize(fixture("preview-change.json"))
    head = s.render_summary(summary)
    full = s.render(summary, real_diff())
    for limit in range(len(head) + 400, len(full) + 10, 997):
        text = s.render(summary, real_diff(), max_chars=limit)
        assert len(text) <= limit and text.count("```") == 2, limit


def test_fence_is_longer_than_backticks_in_the_diff() -> None:
    text = s.render(s.Summary(), "~ create:\n    ```\n    +cat <<EOF\n")
    assert "\n````diff\n~ create:\n    ```\n    +cat <<EOF\n````\n" in text


# ------------------------------------------------------------------------------ bad inputs


@pytest.mark.parametrize(("doc", "problem"), [
    ("[]", "the document is a list, not an object"),
    ('{"name": "x"}', "has none of the keys steps"),
    ('{"steps": {}}', "steps is an object, not a list"),
    ('{"steps": [{"op": "create"}]}', "steps[0] has no 'urn' string"),
    ('{"steps": [{"op": "create", "urn": "client2"}]}', "'client2' is not a Pulumi URN"),
    ('{"steps": [{"op": "update", "urn": "urn:pulumi:s::p::t::n", "diffReasons": "x"}]}',
     "steps[0].diffReasons is not a list of property names"),
    ("{", "invalid JSON at line 1 column 2"),
])
def test_not_a_preview(doc: str, problem: str) -> None:
    with pytest.raises(s.PreviewError, match=problem.replace("[", r"\[").replace("]", r"\]")):
        s.summarize(doc)


# ------------------------------------------------------------------------------ the command


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "review", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, check=False)


def test_cli_prints_the_summary() -> None:
    done = run_cli("summarize", "--json", str(FIXTURES / "preview-change.json"))
    assert done.returncode == 0, done.stderr
    assert done.stdout == s.markdown(fixture("preview-change.json"))
    assert done.stderr == ""


def test_cli_writes_the_summary_with_the_diff(tmp_path: Path) -> None:
    out = tmp_path / "comment.md"
    done = run_cli("summarize", "--json", str(FIXTURES / "preview-change.json"),
                   "--diff", str(FIXTURES / "preview-change.diff.txt"), "--max-chars", "5000",
                   "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    text = out.read_text()
    assert text == s.markdown(fixture("preview-change.json"), real_diff(), max_chars=5000)
    assert len(text) <= 5000 and "more lines left out" in text


def test_cli_invalid_json(tmp_path: Path) -> None:
    bad = tmp_path / "preview.json"
    bad.write_text("warning: using pulumi-resource-command from $PATH\n{")
    done = run_cli("summarize", "--json", str(bad))
    assert done.returncode == 1
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"review: error: {bad} is not the JSON of `pulumi preview --json`: "
                               "invalid JSON at line 1 column 1")
    assert "Fix: save only the standard output of `pulumi preview --json --diff`" in lines[0]


def test_cli_unreadable_file(tmp_path: Path) -> None:
    done = run_cli("summarize", "--json", str(tmp_path / "missing.json"))
    assert done.returncode == 1
    assert done.stderr.startswith("review: error: cannot read the preview JSON "
                                  f"{tmp_path}/missing.json: No such file or directory. Fix: ")
    assert len(done.stderr.splitlines()) == 1


def test_cli_bad_max_chars() -> None:
    done = run_cli("summarize", "--json", "x.json", "--max-chars", "0")
    assert done.returncode == 2
    assert "0 is not a positive number of characters" in done.stderr


def test_rolling_restarts_are_listed_in_the_order_of_the_turns() -> None:
    """Roll steps that run again are the machines' turns: listed in the preview's order; a
    roll step created with a new machine restarts nothing and is not listed."""
    doc = derived_update_of(fixture("preview-create.json"), ["root-server-nomad", "client2-nomad",
                                                              "client1-nomad"])
    for step in doc["steps"][1:]:
        step["urn"] = step["urn"].removesuffix("-nomad") + "-roll"
    doc["steps"][1:] = [doc["steps"][1], doc["steps"][3], doc["steps"][2]]  # root, client1, client2
    created = copy.deepcopy(doc["steps"][1])
    created.update(op="create", urn=created["urn"].replace("root-server-roll", "root-server-roll-leader"))
    doc["steps"].append(created)
    summary = s.summarize(doc)
    assert summary.restarts == ["root-server-roll", "client1-roll", "client2-roll"]
    text = s.render_summary(summary)
    assert "in this order: `root-server-roll` → `client1-roll` → `client2-roll`" in text
    assert "restarts" not in s.render_summary(s.summarize(fixture("preview-change.json")))
