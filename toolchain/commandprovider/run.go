package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/pulumi/pulumi/sdk/v3/go/common/diag"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi/provider"
)

// Environment variables that carry the previous run's outputs.
const (
	envPreviousStdout = "PULUMI_COMMAND_STDOUT"
	envPreviousStderr = "PULUMI_COMMAND_STDERR"
)

// How much of a failed command's output its error message repeats.
const (
	tailLines = 20
	tailBytes = 4096
)

// runResult is what a command printed, each with one trailing newline removed.
type runResult struct {
	Stdout string
	Stderr string
}

// exitError is a command that ran and ended unsuccessfully.
type exitError struct {
	status int    // exit status, -1 if killed by a signal
	signal string // signal name, if killed by one
}

func (e *exitError) Error() string {
	if e.signal != "" {
		return "killed by signal " + e.signal
	}
	return fmt.Sprintf("exit status %d", e.status)
}

// runner runs one command of a resource: locally or over SSH.
type runner func(ctx context.Context, in *commandInputs, command string, env map[string]string,
	stdout, stderr *outputStream) error

// run runs `command` (the resource's `op` command) and returns its outputs. prev holds the
// outputs of the previous run, if there was one.
func (p *commandProvider) run(ctx context.Context, urn resource.URN, in *commandInputs, op, command string,
	prev *runResult,
) (runResult, error) {
	env := commandEnv(in, prev)
	logger := newEngineLogger(p.host, urn)
	stdout := newOutputStream(logger.lineFunc(in.Logging == "stdout" || in.Logging == "stdoutAndStderr"))
	stderr := newOutputStream(logger.lineFunc(in.Logging == "stderr" || in.Logging == "stdoutAndStderr"))
	var err error
	if in.Type == remoteCommandType {
		err = runRemote(ctx, in, command, env, stdout, stderr)
	} else {
		err = runLocal(ctx, in, command, env, stdout, stderr)
	}
	stdout.flush()
	stderr.flush()
	logger.close()
	res := runResult{Stdout: trimNewline(stdout.String()), Stderr: trimNewline(stderr.String())}
	if err != nil {
		return res, describeFailure(ctx, in, op, err, res)
	}
	return res, nil
}

// commandEnv returns the variables a command gets on top of its inherited environment.
func commandEnv(in *commandInputs, prev *runResult) map[string]string {
	env := map[string]string{}
	for k, v := range in.Environment {
		env[k] = v
	}
	if prev != nil && in.AddPreviousOutputInEnv {
		env[envPreviousStdout] = prev.Stdout
		env[envPreviousStderr] = prev.Stderr
	}
	return env
}

// where names the place a command runs, for messages.
func where(in *commandInputs) string {
	if in.Connection != nil {
		return "remote " + in.Connection.describe()
	}
	return "local"
}

// describeFailure turns a command's error into the error the engine shows: what failed and
// why, and the last lines of what it printed.
func describeFailure(ctx context.Context, in *commandInputs, op string, err error, res runResult) error {
	var msg string
	var exit *exitError
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		msg = fmt.Sprintf("%s: %s command %v; raise the resource's custom_timeouts or make "+
			"the command faster", where(in), op, context.Cause(ctx))
	case ctx.Err() != nil:
		msg = fmt.Sprintf("%s: %s command was cancelled", where(in), op)
	case errors.As(err, &exit):
		msg = fmt.Sprintf("%s: %s command failed: %v", where(in), op, exit)
	default:
		msg = fmt.Sprintf("%s: %s command could not run: %v", where(in), op, err)
	}
	if t := tail(res.Stdout); t != "" {
		msg += "\n--- stdout (last lines) ---\n" + t
	}
	if t := tail(res.Stderr); t != "" {
		msg += "\n--- stderr (last lines) ---\n" + t
	}
	return errors.New(msg)
}

// tail returns at most the last tailLines lines and tailBytes bytes of s.
func tail(s string) string {
	s = strings.TrimRight(s, "\n")
	if len(s) > tailBytes {
		s = s[len(s)-tailBytes:]
		if i := strings.IndexByte(s, '\n'); i >= 0 {
			s = s[i+1:]
		}
	}
	lines := strings.Split(s, "\n")
	if len(lines) > tailLines {
		lines = lines[len(lines)-tailLines:]
	}
	return strings.Join(lines, "\n")
}

func trimNewline(s string) string {
	s = strings.TrimSuffix(s, "\n")
	return strings.TrimSuffix(s, "\r")
}

// ---------------------------------------------------------------------------------------
// Output capture

// maxLogLine is the longest line logged whole; longer ones are logged in pieces.
const maxLogLine = 16 * 1024

// outputStream captures everything written to it and passes complete lines to a log
// function (if any).
type outputStream struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	partial []byte
	log     func(string)
}

func newOutputStream(log func(string)) *outputStream {
	return &outputStream{log: log}
}

func (s *outputStream) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.buf.Write(p)
	if s.log == nil {
		return len(p), nil
	}
	s.partial = append(s.partial, p...)
	for {
		var line, rest []byte
		if i := bytes.IndexByte(s.partial, '\n'); i >= 0 {
			line, rest = s.partial[:i], s.partial[i+1:]
		} else if len(s.partial) >= maxLogLine {
			line, rest = s.partial[:maxLogLine], s.partial[maxLogLine:]
		} else {
			break
		}
		s.log(strings.TrimRight(string(line), "\r"))
		s.partial = append(make([]byte, 0, len(rest)), rest...)
	}
	return len(p), nil
}

// flush logs a last line that did not end in a newline.
func (s *outputStream) flush() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.log != nil && len(s.partial) > 0 {
		s.log(strings.TrimRight(string(s.partial), "\r"))
	}
	s.partial = nil
}

func (s *outputStream) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

// engineLogger sends a command's output lines to the engine as status messages of the
// resource, from a goroutine of its own so that a slow engine never stalls the command.
type engineLogger struct {
	host  *provider.HostClient
	urn   resource.URN
	lines chan string
	done  chan struct{}
}

func newEngineLogger(host *provider.HostClient, urn resource.URN) *engineLogger {
	l := &engineLogger{host: host, urn: urn, lines: make(chan string, 1024), done: make(chan struct{})}
	go l.loop()
	return l
}

func (l *engineLogger) loop() {
	defer close(l.done)
	for line := range l.lines {
		if l.host == nil {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_ = l.host.LogStatus(ctx, diag.Info, l.urn, line)
		cancel()
	}
}

// lineFunc returns the function an outputStream logs lines with (nil when disabled).
func (l *engineLogger) lineFunc(enabled bool) func(string) {
	if !enabled || l.host == nil {
		return nil
	}
	return func(line string) {
		if strings.TrimSpace(line) == "" {
			return
		}
		select {
		case l.lines <- line:
		default: // the engine is behind: drop the log line (the output is still captured)
		}
	}
}

// close waits until every queued line has been sent.
func (l *engineLogger) close() {
	close(l.lines)
	<-l.done
}
