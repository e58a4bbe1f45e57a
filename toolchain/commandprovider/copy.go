package main

// command:remote:CopyToRemote: copies a FileAsset, StringAsset or FileArchive (a local file
// or directory) to a path on a remote host over SSH.
//
// Each file goes through an exec session that runs `cat` into a temporary file next to the
// destination (streamed from the local file, never held in memory), checks the byte count,
// sets the mode, and is then renamed into place, so that a running binary is replaced
// rather than rewritten and an interrupted copy leaves the old file. It needs a POSIX shell
// with cat, wc, mkdir, chmod, mv and rm on the remote host, as any Linux host has.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource/archive"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource/asset"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"golang.org/x/crypto/ssh"
)

// Modes of copied files: executable if the local file has any execute bit.
const (
	plainFileMode      fs.FileMode = 0o644
	executableFileMode fs.FileMode = 0o755
)

// progressInterval is how often a running copy reports its progress.
const progressInterval = 2 * time.Second

// maxMkdirScript bounds one `mkdir -p` script when a directory tree is created (a single
// argument to `sh -c` may not exceed 128 KiB on Linux).
const maxMkdirScript = 32 * 1024

// copyInputs are the known, plain inputs of a CopyToRemote. Exactly one of Asset and
// Archive is set.
type copyInputs struct {
	Connection *connection
	RemotePath string
	Asset      *asset.Asset
	Archive    *archive.Archive
}

// checkSource checks CopyToRemote's `source`: a FileAsset, a StringAsset or a FileArchive.
func (c *checker) checkSource(path string, v resource.PropertyValue) {
	switch {
	case v.IsAsset():
		a := v.AssetValue()
		if a.IsURI() {
			c.fail(path, "a RemoteAsset (%s) cannot be copied; use a FileAsset or a StringAsset", a.URI)
		} else if !a.IsPath() && !a.IsText() {
			c.fail(path, "the asset has neither a path nor a text; use a FileAsset or a StringAsset")
		}
	case v.IsArchive():
		a := v.ArchiveValue()
		if !a.IsPath() {
			c.fail(path, "only a FileArchive (a local directory or file) can be copied, "+
				"not an AssetArchive or a RemoteArchive")
		}
	default:
		c.fail(path, "must be an asset or an archive (FileAsset, StringAsset or FileArchive), not %s",
			v.TypeString())
	}
}

// decodeCopyInputs turns (checked, known) properties into copyInputs.
func decodeCopyInputs(props resource.PropertyMap) (*copyInputs, error) {
	plain := stripSecrets(resource.NewObjectProperty(props)).ObjectValue()
	d := &decoder{}
	in := &copyInputs{RemotePath: d.str(plain, "remotePath", "")}
	if in.RemotePath == "" && d.err == nil {
		d.fail("remotePath", "is required")
	}
	v, ok := d.value(plain, "source")
	switch {
	case !ok && d.err == nil:
		d.fail("source", "is required")
	case !ok:
	case v.IsAsset() && (v.AssetValue().IsPath() || v.AssetValue().IsText()):
		in.Asset = v.AssetValue()
	case v.IsArchive() && v.ArchiveValue().IsPath():
		in.Archive = v.ArchiveValue()
	default:
		d.fail("source", "must be a FileAsset, a StringAsset or a FileArchive")
	}
	in.Connection = decodeRequiredConnection(d, plain)
	if d.err != nil {
		return nil, d.err
	}
	return in, nil
}

// createCopy makes the copy and records the inputs as the outputs.
func (p *commandProvider) createCopy(ctx context.Context, req *pulumirpc.CreateRequest,
	props resource.PropertyMap,
) (*pulumirpc.CreateResponse, error) {
	in, err := decodeCopyInputs(props)
	if err != nil {
		return nil, err
	}
	ctx, cancel := p.opContext(ctx, req.GetTimeout())
	defer cancel()
	if err := p.copyToRemote(ctx, resource.URN(req.GetUrn()), in); err != nil {
		return nil, err
	}
	id, err := newID()
	if err != nil {
		return nil, err
	}
	out, err := marshal(props, "create.outputs")
	if err != nil {
		return nil, err
	}
	return &pulumirpc.CreateResponse{Id: id, Properties: out}, nil
}

// updateCopy copies again. Diff replaces a CopyToRemote on any change, so the engine only
// calls this for state it diffed some other way.
func (p *commandProvider) updateCopy(ctx context.Context, req *pulumirpc.UpdateRequest,
	news resource.PropertyMap,
) (*pulumirpc.UpdateResponse, error) {
	in, err := decodeCopyInputs(news)
	if err != nil {
		return nil, err
	}
	ctx, cancel := p.opContext(ctx, req.GetTimeout())
	defer cancel()
	if err := p.copyToRemote(ctx, resource.URN(req.GetUrn()), in); err != nil {
		return nil, err
	}
	out, err := marshal(news, "update.outputs")
	if err != nil {
		return nil, err
	}
	return &pulumirpc.UpdateResponse{Properties: out}, nil
}

// copyToRemote connects and copies the source to in.RemotePath, reporting progress as
// status messages of the resource.
func (p *commandProvider) copyToRemote(ctx context.Context, urn resource.URN, in *copyInputs) error {
	target := in.Connection.describe() + ":" + in.RemotePath
	fail := func(err error) error {
		switch {
		case errors.Is(ctx.Err(), context.DeadlineExceeded):
			return fmt.Errorf("copy to %s %v; raise the resource's custom_timeouts", target,
				context.Cause(ctx))
		case ctx.Err() != nil:
			return fmt.Errorf("copy to %s was cancelled", target)
		default:
			return fmt.Errorf("copy to %s: %w", target, err)
		}
	}
	client, err := dial(ctx, in.Connection)
	if err != nil {
		return fail(err)
	}
	defer client.Close()
	stop := context.AfterFunc(ctx, func() { _ = client.Close() })
	defer stop()

	logger := newEngineLogger(p.host, urn)
	defer logger.close()
	c := &copier{
		host:   &remoteHost{client: client, conn: in.Connection},
		status: logger.lineFunc(true),
		target: target,
	}
	switch {
	case in.Asset != nil && in.Asset.IsPath():
		err = c.copyPath(ctx, in.Asset.Path, in.RemotePath, in.Asset.Hash, false)
	case in.Asset != nil:
		err = c.copyText(ctx, in.Asset.Text, in.RemotePath)
	default:
		err = c.copyPath(ctx, in.Archive.Path, in.RemotePath, "", true)
	}
	if err != nil {
		return fail(err)
	}
	return nil
}

// ---------------------------------------------------------------------------------------
// Remote shell

// remoteHost runs short shell scripts on a connected host.
type remoteHost struct {
	client *sshClient
	conn   *connection
}

// run runs script through the remote user's login shell, with stdin (if any) as its
// input, and returns its stdout. A failure names what was being done and repeats stderr.
func (h *remoteHost) run(what, script string, stdin io.Reader) (string, error) {
	session, err := h.client.NewSession()
	if err != nil {
		return "", fmt.Errorf("%s: cannot open an SSH session: %w", what, err)
	}
	defer session.Close()
	var stdout, stderr strings.Builder
	session.Stdout = &lockedWriter{w: &stdout}
	session.Stderr = &lockedWriter{w: &stderr}
	if stdin != nil {
		session.Stdin = stdin
	}
	err = session.Run(script)
	var exit *ssh.ExitError
	switch {
	case err == nil:
		return stdout.String(), nil
	case errors.As(err, &exit):
		msg := strings.TrimSpace(tail(stderr.String()))
		if msg == "" {
			msg = "no error output"
		}
		return "", fmt.Errorf("%s failed (exit status %d): %s", what, exit.ExitStatus(), msg)
	default:
		return "", fmt.Errorf("%s: %w", what, err)
	}
}

// lockedWriter serialises writes to w (the session writes from its own goroutine).
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

// remoteKind is what a remote path is: "dir", "other" (a file or anything else) or "none".
func (h *remoteHost) remoteKind(p string) (string, error) {
	q := shellQuote(p)
	out, err := h.run("inspecting "+p,
		fmt.Sprintf("if [ -d %s ]; then echo dir; elif [ -e %s ] || [ -L %s ]; then echo other; "+
			"else echo none; fi", q, q, q), nil)
	if err != nil {
		return "", err
	}
	kind := strings.TrimSpace(out)
	if kind != "dir" && kind != "other" && kind != "none" {
		return "", fmt.Errorf("inspecting %s: unexpected answer %q from the remote shell "+
			"(is the login shell a POSIX shell?)", p, kind)
	}
	return kind, nil
}

// uploadScript receives size bytes on stdin into tmp (after creating dir), checks the
// count and sets mode; tmp is removed if anything fails or the session is cut.
func uploadScript(dir, tmp string, size int64, mode fs.FileMode) string {
	return fmt.Sprintf(`set -e
tmp=%s
trap 'rm -f -- "$tmp"' EXIT
trap 'exit 1' HUP INT TERM PIPE
mkdir -p -- %s
cat > "$tmp"
got=$(wc -c < "$tmp")
got=$((got + 0))
if [ "$got" != %d ]; then
  echo "received $got of %d bytes (the upload was cut short)" >&2
  exit 1
fi
chmod %04o -- "$tmp"
trap - EXIT
`, shellQuote(tmp), shellQuote(dir), size, size, mode.Perm())
}

// upload streams size bytes from src to the remote file dest: into a temporary file in the
// same directory first, then, if verify (when set) passes, renamed over dest.
func (h *remoteHost) upload(src io.Reader, size int64, dest string, mode fs.FileMode,
	verify func() error,
) error {
	suffix, err := newID()
	if err != nil {
		return err
	}
	dir := path.Dir(dest)
	tmp := path.Join(dir, "."+path.Base(dest)+".upload-"+suffix)
	if _, err := h.run("writing "+dest, uploadScript(dir, tmp, size, mode), src); err != nil {
		return err
	}
	discard := func() { _, _ = h.run("removing "+tmp, "rm -f -- "+shellQuote(tmp), nil) }
	if verify != nil {
		if err := verify(); err != nil {
			discard()
			return err
		}
	}
	script := fmt.Sprintf("mv -f -- %s %s || { rm -f -- %s; exit 1; }",
		shellQuote(tmp), shellQuote(dest), shellQuote(tmp))
	_, err = h.run("moving the new file into place at "+dest, script, nil)
	return err
}

// ---------------------------------------------------------------------------------------
// Copying

// copier copies one source to one remote path.
type copier struct {
	host   *remoteHost
	status func(string) // nil: no status messages
	target string       // user@host:port:remotePath, for messages
}

// copyText writes a StringAsset's text to dest (which must not be a directory).
func (c *copier) copyText(ctx context.Context, text, dest string) error {
	kind, err := c.host.remoteKind(dest)
	if err != nil {
		return err
	}
	if kind == "dir" || strings.HasSuffix(dest, "/") {
		return fmt.Errorf("remote path %s is a directory; for a StringAsset, remotePath must "+
			"name the file to write", dest)
	}
	p := c.startProgress(int64(len(text)), 1)
	r := p.reader(strings.NewReader(text), nil)
	err = c.host.upload(r, int64(len(text)), dest, plainFileMode, nil)
	p.finish(ctx, err)
	return err
}

// copyPath copies a local file, or (for an archive) a directory tree, to dest. Like
// upstream's provider: a file copied onto an existing directory (or a path ending in /)
// goes into it under its own name; a directory goes into dest under its own name, or its
// contents do when the local path ends in a slash. wantHash, when set, is the sha256 the
// engine recorded for the file: a file that no longer has it is not put in place.
func (c *copier) copyPath(ctx context.Context, local, dest, wantHash string, isArchive bool) error {
	info, err := os.Stat(local)
	if err != nil {
		return fmt.Errorf("cannot read the source: %w", err)
	}
	kind, err := c.host.remoteKind(dest)
	if err != nil {
		return err
	}
	switch {
	case info.IsDir() && !isArchive:
		return fmt.Errorf("the source %s is a directory: a FileAsset must be a file; use "+
			"pulumi.FileArchive(%q) to copy a directory", local, local)
	case info.IsDir() && kind == "other":
		return fmt.Errorf("remote path %s exists and is not a directory; a directory cannot be "+
			"copied onto it", dest)
	case info.IsDir():
		if !strings.HasSuffix(local, "/") {
			dest = path.Join(dest, filepath.Base(local))
		}
		return c.copyTree(ctx, local, dest)
	case !info.Mode().IsRegular():
		return fmt.Errorf("the source %s is not a regular file (mode %s)", local, info.Mode())
	}
	if kind == "dir" || strings.HasSuffix(dest, "/") {
		dest = path.Join(dest, filepath.Base(local))
	}
	p := c.startProgress(info.Size(), 1)
	err = c.copyFile(local, info, dest, wantHash, p)
	p.finish(ctx, err)
	return err
}

// copyFile streams one local file to dest.
func (c *copier) copyFile(local string, info fs.FileInfo, dest, wantHash string, p *progress) error {
	f, err := os.Open(local)
	if err != nil {
		return fmt.Errorf("cannot read the source: %w", err)
	}
	defer f.Close()
	var sum hash.Hash
	if wantHash != "" {
		sum = sha256.New()
	}
	r := p.reader(f, sum)
	verify := func() error {
		if r.err != nil {
			return fmt.Errorf("reading %s: %w", local, r.err)
		}
		if sum == nil {
			return nil
		}
		if got := hex.EncodeToString(sum.Sum(nil)); got != wantHash {
			return fmt.Errorf("%s changed after Pulumi read it (sha256 %s, expected %s); the "+
				"remote file was left as it was; run the update again", local, got, wantHash)
		}
		return nil
	}
	err = c.host.upload(r, info.Size(), dest, fileMode(info), verify)
	if err != nil && r.err != nil {
		return fmt.Errorf("reading %s: %w", local, r.err)
	}
	return err
}

// fileMode is the mode a copied file gets.
func fileMode(info fs.FileInfo) fs.FileMode {
	if info.Mode().Perm()&0o111 != 0 {
		return executableFileMode
	}
	return plainFileMode
}

// treeFile is a regular file of a directory tree being copied.
type treeFile struct {
	local, remote string
	info          fs.FileInfo
}

// copyTree copies the directory local to the remote directory dest (created if missing;
// existing files are overwritten, other files are left alone). Symbolic links are followed
// when they point to regular files; anything else that is not a file or a directory stops
// the copy before anything is written.
func (c *copier) copyTree(ctx context.Context, local, dest string) error {
	var dirs []string
	var files []treeFile
	var total int64
	err := filepath.WalkDir(local, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(local, p)
		if err != nil {
			return err
		}
		remote := path.Join(dest, filepath.ToSlash(rel))
		if d.IsDir() {
			dirs = append(dirs, remote)
			return nil
		}
		info, err := os.Stat(p) // follows a symbolic link
		if err != nil {
			return err
		}
		if !info.Mode().IsRegular() {
			return fmt.Errorf("%s is neither a regular file nor a directory (%s); "+
				"CopyToRemote copies only those", p, info.Mode().Type())
		}
		files = append(files, treeFile{local: p, remote: remote, info: info})
		total += info.Size()
		return nil
	})
	if err != nil {
		return fmt.Errorf("cannot read the source: %w", err)
	}
	if err := c.makeDirs(dirs); err != nil {
		return err
	}
	p := c.startProgress(total, len(files))
	for _, f := range files {
		if err = c.copyFile(f.local, f.info, f.remote, "", p); err != nil {
			break
		}
	}
	p.finish(ctx, err)
	return err
}

// makeDirs creates remote directories (with their parents), in few sessions.
func (c *copier) makeDirs(dirs []string) error {
	for len(dirs) > 0 {
		script := "mkdir -p --"
		n := 0
		for n < len(dirs) && (n == 0 || len(script)+len(dirs[n])+8 < maxMkdirScript) {
			script += " " + shellQuote(dirs[n])
			n++
		}
		if _, err := c.host.run("creating directories under "+dirs[0], script, nil); err != nil {
			return err
		}
		dirs = dirs[n:]
	}
	return nil
}

// ---------------------------------------------------------------------------------------
// Progress

// progress counts the bytes of a copy and reports them every progressInterval.
type progress struct {
	status func(string)
	target string
	total  int64
	files  int
	start  time.Time
	copied atomic.Int64
	stop   chan struct{}
	done   chan struct{}
}

func (c *copier) startProgress(total int64, files int) *progress {
	p := &progress{status: c.status, target: c.target, total: total, files: files,
		start: time.Now(), stop: make(chan struct{}), done: make(chan struct{})}
	p.log("copying %s to %s", p.describeSize(), p.target)
	go p.loop()
	return p
}

func (p *progress) log(format string, args ...any) {
	if p.status != nil {
		p.status(fmt.Sprintf(format, args...))
	}
}

func (p *progress) describeSize() string {
	if p.files == 1 {
		return formatBytes(p.total)
	}
	return fmt.Sprintf("%d files, %s", p.files, formatBytes(p.total))
}

func (p *progress) loop() {
	defer close(p.done)
	ticker := time.NewTicker(progressInterval)
	defer ticker.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-ticker.C:
			n := p.copied.Load()
			percent := 100.0
			if p.total > 0 {
				percent = float64(n) * 100 / float64(p.total)
			}
			p.log("copying to %s: %s of %s (%.0f%%), %.1f s", p.target, formatBytes(n),
				formatBytes(p.total), percent, time.Since(p.start).Seconds())
		}
	}
}

// finish stops the reports and logs the outcome.
func (p *progress) finish(ctx context.Context, err error) {
	close(p.stop)
	<-p.done
	elapsed := time.Since(p.start).Seconds()
	switch {
	case err == nil:
		rate := float64(p.total) / max(elapsed, 0.001)
		p.log("copied %s to %s in %.1f s (%s/s)", p.describeSize(), p.target, elapsed,
			formatBytes(int64(rate)))
	case ctx.Err() != nil:
		p.log("copy to %s stopped after %s, %.1f s", p.target, formatBytes(p.copied.Load()), elapsed)
	}
}

// reader returns a reader of r that counts into p and, if sum is set, hashes what it reads.
func (p *progress) reader(r io.Reader, sum hash.Hash) *countingReader {
	return &countingReader{r: r, p: p, sum: sum}
}

// countingReader feeds a file to an upload, counting (and hashing) it and remembering a
// read error (the upload then fails on the byte count; the error says why).
type countingReader struct {
	r   io.Reader
	p   *progress
	sum hash.Hash
	err error
}

func (c *countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	if n > 0 {
		c.p.copied.Add(int64(n))
		if c.sum != nil {
			c.sum.Write(b[:n])
		}
	}
	if err != nil && err != io.EOF && c.err == nil {
		c.err = err
	}
	return n, err
}

// formatBytes renders a byte count with a binary unit: 512 B, 1.5 KiB, 117.3 MiB.
func formatBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	value, exp := float64(n)/unit, 0
	for value >= unit && exp < 3 {
		value /= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", value, "KMGT"[exp])
}
