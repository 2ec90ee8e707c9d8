package remote

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
)

// writeScript writes stdin to $1 with mode $2: into a temp file beside it
// (same directory, so mv is a rename), removed if any step fails. umask 077
// keeps the content private until chmod sets the mode. Paths arrive as
// positional parameters, never pasted into the script.
const writeScript = `umask 077
t="$1.tmp.$$"
trap 'rm -f -- "$t"' EXIT
cat > "$t" && chmod -- "$2" "$t" && mv -f -- "$t" "$1"`

// readScript prints $1, or exits notExistCode when there is no such file.
const readScript = `if [ -e "$1" ] || [ -L "$1" ]; then exec cat -- "$1"; fi
printf '%s: no such file\n' "$1" >&2
exit 66`

// notExistCode is readScript's exit code for a missing file (sysexits'
// EX_NOINPUT; cat itself exits 1).
const notExistCode = 66

// WriteFile writes data to path on h atomically: readers see the old
// content or the new, never a part. The file gets mode (permission bits).
func WriteFile(ctx context.Context, h Host, path string, data []byte, mode os.FileMode) error {
	if path == "" {
		return fmt.Errorf("%s: write file: empty path", h)
	}
	perm := fmt.Sprintf("%04o", mode.Perm())
	_, err := h.Run(ctx, []string{"sh", "-c", writeScript, "sh", path, perm}, bytes.NewReader(data))
	return fileErr(h, "write", path, err)
}

// ReadFile returns the content of path on h. A missing file is an error
// matching fs.ErrNotExist.
func ReadFile(ctx context.Context, h Host, path string) ([]byte, error) {
	if path == "" {
		return nil, fmt.Errorf("%s: read file: empty path", h)
	}
	out, err := h.Run(ctx, []string{"sh", "-c", readScript, "sh", path}, nil)
	var exitErr *ExitError
	if errors.As(err, &exitErr) && exitErr.Code == notExistCode {
		return nil, fmt.Errorf("%s: %s: %w", h, path, fs.ErrNotExist)
	}
	if err != nil {
		return nil, fileErr(h, "read", path, err)
	}
	return out, nil
}

// fileErr names the file in err. The script is left out of the message
// (an *ExitError would print all of it); errors.As still finds the
// *ExitError.
func fileErr(h Host, op, path string, err error) error {
	var exitErr *ExitError
	if err == nil {
		return nil
	}
	if !errors.As(err, &exitErr) {
		return fmt.Errorf("%s %s: %w", op, path, err)
	}
	return &FileError{Op: op, Path: path, Err: exitErr}
}

// FileError is a WriteFile or ReadFile whose script failed on the host.
type FileError struct {
	Op   string // read or write
	Path string
	Err  *ExitError
}

func (e *FileError) Error() string {
	msg := strings.TrimSpace(e.Err.Stderr)
	if i := strings.LastIndexByte(msg, '\n'); i >= 0 {
		msg = msg[i+1:]
	}
	if msg == "" {
		msg = "(no output)"
	}
	return fmt.Sprintf("%s: %s %s: %s (exit %d)", e.Err.Host, e.Op, e.Path, msg, e.Err.Code)
}

func (e *FileError) Unwrap() error { return e.Err }
