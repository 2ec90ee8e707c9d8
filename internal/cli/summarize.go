package cli

import (
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/gantry-dev/gantry/internal/action"
	"github.com/gantry-dev/gantry/internal/loadtest"
)

// summarizeUsage is the synopsis of gantry loadtest summarize.
const summarizeUsage = "gantry loadtest summarize <k6-output.json[.gz]> [--out summary.json]"

// runSummarize runs gantry loadtest summarize: it reads the raw JSON output
// of a k6 run (k6 run --out json=FILE, gzipped or not) in one streaming pass
// and writes summary.json, indented, to --out or stdout.
func runSummarize(ctx context.Context, args []string, env action.Env) int {
	usageErr := func(format string, a ...any) int {
		fmt.Fprintf(env.Stderr, "gantry loadtest summarize: %s; usage: %s\n", fmt.Sprintf(format, a...), summarizeUsage)
		return 1
	}
	var input, out string
	for i := 0; i < len(args); i++ {
		arg := args[i]
		switch {
		case arg == "-h" || arg == "--help":
			fmt.Fprintf(env.Stdout, "Usage: %s\n\nSummarizes the raw JSON output of a k6 run (k6 run --out json=FILE, gzipped or not) into summary.json (schema version %d), in constant memory: every metric, http_req_duration by request, checks, errors by status and a per-second series. Without --out it prints summary.json.\n", summarizeUsage, loadtest.SchemaVersion)
			return 0
		case arg == "--out":
			if i+1 == len(args) {
				return usageErr("--out needs a file name")
			}
			i++
			out = args[i]
		case strings.HasPrefix(arg, "--out="):
			if out = strings.TrimPrefix(arg, "--out="); out == "" {
				return usageErr("--out needs a file name")
			}
		case strings.HasPrefix(arg, "-"):
			return usageErr("unknown flag %q", arg)
		case input != "":
			return usageErr("one input file only (got %q and %q)", input, arg)
		default:
			input = arg
		}
	}
	if input == "" {
		return usageErr("name the k6 output file")
	}
	if err := summarize(ctx, input, out, env.Stdout); err != nil {
		// One line, whatever the decoder said.
		fmt.Fprintf(env.Stderr, "gantry loadtest summarize: %s\n", strings.ReplaceAll(err.Error(), "\n", " "))
		return 1
	}
	return 0
}

// summarize summarizes the k6 output at input into out, or into stdout when
// out is empty; out is replaced only once the summary is complete.
func summarize(ctx context.Context, input, out string, stdout io.Writer) error {
	f, err := os.Open(input)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s: no such file; pass the file k6 wrote with --out json=FILE", input)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", input, err)
	}
	defer f.Close()
	s, err := loadtest.Summarize(&ctxReader{ctx: ctx, r: f})
	if err != nil {
		msg := strings.TrimPrefix(err.Error(), "loadtest: ")
		switch {
		case ctx.Err() != nil:
			return fmt.Errorf("%s: cancelled: %s", input, msg)
		case errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, gzip.ErrChecksum) || errors.Is(err, gzip.ErrHeader):
			return fmt.Errorf("%s: %s; the file is cut short or damaged (an interrupted k6 run or copy?): summarize a complete one", input, msg)
		default:
			return fmt.Errorf("%s: %s; pass the file k6 wrote with --out json=FILE", input, msg)
		}
	}
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("encode the summary of %s: %w", input, err)
	}
	data = append(data, '\n')
	if out == "" {
		_, err := stdout.Write(data)
		return err
	}
	return writeFileAtomic(out, data)
}

// writeFileAtomic writes data to a temporary file next to path and renames it
// over path, so a failed write never leaves half a summary.
func writeFileAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write %s: %w; check that its directory exists and is writable", path, err)
	}
	_, err = tmp.Write(data)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp.Name(), 0o644)
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		_ = os.Remove(tmp.Name())
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// ctxReader stops reading once ctx ends, so a cancelled run stops between
// two reads of a large file.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
