package lock

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/gantry-dev/gantry/internal/remote"
)

// Label keys on a lock object.
const (
	labelScope = "gantry.lock"
	labelOwner = "gantry.lock.owner"
	labelBeat  = "gantry.lock.beat"
)

// image is the local image a Compose lock container is created from: one
// empty file, imported from a tar gantry makes (nothing is pulled, and the
// container never runs).
const image = "gantry-lock:1"

// errGone is a lock object that no longer exists (released or taken over).
var errGone = errors.New("lock object gone")

// Scope is what a lock protects: a Compose project on one Docker engine or a
// stack in one swarm.
type Scope struct {
	kind string // "compose" or "stack"
	name string
}

// ComposeProject is the lock of Compose project name on the engine the
// deploy reaches.
func ComposeProject(name string) Scope { return Scope{kind: "compose", name: name} }

// SwarmStack is the lock of stack name in the swarm of the manager the
// deploy reaches, whichever manager that is.
func SwarmStack(name string) Scope { return Scope{kind: "stack", name: name} }

// validName is what both a Compose project and a stack name may be.
var validName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_-]*$`)

func (s Scope) valid() error {
	if s.kind == "" || !validName.MatchString(s.name) {
		return fmt.Errorf("lock: invalid %s name %q: use letters, digits, - and _", s.kind, s.name)
	}
	return nil
}

// objectName is the lock object's name: "gantry-lock--NAME", valid as a
// container and as a swarm service name (at most 63 characters: a long name
// is cut and made unique by a hash).
func (s Scope) objectName() string {
	n := "gantry-lock--" + s.name
	if len(n) > 63 {
		sum := sha256.Sum256([]byte(s.name))
		n = n[:50] + "-" + hex.EncodeToString(sum[:6])
	}
	return n
}

// instance is one lock object as read from the target.
type instance struct {
	ID    string
	Owner Info
	// Beat is the holder's last heartbeat, "N TIME"; it changes with every
	// beat, and only its changing matters (the clocks may differ).
	Beat string
}

// lastBeat describes the heartbeat for a message.
func (i instance) lastBeat() string {
	_, at, ok := strings.Cut(i.Beat, " ")
	if !ok || at == "" {
		return "no heartbeat since it was taken"
	}
	return "last heartbeat " + at
}

// store keeps a lock object on a target. Creating is atomic by name;
// beating and removing go by id, so they act on the exact instance.
type store interface {
	// create makes the object; when another holds it, it returns that
	// instance instead (and no id).
	create(ctx context.Context, owner Info) (id string, held *instance, err error)
	// beat records heartbeat n on object id; errGone when it is gone.
	beat(ctx context.Context, id string, n int) error
	// remove deletes object id; errGone when it is already gone.
	remove(ctx context.Context, id string) error
	String() string
}

func newStore(h remote.Host, s Scope) store {
	d := docker{h: h, name: s.objectName(), scope: s.kind + ":" + s.name}
	if s.kind == "stack" {
		return &serviceStore{d}
	}
	return &containerStore{d}
}

// docker is what both stores share: the host, the object's name and scope.
type docker struct {
	h     remote.Host
	name  string
	scope string
}

func (d docker) run(ctx context.Context, stdin io.Reader, args ...string) ([]byte, error) {
	return d.h.Run(ctx, append([]string{"docker"}, args...), stdin)
}

// inspect reads objects with "docker KIND inspect REF": nil when none
// exists. A missing object prints "[]" whatever the host's language, which
// is how it is told apart from a failure.
func (d docker) inspect(ctx context.Context, kind, ref string, into any) (bool, error) {
	out, err := d.run(ctx, nil, kind, "inspect", ref)
	if strings.TrimSpace(string(out)) == "[]" {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read the deploy lock %s on %s: %w", d.name, d.h, err)
	}
	if err := json.Unmarshal(out, into); err != nil {
		return false, fmt.Errorf("read the deploy lock %s on %s: %w", d.name, d.h, err)
	}
	return true, nil
}

// createAttempts is how many times in a row creating may fail with no
// holder to be seen before the failure is taken as real: between a failed
// create and the read, holders may come and go.
const createAttempts = 5

// create runs mk, which makes the object and prints its id. When mk fails,
// the object is read by name: another holder's instance means the lock is
// held (whatever language the error was in); no instance, createAttempts
// times in a row, means the failure was real.
func (d docker) create(ctx context.Context, mk func() ([]byte, error), read func() (*instance, error)) (string, *instance, error) {
	for attempt := 1; ; attempt++ {
		out, err := mk()
		if err == nil {
			return strings.TrimSpace(string(out)), nil, nil
		}
		held, rerr := read()
		if rerr != nil {
			return "", nil, rerr
		}
		if held != nil {
			return "", held, nil
		}
		if attempt == createAttempts {
			return "", nil, fmt.Errorf("take the deploy lock %s on %s: %w", d.name, d.h, err)
		}
		select {
		case <-ctx.Done():
			return "", nil, context.Cause(ctx)
		case <-time.After(time.Duration(attempt) * 50 * time.Millisecond):
		}
	}
}

func ownerLabel(owner Info) string {
	b, _ := json.Marshal(owner)
	return string(b)
}

func parseOwner(labels map[string]string) Info {
	var o Info
	_ = json.Unmarshal([]byte(labels[labelOwner]), &o)
	return o
}

func beatText(n int) string {
	return strconv.Itoa(n) + " " + time.Now().UTC().Format("15:04:05 UTC")
}

// gone tells errGone from a real failure after a command on object id
// failed: the object no longer exists.
func (d docker) gone(ctx context.Context, kind, id string, err error) error {
	var v []json.RawMessage
	found, ierr := d.inspect(ctx, kind, id, &v)
	if ierr == nil && !found {
		return errGone
	}
	return err
}

// containerStore keeps a Compose project's lock as a container that is
// created, never started, on the project's engine: its name is the lock, its
// labels the owner, and a file in it the heartbeat (docker cp).
type containerStore struct{ docker }

func (c *containerStore) String() string { return "container " + c.name }

type containerJSON struct {
	ID     string `json:"Id"`
	Config struct {
		Labels map[string]string
	}
}

func (c *containerStore) create(ctx context.Context, owner Info) (string, *instance, error) {
	imported := false
	mk := func() ([]byte, error) {
		return c.run(ctx, nil, "container", "create", "--name", c.name,
			"--label", labelScope+"="+c.scope, "--label", labelOwner+"="+ownerLabel(owner),
			"--network", "none", image, "/gantry-lock")
	}
	read := func() (*instance, error) {
		held, err := c.read(ctx)
		if held != nil || err != nil || imported {
			return held, err
		}
		// No holder: the image may be missing (a new host, or pruned).
		var imgs []json.RawMessage
		found, err := c.inspect(ctx, "image", image, &imgs)
		if err != nil || found {
			return nil, err
		}
		imported = true
		return nil, c.importImage(ctx)
	}
	return c.docker.create(ctx, mk, read)
}

// read returns the lock container by name, with its heartbeat.
func (c *containerStore) read(ctx context.Context) (*instance, error) {
	var cs []containerJSON
	found, err := c.inspect(ctx, "container", c.name, &cs)
	if err != nil || !found || len(cs) == 0 {
		return nil, err
	}
	in := &instance{ID: cs[0].ID, Owner: parseOwner(cs[0].Config.Labels)}
	var out []byte
	for attempt := 1; ; attempt++ {
		if out, err = c.run(ctx, nil, "container", "cp", in.ID+":/beat", "-"); err == nil {
			break
		}
		if c.gone(ctx, "container", in.ID, err) == errGone {
			return c.read(ctx) // replaced meanwhile: read the new one
		}
		// docker cp replaces the file as the holder beats: a read in
		// between finds none.
		if attempt == 3 {
			return nil, fmt.Errorf("read the heartbeat of the deploy lock %s on %s: %w", c.name, c.h, err)
		}
		select {
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		case <-time.After(100 * time.Millisecond):
		}
	}
	beat, err := untarFile(out, "beat")
	if err != nil {
		return nil, fmt.Errorf("read the heartbeat of the deploy lock %s on %s: %w", c.name, c.h, err)
	}
	in.Beat = string(beat)
	return in, nil
}

func (c *containerStore) beat(ctx context.Context, id string, n int) error {
	data, err := tarFile("beat", []byte(beatText(n)))
	if err != nil {
		return err
	}
	if _, err := c.run(ctx, bytes.NewReader(data), "container", "cp", "-", id+":/"); err != nil {
		return c.gone(ctx, "container", id, err)
	}
	return nil
}

func (c *containerStore) remove(ctx context.Context, id string) error {
	_, err := c.run(ctx, nil, "container", "rm", id)
	for attempt := 1; err != nil; attempt++ {
		if err = c.gone(ctx, "container", id, err); errors.Is(err, errGone) || attempt == 10 {
			return err
		}
		// Another waiter may be removing it too ("removal already in
		// progress"): give that a moment before calling it a failure.
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-time.After(200 * time.Millisecond):
		}
	}
	return nil
}

// importImage makes the lock container's image with docker import: a tar of
// an empty heartbeat file, so that nothing is pulled.
func (c *containerStore) importImage(ctx context.Context) error {
	data, err := tarFile("beat", nil)
	if err != nil {
		return err
	}
	if _, err := c.run(ctx, bytes.NewReader(data), "image", "import", "--message", "gantry deploy lock", "-", image); err != nil {
		return fmt.Errorf("make the deploy lock's image %s on %s: %w", image, c.h, err)
	}
	return nil
}

// serviceStore keeps a stack's lock as a swarm service of 0 replicas (never
// scheduled, its image never pulled): the swarm makes its name unique across
// managers, its labels hold the owner and the heartbeat.
type serviceStore struct{ docker }

func (s *serviceStore) String() string { return "service " + s.name }

type serviceJSON struct {
	ID   string
	Spec struct {
		Labels map[string]string
	}
}

func (s *serviceStore) create(ctx context.Context, owner Info) (string, *instance, error) {
	mk := func() ([]byte, error) {
		return s.run(ctx, nil, "service", "create", "--detach", "--quiet", "--name", s.name,
			"--replicas", "0", "--no-resolve-image",
			"--label", labelScope+"="+s.scope, "--label", labelOwner+"="+ownerLabel(owner), "--label", labelBeat+"=",
			image)
	}
	return s.docker.create(ctx, mk, func() (*instance, error) { return s.read(ctx) })
}

func (s *serviceStore) read(ctx context.Context) (*instance, error) {
	var ss []serviceJSON
	found, err := s.inspect(ctx, "service", s.name, &ss)
	if err != nil || !found || len(ss) == 0 {
		return nil, err
	}
	l := ss[0].Spec.Labels
	return &instance{ID: ss[0].ID, Owner: parseOwner(l), Beat: l[labelBeat]}, nil
}

func (s *serviceStore) beat(ctx context.Context, id string, n int) error {
	if _, err := s.run(ctx, nil, "service", "update", "--detach", "--quiet", "--label-add", labelBeat+"="+beatText(n), id); err != nil {
		return s.gone(ctx, "service", id, err)
	}
	return nil
}

func (s *serviceStore) remove(ctx context.Context, id string) error {
	if _, err := s.run(ctx, nil, "service", "rm", id); err != nil {
		return s.gone(ctx, "service", id, err)
	}
	return nil
}

// tarFile is a tar archive of one file, as docker cp and docker import read.
func tarFile(name string, data []byte) ([]byte, error) {
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	hdr := &tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), ModTime: time.Now(), Typeflag: tar.TypeReg}
	if err := tw.WriteHeader(hdr); err != nil {
		return nil, err
	}
	if _, err := tw.Write(data); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// untarFile reads file name from a tar archive.
func untarFile(data []byte, name string) ([]byte, error) {
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		hdr, err := tr.Next()
		if err != nil {
			return nil, fmt.Errorf("no %s in the archive: %w", name, err)
		}
		if strings.TrimPrefix(hdr.Name, "./") == name {
			return io.ReadAll(io.LimitReader(tr, 4096))
		}
	}
}
