package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

// Backoff between dial attempts: first wait, and the longest.
const (
	firstDialBackoff = 250 * time.Millisecond
	maxDialBackoff   = 5 * time.Second
)

// describe names the target of a connection as user@host:port.
func (c *connection) describe() string {
	return c.User + "@" + c.address()
}

func (c *connection) address() string {
	return net.JoinHostPort(c.Host, strconv.Itoa(c.Port))
}

// configError is a mistake in the connection settings: retrying cannot help.
type configError struct{ err error }

func (e *configError) Error() string { return e.err.Error() }
func (e *configError) Unwrap() error { return e.err }

// hostKeyMismatchError: the server is not the host the program expects.
type hostKeyMismatchError struct {
	addr          string
	expected, got ssh.PublicKey
}

func (e *hostKeyMismatchError) Error() string {
	return fmt.Sprintf("host key mismatch for %s: expected %s %s, got %s %s", e.addr,
		e.expected.Type(), ssh.FingerprintSHA256(e.expected), e.got.Type(), ssh.FingerprintSHA256(e.got))
}

// runRemote connects (see dial) and runs the command with session.Run, so that the remote
// user's login shell runs it. The environment reaches it as `export NAME='value'` lines in
// front of the command: sshd refuses the SSH "env" request unless AcceptEnv allows the name.
func runRemote(ctx context.Context, in *commandInputs, command string, env map[string]string,
	stdout, stderr *outputStream,
) error {
	client, err := dial(ctx, in.Connection)
	if err != nil {
		return err
	}
	defer client.Close()
	session, err := client.NewSession()
	if err != nil {
		return fmt.Errorf("cannot open an SSH session on %s: %w", in.Connection.describe(), err)
	}
	defer session.Close()
	session.Stdout = stdout
	session.Stderr = stderr
	if in.Stdin != nil {
		session.Stdin = strings.NewReader(*in.Stdin)
	}
	stop := context.AfterFunc(ctx, func() {
		_ = session.Signal(ssh.SIGKILL)
		_ = client.Close()
	})
	defer stop()
	err = session.Run(exportPrefix(env) + command)
	var exit *ssh.ExitError
	var missing *ssh.ExitMissingError
	switch {
	case err == nil:
		return nil
	case ctx.Err() != nil:
		return ctx.Err()
	case errors.As(err, &exit):
		if exit.Signal() != "" {
			return &exitError{status: -1, signal: "SIG" + exit.Signal()}
		}
		return &exitError{status: exit.ExitStatus()}
	case errors.As(err, &missing):
		return fmt.Errorf("the command ended without an exit status (was the connection lost?)")
	default:
		return err
	}
}

// exportPrefix returns `export NAME='value'` lines for env, in name order.
func exportPrefix(env map[string]string) string {
	var b strings.Builder
	for _, k := range sortedKeys(env) {
		b.WriteString("export " + k + "=" + shellQuote(env[k]) + "\n")
	}
	return b.String()
}

// shellQuote quotes s for a POSIX shell: inside single quotes nothing is special, and a
// single quote itself is written as '"'"' (end quote, a double-quoted ', reopen).
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'"'"'`) + "'"
}

// sshClient is a connected client plus the jump host it goes through, if any.
type sshClient struct {
	*ssh.Client
	proxy *sshClient
}

func (c *sshClient) Close() error {
	err := c.Client.Close()
	if c.proxy != nil {
		_ = c.proxy.Close()
	}
	return err
}

// dial connects to c (through c.Proxy if set), trying up to dialErrorLimit times (-1: until
// the operation's timeout) with a growing pause in between, each attempt limited to
// perDialTimeout seconds (0: no limit). Host key mismatches and unusable settings are not
// retried.
func dial(ctx context.Context, c *connection) (*sshClient, error) {
	limit := c.DialErrorLimit
	if limit == 0 || limit < -1 {
		limit = 1
	}
	backoff := firstDialBackoff
	for attempt := 1; ; attempt++ {
		client, err := dialOnce(ctx, c)
		if err == nil {
			return client, nil
		}
		var cfgErr *configError
		var mismatch *hostKeyMismatchError
		if errors.As(err, &cfgErr) || errors.As(err, &mismatch) {
			return nil, fmt.Errorf("cannot connect to %s over SSH: %w", c.describe(), err)
		}
		if limit > 0 && attempt >= limit {
			return nil, fmt.Errorf("cannot connect to %s over SSH after %d attempts "+
				"(dialErrorLimit %d); last error: %w", c.describe(), attempt, c.DialErrorLimit, err)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("cannot connect to %s over SSH: gave up after %d attempts "+
				"(%v); last error: %w", c.describe(), attempt, context.Cause(ctx), err)
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, maxDialBackoff)
	}
}

// dialOnce makes one connection attempt.
func dialOnce(ctx context.Context, c *connection) (*sshClient, error) {
	dc, err := newDialConfig(c)
	if err != nil {
		return nil, err
	}
	defer dc.release()
	if c.PerDialTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(c.PerDialTimeout)*time.Second)
		defer cancel()
	}
	var proxy *sshClient
	var conn net.Conn
	if c.Proxy != nil {
		if proxy, err = dialOnce(ctx, c.Proxy); err != nil {
			return nil, fmt.Errorf("proxy %s: %w", c.Proxy.describe(), err)
		}
		conn, err = proxy.DialContext(ctx, "tcp", c.address())
		if err != nil {
			_ = proxy.Close()
			return nil, fmt.Errorf("proxy %s cannot reach %s: %w", c.Proxy.describe(), c.address(), err)
		}
	} else {
		var d net.Dialer
		if conn, err = d.DialContext(ctx, "tcp", c.address()); err != nil {
			return nil, err
		}
	}
	// The SSH handshake must end within the attempt's time too.
	if deadline, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(deadline)
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	sc, chans, reqs, err := ssh.NewClientConn(conn, c.address(), dc.config)
	if !stop() && err == nil {
		_ = sc.Close()
		err = ctx.Err()
	}
	if err != nil {
		_ = conn.Close()
		if proxy != nil {
			_ = proxy.Close()
		}
		if m := dc.mismatch.Load(); m != nil {
			return nil, m
		}
		return nil, err
	}
	_ = conn.SetDeadline(time.Time{})
	return &sshClient{Client: ssh.NewClient(sc, chans, reqs), proxy: proxy}, nil
}

// dialConfig is the SSH client settings of one attempt.
type dialConfig struct {
	config *ssh.ClientConfig
	// set by the host key check when the server's key is not the expected one
	mismatch atomic.Pointer[hostKeyMismatchError]
	release  func() // closes the SSH agent connection, if one was opened
}

// newDialConfig builds the SSH client settings of c: user, authentication and host key check.
func newDialConfig(c *connection) (*dialConfig, error) {
	auth, closeAgent, err := authMethods(c)
	if err != nil {
		return nil, err
	}
	dc := &dialConfig{config: &ssh.ClientConfig{User: c.User, Auth: auth}, release: closeAgent}
	if c.HostKey == "" {
		// Documented behaviour: without connection.hostKey the server's key is not checked.
		dc.config.HostKeyCallback = ssh.InsecureIgnoreHostKey() //nolint:gosec
		return dc, nil
	}
	want, err := parseHostKey(c.HostKey)
	if err != nil {
		closeAgent()
		return nil, &configError{fmt.Errorf("connection.hostKey: %w", err)}
	}
	dc.config.HostKeyAlgorithms = hostKeyAlgorithms(want.Type())
	addr := c.address()
	dc.config.HostKeyCallback = func(_ string, _ net.Addr, got ssh.PublicKey) error {
		if bytes.Equal(got.Marshal(), want.Marshal()) {
			return nil
		}
		m := &hostKeyMismatchError{addr: addr, expected: want, got: got}
		dc.mismatch.Store(m)
		return m
	}
	return dc, nil
}

// hostKeyAlgorithms asks the server for the key of the expected type (a server usually has
// several host keys and would otherwise present the one it prefers).
func hostKeyAlgorithms(keyType string) []string {
	if keyType == ssh.KeyAlgoRSA {
		return []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA}
	}
	return []string{keyType}
}

// authMethods returns the ways to log in, in order: the private key, the SSH agent
// (agentSocketPath, else $SSH_AUTH_SOCK), the password.
func authMethods(c *connection) ([]ssh.AuthMethod, func(), error) {
	var methods []ssh.AuthMethod
	closeAgent := func() {}
	if c.PrivateKey != "" {
		signer, err := parsePrivateKey(c.PrivateKey, c.PrivateKeyPassword)
		if err != nil {
			return nil, nil, &configError{err}
		}
		methods = append(methods, ssh.PublicKeys(signer))
	}
	socket := c.AgentSocketPath
	if socket == "" {
		socket = os.Getenv("SSH_AUTH_SOCK")
	}
	if socket != "" {
		conn, err := net.Dial("unix", socket)
		switch {
		case err == nil:
			methods = append(methods, ssh.PublicKeysCallback(agent.NewClient(conn).Signers))
			closeAgent = func() { _ = conn.Close() }
		case c.AgentSocketPath != "":
			return nil, nil, &configError{fmt.Errorf("connection.agentSocketPath %s: %w", socket, err)}
		}
	}
	if c.Password != "" {
		password := c.Password
		methods = append(methods, ssh.Password(password),
			ssh.KeyboardInteractive(func(_, _ string, questions []string, _ []bool) ([]string, error) {
				answers := make([]string, len(questions))
				for i := range answers {
					answers[i] = password
				}
				return answers, nil
			}))
	}
	if len(methods) == 0 {
		return nil, nil, &configError{fmt.Errorf("no way to log in: set connection.privateKey, " +
			"connection.password or connection.agentSocketPath (or run an SSH agent)")}
	}
	return methods, closeAgent, nil
}

func parsePrivateKey(key, passphrase string) (ssh.Signer, error) {
	signer, err := ssh.ParsePrivateKey([]byte(key))
	var missing *ssh.PassphraseMissingError
	switch {
	case err == nil:
		return signer, nil
	case errors.As(err, &missing) && passphrase == "":
		return nil, fmt.Errorf("connection.privateKey is encrypted: set connection.privateKeyPassword")
	case errors.As(err, &missing):
		signer, err = ssh.ParsePrivateKeyWithPassphrase([]byte(key), []byte(passphrase))
		if err != nil {
			return nil, fmt.Errorf("connection.privateKey cannot be decrypted with "+
				"connection.privateKeyPassword: %w", err)
		}
		return signer, nil
	default:
		return nil, fmt.Errorf("connection.privateKey is not a private key ssh can read: %w", err)
	}
}
