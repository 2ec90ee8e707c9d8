package image

import (
	"archive/tar"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/bmatcuk/doublestar/v4"
)

// FileMap maps files of the workspace into the image: a glob (with **), the
// path in the image, and an optional mode that overrides the files' own.
type FileMap struct {
	Glob string
	Dest string
	Mode fs.FileMode // 0 keeps the file's mode, normalised to 0755 or 0644
}

// ParseFileMap parses "GLOB:DEST[:MODE]", e.g. "dist/app:/app:0755" or
// "static/**:/srv/static/". A DEST ending in / is a directory.
func ParseFileMap(s string) (FileMap, error) {
	parts := strings.Split(s, ":")
	if len(parts) < 2 || len(parts) > 3 || parts[0] == "" || parts[1] == "" {
		return FileMap{}, fmt.Errorf("%q is not SOURCE:DEST[:MODE], e.g. dist/app:/app:0755", s)
	}
	fm := FileMap{Glob: strings.TrimSpace(parts[0]), Dest: strings.TrimSpace(parts[1])}
	if !strings.HasPrefix(fm.Dest, "/") {
		return FileMap{}, fmt.Errorf("%q: destination %q must be an absolute path in the image", s, fm.Dest)
	}
	if !doublestar.ValidatePattern(filepath.ToSlash(fm.Glob)) {
		return FileMap{}, fmt.Errorf("%q: %q is not a valid glob", s, fm.Glob)
	}
	if len(parts) == 3 {
		m, err := strconv.ParseUint(strings.TrimSpace(parts[2]), 8, 32)
		if err != nil || m == 0 || m > 0o7777 {
			return FileMap{}, fmt.Errorf("%q: mode %q is not an octal file mode such as 0755", s, parts[2])
		}
		fm.Mode = fs.FileMode(m)
	}
	return fm, nil
}

// entry is one file or directory placed in a layer.
type entry struct {
	src  string // empty for implicit directories
	dest string // clean absolute path
	mode fs.FileMode
	dir  bool
	link string
}

// resolve expands the maps against root into entries, failing on a pattern
// that matches nothing (an empty glob is almost always a wrong path).
func resolve(root string, maps []FileMap) ([]entry, error) {
	var out []entry
	for _, fm := range maps {
		pattern := filepath.ToSlash(fm.Glob)
		root := root
		if filepath.IsAbs(fm.Glob) {
			// An absolute source (a file built in a temp dir) is matched from /.
			root, pattern = string(filepath.Separator), strings.TrimPrefix(pattern, "/")
		}
		base, _ := doublestar.SplitPattern(pattern)
		matches, err := doublestar.Glob(os.DirFS(root), strings.TrimPrefix(pattern, "./"), doublestar.WithFilesOnly())
		if err != nil {
			return nil, fmt.Errorf("%s: %w", fm.Glob, err)
		}
		literal := !hasMeta(pattern)
		if literal {
			st, err := os.Stat(filepath.Join(root, pattern))
			if err == nil && st.IsDir() {
				// A directory copies its whole tree.
				base = pattern
				matches, err = doublestar.Glob(os.DirFS(root), strings.TrimPrefix(path.Join(pattern, "**"), "./"), doublestar.WithFilesOnly())
				if err != nil {
					return nil, err
				}
				literal = false
			}
		}
		if len(matches) == 0 {
			return nil, fmt.Errorf("%q matched no files under %s", fm.Glob, root)
		}
		sort.Strings(matches)
		for _, m := range matches {
			dest := fm.Dest
			if !literal || strings.HasSuffix(fm.Dest, "/") {
				rel := strings.TrimPrefix(strings.TrimPrefix(m, strings.TrimPrefix(base, "./")), "/")
				if literal {
					rel = path.Base(m)
				}
				dest = path.Join(fm.Dest, rel)
			}
			src := filepath.Join(root, filepath.FromSlash(m))
			// A file named explicitly is what it points to, as with docker
			// COPY; links found inside a directory or by a glob stay links.
			stat := os.Lstat
			if literal {
				stat = os.Stat
			}
			st, err := stat(src)
			if err != nil {
				return nil, err
			}
			e := entry{src: src, dest: path.Clean(dest), mode: normalMode(st.Mode(), fm.Mode)}
			if st.Mode()&fs.ModeSymlink != 0 {
				if e.link, err = os.Readlink(src); err != nil {
					return nil, err
				}
			}
			out = append(out, e)
		}
	}
	return withParents(out), nil
}

func hasMeta(p string) bool { return strings.ContainsAny(p, "*?[{") }

func normalMode(m, override fs.FileMode) fs.FileMode {
	if override != 0 {
		return override
	}
	if m&0o111 != 0 {
		return 0o755
	}
	return 0o644
}

// withParents adds every parent directory once and sorts entries by path, so
// the tar is the same byte for byte whatever order the globs matched in.
func withParents(es []entry) []entry {
	byDest := map[string]entry{}
	for _, e := range es {
		byDest[e.dest] = e // a later mapping of the same path wins
		for d := path.Dir(e.dest); d != "/" && d != "."; d = path.Dir(d) {
			if _, ok := byDest[d]; !ok {
				byDest[d] = entry{dest: d, dir: true, mode: 0o755}
			}
		}
	}
	out := make([]entry, 0, len(byDest))
	for _, e := range byDest {
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].dest < out[j].dest })
	return out
}

// writeTar writes the entries as a tar stream with owner root and a fixed
// modification time, which makes the layer reproducible.
func writeTar(w io.Writer, es []entry, mtime time.Time) error {
	tw := tar.NewWriter(w)
	for _, e := range es {
		h := &tar.Header{
			Name:    strings.TrimPrefix(e.dest, "/"),
			Mode:    int64(e.mode.Perm()),
			ModTime: mtime,
			Format:  tar.FormatPAX,
		}
		switch {
		case e.dir:
			h.Typeflag, h.Name = tar.TypeDir, h.Name+"/"
		case e.link != "":
			h.Typeflag, h.Linkname, h.Mode = tar.TypeSymlink, e.link, 0o777
		default:
			h.Typeflag = tar.TypeReg
			st, err := os.Stat(e.src)
			if err != nil {
				return err
			}
			h.Size = st.Size()
		}
		if err := tw.WriteHeader(h); err != nil {
			return fmt.Errorf("tar %s: %w", e.dest, err)
		}
		if h.Typeflag == tar.TypeReg {
			f, err := os.Open(e.src)
			if err != nil {
				return err
			}
			n, err := io.Copy(tw, f)
			f.Close()
			if err != nil {
				return fmt.Errorf("tar %s: %w", e.src, err)
			}
			if n != h.Size {
				return fmt.Errorf("tar %s: file changed size while building the image", e.src)
			}
		}
	}
	return tw.Close()
}

// tarOpener returns an opener that renders the entries again on each call; the
// output is deterministic, so every call yields the same bytes.
func tarOpener(es []entry, mtime time.Time) func() (io.ReadCloser, error) {
	return func() (io.ReadCloser, error) {
		pr, pw := io.Pipe()
		go func() { pw.CloseWithError(writeTar(pw, es, mtime)) }()
		return pr, nil
	}
}

// Check reports an error when the mapping matches no file under root.
func (fm FileMap) Check(root string) error {
	_, err := resolve(root, []FileMap{fm})
	return err
}
