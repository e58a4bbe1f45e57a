package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// testServer is a tiny SSH server on 127.0.0.1 that runs "exec" requests with /bin/sh and
// forwards "direct-tcpip" channels (so that it can be a jump host too). Like a default
// sshd, it refuses "env" requests.
type testServer struct {
	addr     string
	hostKey  ssh.PublicKey
	listener net.Listener
	mu       sync.Mutex
	envAsked int
}

type testKeys struct {
	clientPEM string
	clientPub ssh.PublicKey
}

func newTestKeys(t *testing.T) testKeys {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return testKeys{clientPEM: string(pem.EncodeToMemory(block)), clientPub: sshPub}
}

func startTestServer(t *testing.T, keys testKeys) *testServer {
	t.Helper()
	_, hostPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(hostPriv)
	if err != nil {
		t.Fatal(err)
	}
	config := &ssh.ServerConfig{
		PublicKeyCallback: func(meta ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
			if meta.User() == "root" && string(key.Marshal()) == string(keys.clientPub.Marshal()) {
				return nil, nil
			}
			return nil, fmt.Errorf("unknown key for %s", meta.User())
		},
	}
	config.AddHostKey(signer)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &testServer{addr: ln.Addr().String(), hostKey: signer.PublicKey(), listener: ln}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go s.serve(conn, config)
		}
	}()
	return s
}

func (s *testServer) serve(conn net.Conn, config *ssh.ServerConfig) {
	_, chans, reqs, err := ssh.NewServerConn(conn, config)
	if err != nil {
		_ = conn.Close()
		return
	}
	go ssh.DiscardRequests(reqs)
	for nc := range chans {
		switch nc.ChannelType() {
		case "session":
			ch, creqs, err := nc.Accept()
			if err == nil {
				go s.session(ch, creqs)
			}
		case "direct-tcpip":
			var target struct {
				Host       string
				Port       uint32
				OriginHost string
				OriginPort uint32
			}
			if err := ssh.Unmarshal(nc.ExtraData(), &target); err != nil {
				_ = nc.Reject(ssh.ConnectionFailed, "bad request")
				continue
			}
			up, err := net.Dial("tcp", net.JoinHostPort(target.Host, strconv.Itoa(int(target.Port))))
			if err != nil {
				_ = nc.Reject(ssh.ConnectionFailed, err.Error())
				continue
			}
			ch, creqs, err := nc.Accept()
			if err != nil {
				_ = up.Close()
				continue
			}
			go ssh.DiscardRequests(creqs)
			go func() { _, _ = io.Copy(ch, up); _ = ch.Close() }()
			go func() { _, _ = io.Copy(up, ch); _ = up.Close() }()
		default:
			_ = nc.Reject(ssh.UnknownChannelType, "unsupported")
		}
	}
}

func (s *testServer) session(ch ssh.Channel, reqs <-chan *ssh.Request) {
	defer ch.Close()
	for req := range reqs {
		switch req.Type {
		case "env":
			s.mu.Lock()
			s.envAsked++
			s.mu.Unlock()
			_ = req.Reply(false, nil)
		case "exec":
			var payload struct{ Command string }
			if err := ssh.Unmarshal(req.Payload, &payload); err != nil {
				_ = req.Reply(false, nil)
				continue
			}
			_ = req.Reply(true, nil)
			cmd := exec.Command("/bin/sh", "-c", payload.Command)
			cmd.Stdin = ch
			cmd.Stdout = ch
			cmd.Stderr = ch.Stderr()
			status := 0
			if err := cmd.Run(); err != nil {
				var exit *exec.ExitError
				if errors.As(err, &exit) {
					status = exit.ExitCode()
				} else {
					status = 255
				}
			}
			_, _ = ch.SendRequest("exit-status", false, ssh.Marshal(struct{ Status uint32 }{uint32(status)}))
			return
		default:
			_ = req.Reply(false, nil)
		}
	}
}

func (s *testServer) connection(keys testKeys) *connection {
	host, port, _ := net.SplitHostPort(s.addr)
	p, _ := strconv.Atoi(port)
	return &connection{
		Host: host, Port: p, User: "root", PrivateKey: keys.clientPEM,
		HostKey:        string(ssh.MarshalAuthorizedKey(s.hostKey)),
		DialErrorLimit: 3, PerDialTimeout: 5,
	}
}

func runRemoteForTest(t *testing.T, conn *connection, env map[string]string, command string) (runResult, error) {
	t.Helper()
	p := newCommandProvider(nil)
	in := &commandInputs{Type: remoteCommandType, Connection: conn, Environment: env,
		Logging: defaultLogging, AddPreviousOutputInEnv: true}
	ctx, cancel := p.opContext(context.Background(), 30)
	defer cancel()
	return p.run(ctx, "urn:pulumi:test::test::command:remote:Command::t", in, "create", command,
		&runResult{Stdout: "previous 'out'"})
}

func TestRemoteRunsCommandWithEnvironment(t *testing.T) {
	keys := newTestKeys(t)
	srv := startTestServer(t, keys)
	env := map[string]string{"GREETING": `it's "me" $HOME`, "EMPTY": ""}
	res, err := runRemoteForTest(t, srv.connection(keys), env,
		`printf '%s|%s|%s\n' "$GREETING" "$EMPTY" "$PULUMI_COMMAND_STDOUT"; echo err >&2`)
	if err != nil {
		t.Fatal(err)
	}
	if want := `it's "me" $HOME||previous 'out'`; res.Stdout != want || res.Stderr != "err" {
		t.Errorf("stdout %q stderr %q, want %q and err", res.Stdout, res.Stderr, want)
	}
}

func TestRemoteExitStatus(t *testing.T) {
	keys := newTestKeys(t)
	srv := startTestServer(t, keys)
	_, err := runRemoteForTest(t, srv.connection(keys), nil, "echo broken >&2; exit 7")
	want := "remote root@" + srv.addr + ": create command failed: exit status 7"
	if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "broken") {
		t.Errorf("got %v, want %q and the stderr tail", err, want)
	}
}

func TestRemoteHostKeyMismatchFailsAtOnce(t *testing.T) {
	keys := newTestKeys(t)
	srv := startTestServer(t, keys)
	conn := srv.connection(keys)
	conn.HostKey = string(ssh.MarshalAuthorizedKey(keys.clientPub)) // some other ed25519 key
	conn.DialErrorLimit = 10
	start := time.Now()
	_, err := runRemoteForTest(t, conn, nil, "true")
	want := fmt.Sprintf("host key mismatch for %s: expected ssh-ed25519 %s, got ssh-ed25519 %s",
		srv.addr, ssh.FingerprintSHA256(keys.clientPub), ssh.FingerprintSHA256(srv.hostKey))
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("got %v, want %q", err, want)
	}
	if time.Since(start) > 2*time.Second {
		t.Errorf("a host key mismatch was retried")
	}
}

func TestRemoteWithoutHostKeyAcceptsAnyKey(t *testing.T) {
	keys := newTestKeys(t)
	srv := startTestServer(t, keys)
	conn := srv.connection(keys)
	conn.HostKey = ""
	if res, err := runRemoteForTest(t, conn, nil, "echo ok"); err != nil || res.Stdout != "ok" {
		t.Errorf("got %q, %v", res.Stdout, err)
	}
}

func TestRemoteThroughProxy(t *testing.T) {
	keys := newTestKeys(t)
	jump := startTestServer(t, keys)
	target := startTestServer(t, keys)
	conn := target.connection(keys)
	conn.Proxy = jump.connection(keys)
	if res, err := runRemoteForTest(t, conn, nil, "echo via-proxy"); err != nil || res.Stdout != "via-proxy" {
		t.Errorf("got %q, %v", res.Stdout, err)
	}
}

func TestDialGivesUpNamingTheTarget(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close() // nothing listens there now
	host, port, _ := net.SplitHostPort(addr)
	p, _ := strconv.Atoi(port)
	keys := newTestKeys(t)
	conn := &connection{Host: host, Port: p, User: "admin", PrivateKey: keys.clientPEM,
		DialErrorLimit: 2, PerDialTimeout: 1}
	_, err = dial(context.Background(), conn)
	want := fmt.Sprintf("cannot connect to admin@%s over SSH after 2 attempts (dialErrorLimit 2); last error: ", addr)
	if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("got %v, want %q ... connection refused", err, want)
	}
}

func TestWrongUserKeyIsRetriedThenReported(t *testing.T) {
	keys := newTestKeys(t)
	srv := startTestServer(t, keys)
	conn := srv.connection(newTestKeys(t)) // a key the server does not know
	conn.DialErrorLimit = 2
	_, err := dial(context.Background(), conn)
	if err == nil || !strings.Contains(err.Error(), "after 2 attempts") ||
		!strings.Contains(err.Error(), "unable to authenticate") {
		t.Errorf("got %v", err)
	}
}

func TestNoAuthenticationIsAConfigError(t *testing.T) {
	t.Setenv("SSH_AUTH_SOCK", "")
	_, err := dial(context.Background(), &connection{Host: "127.0.0.1", Port: 1, User: "root", DialErrorLimit: 5})
	if err == nil || !strings.Contains(err.Error(), "no way to log in") {
		t.Errorf("got %v", err)
	}
}
