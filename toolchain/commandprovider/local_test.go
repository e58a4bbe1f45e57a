package main

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Values that are hard to quote: each must reach a shell unchanged.
var trickyValues = []string{
	"",
	"plain",
	"it's",
	`say "hi"`,
	"$HOME `id` $(id) \\n \\",
	"two\nlines\n",
	"''''",
	"'\"'\"'",
	"; rm -rf / #",
	"tab\there * ? [a] ~",
	"ünïcödé ✓",
}

func TestShellQuoteRoundTrip(t *testing.T) {
	for _, value := range trickyValues {
		out, err := exec.Command("/bin/sh", "-c", "printf '%s' "+shellQuote(value)).Output()
		if err != nil {
			t.Fatalf("sh failed for %q: %v", value, err)
		}
		if string(out) != value {
			t.Errorf("shellQuote(%q) came back as %q", value, out)
		}
	}
}

func TestExportPrefixSetsEveryVariable(t *testing.T) {
	env := map[string]string{}
	script := ""
	for i, value := range trickyValues {
		name := "V" + string(rune('A'+i))
		env[name] = value
		script += `printf '%s\0' "$` + name + `"; `
	}
	prefix := exportPrefix(env)
	if !strings.HasPrefix(prefix, "export VA=''\nexport VB='plain'\n") {
		t.Errorf("prefix is not sorted export lines: %q", prefix)
	}
	out, err := exec.Command("/bin/sh", "-c", prefix+script).Output()
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Split(strings.TrimSuffix(string(out), "\x00"), "\x00")
	if len(got) != len(trickyValues) {
		t.Fatalf("got %d values, want %d: %q", len(got), len(trickyValues), got)
	}
	for i, value := range trickyValues {
		if got[i] != value {
			t.Errorf("variable %d: got %q, want %q", i, got[i], value)
		}
	}
}

func runLocalForTest(t *testing.T, ctx context.Context, in *commandInputs, command string, prev *runResult) (runResult, error) {
	t.Helper()
	p := newCommandProvider(nil)
	if in.Type == "" {
		in.Type = localCommandType
	}
	if in.Logging == "" {
		in.Logging = defaultLogging
	}
	return p.run(ctx, "urn:pulumi:test::test::command:local:Command::t", in, "create", command, prev)
}

func TestLocalCapturesOutputs(t *testing.T) {
	stdin := "from stdin"
	dir := t.TempDir()
	in := &commandInputs{
		Environment: map[string]string{"GREETING": "it's me"},
		Stdin:       &stdin, Dir: dir, AddPreviousOutputInEnv: true,
	}
	res, err := runLocalForTest(t, context.Background(), in,
		`echo "$GREETING"; cat; echo; pwd; echo "prev=$PULUMI_COMMAND_STDOUT"; echo oops >&2`,
		&runResult{Stdout: "old out"})
	if err != nil {
		t.Fatal(err)
	}
	want := "it's me\nfrom stdin\n" + dir + "\nprev=old out"
	if res.Stdout != want || res.Stderr != "oops" {
		t.Errorf("got stdout %q stderr %q, want %q and \"oops\"", res.Stdout, res.Stderr, want)
	}
}

func TestLocalWithoutPreviousOutputInEnv(t *testing.T) {
	in := &commandInputs{AddPreviousOutputInEnv: false}
	res, err := runLocalForTest(t, context.Background(), in, `echo "[${PULUMI_COMMAND_STDOUT-unset}]"`,
		&runResult{Stdout: "old"})
	if err != nil || res.Stdout != "[unset]" {
		t.Errorf("got %q, %v", res.Stdout, err)
	}
}

func TestLocalInterpreter(t *testing.T) {
	in := &commandInputs{Interpreter: []string{"/bin/sh", "-c", `echo "args: $0 $*"; eval "$1"`, "zero"}}
	res, err := runLocalForTest(t, context.Background(), in, "echo from-eval", nil)
	if err != nil || res.Stdout != "args: zero echo from-eval\nfrom-eval" {
		t.Errorf("got %q, %v", res.Stdout, err)
	}
}

func TestLocalFailureCarriesStatusAndTail(t *testing.T) {
	script := `i=0; while [ $i -lt 50 ]; do echo "line $i"; i=$((i+1)); done; echo "went wrong" >&2; exit 3`
	res, err := runLocalForTest(t, context.Background(), &commandInputs{}, script, nil)
	if err == nil {
		t.Fatal("a failing command succeeded")
	}
	msg := err.Error()
	for _, want := range []string{"local: create command failed: exit status 3", "line 49", "went wrong"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q lacks %q", msg, want)
		}
	}
	if strings.Contains(msg, "line 10\n") {
		t.Errorf("error repeats more than the tail: %q", msg)
	}
	if !strings.HasSuffix(res.Stdout, "line 49") {
		t.Errorf("stdout not captured: %q", res.Stdout)
	}
}

func TestLocalMissingDir(t *testing.T) {
	_, err := runLocalForTest(t, context.Background(), &commandInputs{Dir: "/nonexistent/dir"}, "true", nil)
	if err == nil || !strings.Contains(err.Error(), `dir "/nonexistent/dir" is not an existing directory`) {
		t.Errorf("got %v", err)
	}
}

// A timeout kills the whole process group, including children that keep the pipes open.
func TestLocalTimeoutKillsProcessGroup(t *testing.T) {
	marker := filepath.Join(t.TempDir(), "survived")
	p := newCommandProvider(nil)
	ctx, cancel := p.opContext(context.Background(), 0.5)
	defer cancel()
	start := time.Now()
	_, err := runLocalForTest(t, ctx, &commandInputs{}, "(sleep 3; touch "+marker+") & sleep 30", nil)
	if err == nil || !strings.Contains(err.Error(), "create command timed out after 500ms") {
		t.Fatalf("got %v", err)
	}
	if elapsed := time.Since(start); elapsed > 3*time.Second {
		t.Errorf("took %s to stop", elapsed)
	}
	time.Sleep(3500 * time.Millisecond)
	if _, err := os.Stat(marker); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a child of the timed-out command survived")
	}
}

func TestCancelStopsRunningCommands(t *testing.T) {
	p := newCommandProvider(nil)
	ctx, cancel := p.opContext(context.Background(), 0)
	defer cancel()
	time.AfterFunc(300*time.Millisecond, func() { _, _ = p.Cancel(context.Background(), nil) })
	_, err := p.run(ctx, "urn:x", &commandInputs{Type: localCommandType, Logging: "none"}, "delete", "sleep 30", nil)
	if err == nil || !strings.Contains(err.Error(), "delete command was cancelled") {
		t.Errorf("got %v", err)
	}
}

func TestOutputStreamLogsLines(t *testing.T) {
	var lines []string
	s := newOutputStream(func(l string) { lines = append(lines, l) })
	_, _ = s.Write([]byte("one\r\ntw"))
	_, _ = s.Write([]byte("o\n\nthree"))
	s.flush()
	if got := strings.Join(lines, "|"); got != "one|two||three" {
		t.Errorf("lines = %q", got)
	}
	if s.String() != "one\r\ntwo\n\nthree" {
		t.Errorf("captured %q", s.String())
	}
	if trimNewline("a\n\n") != "a\n" || trimNewline("a\r\n") != "a" {
		t.Errorf("trimNewline removes more than one newline")
	}
}
