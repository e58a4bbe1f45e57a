package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource/archive"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource/asset"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource/plugin"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
)

// The test server runs commands with /bin/sh on this host, so "remote" paths are paths in
// a temporary directory here.

func copyForTest(t *testing.T, conn *connection, in *copyInputs) error {
	t.Helper()
	in.Connection = conn
	p := newCommandProvider(nil)
	ctx, cancel := p.opContext(context.Background(), 60)
	defer cancel()
	return p.copyToRemote(ctx, "urn:pulumi:test::test::command:remote:CopyToRemote::c", in)
}

// writeFile writes content to path (creating its directory) with mode, and returns it.
func writeFile(t *testing.T, path string, content []byte, mode fs.FileMode) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, content, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
	return path
}

func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// pathAsset is a FileAsset with the hash the engine would record.
func pathAsset(t *testing.T, path string) *asset.Asset {
	t.Helper()
	a, err := asset.FromPath(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.EnsureHash(); err != nil {
		t.Fatal(err)
	}
	return a
}

func checkRemoteFile(t *testing.T, path string, want []byte, mode fs.FileMode) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("the copy is missing: %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s: %d bytes differ from the %d expected", path, len(got), len(want))
	}
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != mode {
		t.Errorf("%s: mode %v, want %v", path, info.Mode().Perm(), mode)
	}
}

// checkNoTempFiles fails if an upload left a temporary file in dir.
func checkNoTempFiles(t *testing.T, dir string) {
	t.Helper()
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && strings.Contains(d.Name(), ".upload-") {
			t.Errorf("temporary file left behind: %s", p)
		}
		return nil
	})
}

func TestCopyFileAssetCreatesParentsAndKeepsMode(t *testing.T) {
	keys := newTestKeys(t)
	conn := startTestServer(t, keys).connection(keys)
	local, remote := t.TempDir(), t.TempDir()
	v1 := randomBytes(t, 3<<20+17)
	src := writeFile(t, filepath.Join(local, "tool"), v1, 0o700)
	dest := filepath.Join(remote, "opt", "bin", "tool")
	if err := copyForTest(t, conn, &copyInputs{Asset: pathAsset(t, src), RemotePath: dest}); err != nil {
		t.Fatal(err)
	}
	checkRemoteFile(t, dest, v1, 0o755)

	// A new version replaces the file (a new inode: a running binary is not rewritten).
	before, _ := os.Stat(dest)
	v2 := []byte("version 2\n")
	writeFile(t, src, v2, 0o600)
	if err := copyForTest(t, conn, &copyInputs{Asset: pathAsset(t, src), RemotePath: dest}); err != nil {
		t.Fatal(err)
	}
	checkRemoteFile(t, dest, v2, 0o644)
	after, _ := os.Stat(dest)
	if os.SameFile(before, after) {
		t.Errorf("the file was rewritten in place instead of replaced")
	}
	checkNoTempFiles(t, remote)
}

func TestCopyFileIntoExistingDirectory(t *testing.T) {
	keys := newTestKeys(t)
	conn := startTestServer(t, keys).connection(keys)
	local, remote := t.TempDir(), t.TempDir()
	src := writeFile(t, filepath.Join(local, "app.conf"), []byte("a=1\n"), 0o644)
	if err := copyForTest(t, conn, &copyInputs{Asset: pathAsset(t, src), RemotePath: remote}); err != nil {
		t.Fatal(err)
	}
	checkRemoteFile(t, filepath.Join(remote, "app.conf"), []byte("a=1\n"), 0o644)
	// A remote path ending in / is a directory, created if missing.
	dir := filepath.Join(remote, "new") + "/"
	if err := copyForTest(t, conn, &copyInputs{Asset: pathAsset(t, src), RemotePath: dir}); err != nil {
		t.Fatal(err)
	}
	checkRemoteFile(t, filepath.Join(remote, "new", "app.conf"), []byte("a=1\n"), 0o644)
}

func TestCopyRefusesAFileThatChangedSinceItWasHashed(t *testing.T) {
	keys := newTestKeys(t)
	conn := startTestServer(t, keys).connection(keys)
	local, remote := t.TempDir(), t.TempDir()
	src := writeFile(t, filepath.Join(local, "tool"), []byte("old"), 0o644)
	a := pathAsset(t, src)
	writeFile(t, src, []byte("new"), 0o644)
	dest := writeFile(t, filepath.Join(remote, "tool"), []byte("remote"), 0o644)
	err := copyForTest(t, conn, &copyInputs{Asset: a, RemotePath: dest})
	if err == nil || !strings.Contains(err.Error(), "changed after Pulumi read it") {
		t.Fatalf("got %v", err)
	}
	checkRemoteFile(t, dest, []byte("remote"), 0o644)
	checkNoTempFiles(t, remote)
}

func TestCopyStringAsset(t *testing.T) {
	keys := newTestKeys(t)
	conn := startTestServer(t, keys).connection(keys)
	remote := t.TempDir()
	dest := filepath.Join(remote, "etc", "motd")
	text := "it's \"quoted\" $HOME `x`\n"
	if err := copyForTest(t, conn, &copyInputs{Asset: mustText(t, text), RemotePath: dest}); err != nil {
		t.Fatal(err)
	}
	checkRemoteFile(t, dest, []byte(text), 0o644)
	err := copyForTest(t, conn, &copyInputs{Asset: mustText(t, text), RemotePath: remote})
	if err == nil || !strings.Contains(err.Error(), "is a directory; for a StringAsset") {
		t.Errorf("text onto a directory: got %v", err)
	}
}

func TestCopyDirectoryArchive(t *testing.T) {
	keys := newTestKeys(t)
	conn := startTestServer(t, keys).connection(keys)
	local, remote := t.TempDir(), t.TempDir()
	top := filepath.Join(local, "top")
	writeFile(t, filepath.Join(top, "a.txt"), []byte("a"), 0o644)
	big := randomBytes(t, 1<<20)
	writeFile(t, filepath.Join(top, "sub", "deeper", "run.sh"), big, 0o755)
	if err := os.MkdirAll(filepath.Join(top, "empty"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("a.txt", filepath.Join(top, "link")); err != nil {
		t.Fatal(err)
	}
	dir := &archive.Archive{Sig: archive.ArchiveSig, Path: top}

	// Without a trailing slash the directory goes into the remote path under its own name.
	if err := copyForTest(t, conn, &copyInputs{Archive: dir, RemotePath: filepath.Join(remote, "one")}); err != nil {
		t.Fatal(err)
	}
	base := filepath.Join(remote, "one", "top")
	checkRemoteFile(t, filepath.Join(base, "a.txt"), []byte("a"), 0o644)
	checkRemoteFile(t, filepath.Join(base, "sub", "deeper", "run.sh"), big, 0o755)
	checkRemoteFile(t, filepath.Join(base, "link"), []byte("a"), 0o644)
	if info, err := os.Stat(filepath.Join(base, "empty")); err != nil || !info.IsDir() {
		t.Errorf("the empty directory was not created: %v", err)
	}

	// With a trailing slash its contents go into the remote path.
	slash := &archive.Archive{Sig: archive.ArchiveSig, Path: top + "/"}
	if err := copyForTest(t, conn, &copyInputs{Archive: slash, RemotePath: filepath.Join(remote, "two")}); err != nil {
		t.Fatal(err)
	}
	checkRemoteFile(t, filepath.Join(remote, "two", "sub", "deeper", "run.sh"), big, 0o755)

	// Not onto a file.
	file := writeFile(t, filepath.Join(remote, "file"), []byte("x"), 0o644)
	err := copyForTest(t, conn, &copyInputs{Archive: dir, RemotePath: file})
	if err == nil || !strings.Contains(err.Error(), "exists and is not a directory") {
		t.Errorf("directory onto a file: got %v", err)
	}
	checkNoTempFiles(t, remote)
}

func TestCopyArchiveOfAFileCopiesItAsIs(t *testing.T) {
	keys := newTestKeys(t)
	conn := startTestServer(t, keys).connection(keys)
	local, remote := t.TempDir(), t.TempDir()
	tgz := writeFile(t, filepath.Join(local, "bundle.tgz"), []byte("not really gzip"), 0o644)
	a := &archive.Archive{Sig: archive.ArchiveSig, Path: tgz}
	if err := copyForTest(t, conn, &copyInputs{Archive: a, RemotePath: filepath.Join(remote, "b.tgz")}); err != nil {
		t.Fatal(err)
	}
	checkRemoteFile(t, filepath.Join(remote, "b.tgz"), []byte("not really gzip"), 0o644)
}

func TestCopyRefusesSpecialFilesBeforeWriting(t *testing.T) {
	keys := newTestKeys(t)
	conn := startTestServer(t, keys).connection(keys)
	local, remote := t.TempDir(), t.TempDir()
	top := filepath.Join(local, "top")
	writeFile(t, filepath.Join(top, "a.txt"), []byte("a"), 0o644)
	if err := syscall.Mkfifo(filepath.Join(top, "fifo"), 0o644); err != nil {
		t.Skipf("cannot make a FIFO: %v", err)
	}
	a := &archive.Archive{Sig: archive.ArchiveSig, Path: top}
	err := copyForTest(t, conn, &copyInputs{Archive: a, RemotePath: remote})
	if err == nil || !strings.Contains(err.Error(), "neither a regular file nor a directory") {
		t.Fatalf("got %v", err)
	}
	if _, err := os.Stat(filepath.Join(remote, "top")); err == nil {
		t.Errorf("something was copied before the special file was found")
	}
}

func TestCopyErrors(t *testing.T) {
	keys := newTestKeys(t)
	srv := startTestServer(t, keys)
	conn := srv.connection(keys)
	local, remote := t.TempDir(), t.TempDir()
	src := writeFile(t, filepath.Join(local, "tool"), []byte("x"), 0o644)
	blocker := writeFile(t, filepath.Join(remote, "blocker"), []byte("x"), 0o644)

	err := copyForTest(t, conn, &copyInputs{Asset: pathAsset(t, src), RemotePath: filepath.Join(blocker, "tool")})
	want := "copy to root@" + srv.addr + ":" + filepath.Join(blocker, "tool") + ": writing "
	if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "exit status 1") {
		t.Errorf("parent is a file: got %v, want %q...", err, want)
	}

	err = copyForTest(t, conn, &copyInputs{Asset: &asset.Asset{Sig: asset.AssetSig, Path: local}, RemotePath: remote})
	if err == nil || !strings.Contains(err.Error(), "use pulumi.FileArchive") {
		t.Errorf("FileAsset of a directory: got %v", err)
	}

	missing := filepath.Join(local, "missing")
	err = copyForTest(t, conn, &copyInputs{Asset: &asset.Asset{Sig: asset.AssetSig, Path: missing}, RemotePath: remote})
	if err == nil || !strings.Contains(err.Error(), "cannot read the source") {
		t.Errorf("missing source: got %v", err)
	}
	checkNoTempFiles(t, remote)
}

// failingReader returns some bytes, then an error.
type failingReader struct{ data []byte }

func (f *failingReader) Read(b []byte) (int, error) {
	if len(f.data) == 0 {
		return 0, errors.New("disk on fire")
	}
	n := copy(b, f.data)
	f.data = f.data[n:]
	return n, nil
}

// A source that ends early never replaces the remote file.
func TestShortUploadLeavesTheOldFile(t *testing.T) {
	keys := newTestKeys(t)
	srv := startTestServer(t, keys)
	conn := srv.connection(keys)
	remote := t.TempDir()
	dest := writeFile(t, filepath.Join(remote, "tool"), []byte("old"), 0o644)
	client, err := dial(context.Background(), conn)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	h := &remoteHost{client: client, conn: conn}
	c := &copier{host: h, target: "t"}
	p := c.startProgress(1000, 1)
	r := p.reader(&failingReader{data: make([]byte, 400)}, nil)
	err = h.upload(r, 1000, dest, plainFileMode, nil)
	p.finish(context.Background(), err)
	if err == nil || !strings.Contains(err.Error(), "received 400 of 1000 bytes") {
		t.Errorf("got %v", err)
	}
	if r.err == nil || r.err.Error() != "disk on fire" {
		t.Errorf("read error not kept: %v", r.err)
	}
	checkRemoteFile(t, dest, []byte("old"), 0o644)
	checkNoTempFiles(t, remote)
}

// Check, Create, Diff and Delete through the RPC interface, as the engine calls them.
func TestCopyToRemoteThroughRPC(t *testing.T) {
	keys := newTestKeys(t)
	srv := startTestServer(t, keys)
	conn := srv.connection(keys)
	local, remote := t.TempDir(), t.TempDir()
	src := writeFile(t, filepath.Join(local, "tool"), []byte("#!/bin/sh\necho hi\n"), 0o755)
	dest := filepath.Join(remote, "bin", "tool")
	props := resource.PropertyMap{
		"source":     resource.NewAssetProperty(pathAsset(t, src)),
		"remotePath": str(dest),
		"connection": secret(obj("host", str("127.0.0.1"), "port", resource.NewNumberProperty(float64(conn.Port)),
			"privateKey", str(conn.PrivateKey), "hostKey", str(conn.HostKey))),
	}
	rpcProps, err := plugin.MarshalProperties(props, rpcOptions("test"))
	if err != nil {
		t.Fatal(err)
	}
	urn := "urn:pulumi:test::test::command:remote:CopyToRemote::c"
	p := newCommandProvider(nil)
	ctx := context.Background()
	checked, err := p.Check(ctx, &pulumirpc.CheckRequest{Urn: urn, News: rpcProps})
	if err != nil || len(checked.GetFailures()) > 0 {
		t.Fatalf("check: %v %v", err, checked.GetFailures())
	}
	created, err := p.Create(ctx, &pulumirpc.CreateRequest{Urn: urn, Properties: checked.GetInputs()})
	if err != nil {
		t.Fatal(err)
	}
	checkRemoteFile(t, dest, []byte("#!/bin/sh\necho hi\n"), 0o755)
	outs, err := unmarshal(created.GetProperties(), "outputs")
	if err != nil {
		t.Fatal(err)
	}
	if !outs["source"].IsAsset() || outs["source"].AssetValue().Hash != props["source"].AssetValue().Hash ||
		outs["remotePath"].StringValue() != dest || !outs["connection"].IsSecret() {
		t.Errorf("outputs are not the inputs: %v", outs)
	}
	diff, err := p.Diff(ctx, &pulumirpc.DiffRequest{Urn: urn, Olds: created.GetProperties(),
		OldInputs: checked.GetInputs(), News: checked.GetInputs()})
	if err != nil || diff.GetChanges() != pulumirpc.DiffResponse_DIFF_NONE {
		t.Errorf("diff with itself: %v %v", diff, err)
	}
	if _, err := p.Delete(ctx, &pulumirpc.DeleteRequest{Urn: urn, Properties: created.GetProperties()}); err != nil {
		t.Errorf("delete: %v", err)
	}
	checkRemoteFile(t, dest, []byte("#!/bin/sh\necho hi\n"), 0o755) // delete leaves the file
}

func TestFormatBytes(t *testing.T) {
	cases := map[int64]string{0: "0 B", 1023: "1023 B", 1536: "1.5 KiB", 120 << 20: "120.0 MiB", 3 << 30: "3.0 GiB"}
	for n, want := range cases {
		if got := formatBytes(n); got != want {
			t.Errorf("formatBytes(%d) = %q, want %q", n, got, want)
		}
	}
}
