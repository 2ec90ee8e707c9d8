package runfake

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"hash/fnv"
	"regexp"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Resource kinds as Cloud Run names them in NotFound messages.
const (
	kindService  = "SERVICE"
	kindRevision = "REVISION"
)

// serviceIDPattern is Cloud Run's rule for service IDs: a letter first, no hyphen last, fewer
// than 50 characters of lowercase letters, digits and hyphens.
var serviceIDPattern = regexp.MustCompile(`^[a-z]([-a-z0-9]{0,47}[a-z0-9])?$`)

// dnsLabelPattern is what revision names and traffic tags must match.
var dnsLabelPattern = regexp.MustCompile(`^[a-z]([-a-z0-9]*[a-z0-9])?$`)

// regionCodes are the short codes in *.a.run.app URLs for the regions the fake knows.
var regionCodes = map[string]string{
	"europe-west1":    "ew",
	"europe-west2":    "nw",
	"europe-west3":    "ey",
	"europe-west4":    "ez",
	"europe-north1":   "lz",
	"us-central1":     "uc",
	"us-east1":        "ue",
	"us-east4":        "uk",
	"us-west1":        "uw",
	"asia-east1":      "de",
	"asia-northeast1": "an",
}

// notFound is Cloud Run's NotFound answer for a resource.
func (s *Server) notFound(kind, id string) error {
	return status.Errorf(codes.NotFound, "Resource '%s' of kind '%s' in region '%s' in project '%s' does not exist.",
		id, kind, s.opts.Region, s.opts.Project)
}

// location checks that projects/P/locations/L names the fake's project (ID or number) and region.
func (s *Server) location(project, loc string) bool {
	return (project == s.opts.Project || project == s.opts.ProjectNumber) && loc == s.opts.Region
}

// parseParent checks a "projects/P/locations/L" parent.
func (s *Server) parseParent(parent string) error {
	p := strings.Split(parent, "/")
	if len(p) != 4 || p[0] != "projects" || p[2] != "locations" {
		return status.Errorf(codes.InvalidArgument, "Invalid parent '%s': want projects/{project}/locations/{location}.", parent)
	}
	if !s.location(p[1], p[3]) {
		return status.Errorf(codes.PermissionDenied, "Location '%s' of project '%s' is not served by this fake (it serves %s).",
			p[3], p[1], s.Parent())
	}
	return nil
}

// parseService returns the ID of the service a "projects/P/locations/L/services/S" name names.
func (s *Server) parseService(name string) (string, error) {
	p := strings.Split(name, "/")
	if len(p) != 6 || p[0] != "projects" || p[2] != "locations" || p[4] != "services" || p[5] == "" {
		return "", status.Errorf(codes.InvalidArgument,
			"Invalid service name '%s': want projects/{project}/locations/{location}/services/{service}.", name)
	}
	if !s.location(p[1], p[3]) {
		return "", status.Errorf(codes.NotFound, "Resource '%s' of kind '%s' in region '%s' in project '%s' does not exist.",
			p[5], kindService, p[3], p[1])
	}
	return p[5], nil
}

// parseRevision returns the service and revision IDs a ".../services/S/revisions/R" name names.
func (s *Server) parseRevision(name string) (svc, rev string, err error) {
	p := strings.Split(name, "/")
	if len(p) != 8 || p[6] != "revisions" || p[7] == "" {
		return "", "", status.Errorf(codes.InvalidArgument,
			"Invalid revision name '%s': want projects/{project}/locations/{location}/services/{service}/revisions/{revision}.", name)
	}
	svc, err = s.parseService(strings.Join(p[:6], "/"))
	return svc, p[7], err
}

// shortName is the last segment of a resource name.
func shortName(name string) string { return name[strings.LastIndexByte(name, '/')+1:] }

// urlHash is the per-project hash in *.a.run.app URLs.
func (s *Server) urlHash() string {
	h := fnv.New64a()
	h.Write([]byte(s.opts.Project))
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	v := h.Sum64()
	b := make([]byte, 10)
	for i := range b {
		b[i] = alphabet[v%uint64(len(alphabet))]
		v /= uint64(len(alphabet))
	}
	b[0] = alphabet[int(b[0])%26] // starts with a letter, as Google's hashes do
	return string(b)
}

func (s *Server) regionCode() string {
	if c, ok := regionCodes[s.opts.Region]; ok {
		return c
	}
	parts := strings.Split(s.opts.Region, "-")
	code := ""
	for _, p := range parts[:min(2, len(parts))] {
		code += p[:1]
	}
	return code
}

// serviceHost is the host label of a service's (or a tag's) URL without the domain.
func (s *Server) serviceHost(tag, id string) string {
	h := id + "-" + s.urlHash() + "-" + s.regionCode()
	if tag != "" {
		h = tag + "---" + h
	}
	return h
}

// serviceURI is the service's main URL, or a tag's URL when tag is set.
func (s *Server) serviceURI(tag, id string) string {
	return "https://" + s.serviceHost(tag, id) + ".a.run.app"
}

// deterministicURI is the service's URL of the newer project-number form.
func (s *Server) deterministicURI(id string) string {
	return fmt.Sprintf("https://%s-%s.%s.run.app", id, s.opts.ProjectNumber, s.opts.Region)
}

// uuid returns a random version 4 UUID.
func uuid() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b)
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// letters returns n random lowercase letters, the suffix of generated revision names.
func letters(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = 'a' + b[i]%26
	}
	return string(b)
}

// newEtag returns a fresh opaque etag.
func newEtag() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return `"` + base64.RawURLEncoding.EncodeToString(b) + `"`
}
