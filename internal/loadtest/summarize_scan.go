package loadtest

import (
	"strconv"
	"time"
	"unicode/utf8"
)

// The tags of a Point the summary reads, as indexes into point.tags, and
// their keys in k6's JSON.
const (
	tagName = iota
	tagURL
	tagMethod
	tagStatus
	tagScenario
	tagCheck
	tagGroup
	tagExpectedResponse
	numTags
)

var tagKeys = [numTags]string{"name", "url", "method", "status", "scenario", "check", "group", "expected_response"}

// point is one k6 Point as the accumulator takes it, decoded by scanPoint or
// by encoding/json. Its byte slices alias the line (or the strings decoded
// from it): they are valid until the next line, and copied when kept.
type point struct {
	metric []byte
	time   time.Time
	value  float64
	tags   [numTags][]byte
	// scanned is true when scanPoint decoded the point; rawTags is then the
	// line's tags object (nil for "tags":null), for tags beyond tags.
	scanned bool
	rawTags []byte
}

// scanPoint decodes the k6 Point line b into p without encoding/json. It
// accepts only lines it decodes exactly as encoding/json would and returns
// false for anything else, which the caller then decodes with
// encoding/json: other line types, strings with a backslash or a control
// character, invalid UTF-8, null where a value is expected, unknown or
// repeated keys outside the tags, tag keys encoding/json could match to one
// it reads case-insensitively (STATUS), times in another layout, numbers
// strconv.ParseFloat rejects.
func scanPoint(b []byte, p *point) bool {
	*p = point{scanned: true}
	s := scanner{b: b}
	if !s.consume('{') {
		return false
	}
	var seenType, seenMetric, seenData bool
	for more := !s.consume('}'); more; more = s.next() {
		key, ok := s.str()
		if !ok || !s.consume(':') {
			return false
		}
		switch string(key) {
		case "type":
			v, ok := s.str()
			if !ok || seenType || string(v) != "Point" {
				return false
			}
			seenType = true
		case "metric":
			v, ok := s.str()
			if !ok || seenMetric {
				return false
			}
			p.metric, seenMetric = v, true
		case "data":
			if seenData || !s.data(p) {
				return false
			}
			seenData = true
		default:
			return false
		}
	}
	return !s.bad && s.end() && seenType && seenMetric && seenData
}

// scanner reads JSON from b at i; bad is set by next when an object does
// not continue with a comma or end with a brace.
type scanner struct {
	b   []byte
	i   int
	bad bool
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func (s *scanner) skipSpace() {
	for s.i < len(s.b) && isSpace(s.b[s.i]) {
		s.i++
	}
}

// consume skips whitespace and c, reporting whether c was there.
func (s *scanner) consume(c byte) bool {
	if s.i < len(s.b) && s.b[s.i] == c { // k6 writes no whitespace
		s.i++
		return true
	}
	s.skipSpace()
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

// next reads what follows an object member: true after a comma (another
// member follows), false at the closing brace or on an error (s.bad).
func (s *scanner) next() bool {
	if s.consume(',') {
		return true
	}
	if !s.consume('}') {
		s.bad = true
	}
	return false
}

// end reports whether only whitespace is left.
func (s *scanner) end() bool {
	s.skipSpace()
	return s.i == len(s.b)
}

// plain marks the bytes a JSON string holds as they are: printable ASCII
// but the quote and the backslash.
var plain = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// str reads a string without escapes and returns its contents, which are
// then the bytes encoding/json would decode it to: no backslash, no control
// character, valid UTF-8.
func (s *scanner) str() ([]byte, bool) {
	if s.i < len(s.b) && s.b[s.i] != '"' {
		s.skipSpace()
	}
	b, i := s.b, s.i
	if i >= len(b) || b[i] != '"' {
		return nil, false
	}
	i++
	start := i
	for i < len(b) && plain[b[i]] {
		i++
	}
	if i < len(b) && b[i] >= utf8.RuneSelf {
		for i < len(b) && (plain[b[i]] || b[i] >= utf8.RuneSelf) {
			i++
		}
		if !utf8.Valid(b[start:i]) {
			return nil, false
		}
	}
	if i >= len(b) || b[i] != '"' {
		return nil, false
	}
	s.i = i + 1
	return b[start:i], true
}

// null reads the literal null.
func (s *scanner) null() bool {
	s.skipSpace()
	if len(s.b)-s.i >= 4 && string(s.b[s.i:s.i+4]) == "null" {
		s.i += 4
		return true
	}
	return false
}

// number reads a JSON number as encoding/json decodes it into a float64.
func (s *scanner) number() (float64, bool) {
	if s.i < len(s.b) && isSpace(s.b[s.i]) {
		s.skipSpace()
	}
	b, i := s.b, s.i
	start := i
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && '1' <= b[i] && b[i] <= '9':
		for i < len(b) && isDigit(b[i]) {
			i++
		}
	default:
		return 0, false
	}
	if i < len(b) && b[i] == '.' {
		i++
		if i >= len(b) || !isDigit(b[i]) {
			return 0, false
		}
		for i < len(b) && isDigit(b[i]) {
			i++
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i >= len(b) || !isDigit(b[i]) {
			return 0, false
		}
		for i < len(b) && isDigit(b[i]) {
			i++
		}
	}
	// The conversion does not allocate: the string does not outlive the call.
	v, err := strconv.ParseFloat(string(b[start:i]), 64)
	if err != nil { // out of range: encoding/json fails the line
		return 0, false
	}
	s.i = i
	return v, true
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// data reads a Point's data object: time, value and tags.
func (s *scanner) data(p *point) bool {
	if !s.consume('{') {
		return false
	}
	var seenTime, seenValue, seenTags bool
	for more := !s.consume('}'); more; more = s.next() {
		key, ok := s.str()
		if !ok || !s.consume(':') {
			return false
		}
		switch string(key) {
		case "time":
			v, ok := s.str()
			if !ok || seenTime {
				return false
			}
			if p.time, ok = parseTime(v); !ok {
				return false
			}
			seenTime = true
		case "value":
			if seenValue {
				return false
			}
			if p.value, ok = s.number(); !ok {
				return false
			}
			seenValue = true
		case "tags":
			if seenTags || !s.tags(p) {
				return false
			}
			seenTags = true
		default:
			return false
		}
	}
	return !s.bad && seenTime && seenValue
}

// tags reads a Point's tags: null, or an object of strings, keeping the
// ones the summary reads (the last of a key repeated, as encoding/json does).
func (s *scanner) tags(p *point) bool {
	if s.null() {
		return true
	}
	if !s.consume('{') {
		return false
	}
	start := s.i - 1
	for more := !s.consume('}'); more; more = s.next() {
		key, ok := s.str()
		if !ok || !s.consume(':') {
			return false
		}
		v, ok := s.str()
		if !ok {
			return false
		}
		switch string(key) {
		case "name":
			p.tags[tagName] = v
		case "url":
			p.tags[tagURL] = v
		case "method":
			p.tags[tagMethod] = v
		case "status":
			p.tags[tagStatus] = v
		case "scenario":
			p.tags[tagScenario] = v
		case "check":
			p.tags[tagCheck] = v
		case "group":
			p.tags[tagGroup] = v
		case "expected_response":
			p.tags[tagExpectedResponse] = v
		default:
			if mayFoldToTag(key) {
				return false
			}
		}
	}
	if s.bad {
		return false
	}
	p.rawTags = s.b[start:s.i]
	return true
}

// mayFoldToTag reports whether encoding/json might match key, which is not
// one of tagKeys, to one of them: it matches a key case-insensitively, with
// Unicode folding (the Kelvin sign folds to k), when none matches exactly.
func mayFoldToTag(key []byte) bool {
	for _, c := range key {
		if c >= utf8.RuneSelf {
			return true
		}
	}
	for _, k := range tagKeys {
		if len(k) == len(key) && asciiEqualFold(key, k) {
			return true
		}
	}
	return false
}

func asciiEqualFold(b []byte, s string) bool {
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		d := s[i]
		if 'A' <= d && d <= 'Z' {
			d += 'a' - 'A'
		}
		if c != d {
			return false
		}
	}
	return true
}

// lookupTag returns the value of tag key in raw, a tags object scanPoint
// accepted (the last one if the key repeats).
func lookupTag(raw []byte, key string) (value []byte, ok bool) {
	s := scanner{b: raw}
	if !s.consume('{') {
		return nil, false
	}
	for more := !s.consume('}'); more; more = s.next() {
		k, _ := s.str()
		s.consume(':')
		v, _ := s.str()
		if string(k) == key {
			value, ok = v, true
		}
	}
	return value, ok
}

// parseTime parses an RFC 3339 time as time.Time's UnmarshalJSON does, in
// the layouts k6 writes: 2006-01-02T15:04:05, an optional fraction of 1 or
// more digits (beyond nanoseconds truncated), then Z or ±hh:mm. It rejects
// what the standard library's fast parser rejects (which then tries a
// lenient one that the fallback to encoding/json gets to apply).
func parseTime(b []byte) (time.Time, bool) {
	if len(b) < len("2006-01-02T15:04:05Z") ||
		b[4] != '-' || b[7] != '-' || b[10] != 'T' || b[13] != ':' || b[16] != ':' {
		return time.Time{}, false
	}
	year, ok1 := digits4(b[0:4])
	month, ok2 := digits2(b[5:7])
	day, ok3 := digits2(b[8:10])
	hour, ok4 := digits2(b[11:13])
	minute, ok5 := digits2(b[14:16])
	sec, ok6 := digits2(b[17:19])
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) ||
		month < 1 || month > 12 || day < 1 || day > daysIn(month, year) ||
		hour > 23 || minute > 59 || sec > 59 {
		return time.Time{}, false
	}
	b = b[19:]
	var nsec int64
	if len(b) >= 2 && b[0] == '.' && isDigit(b[1]) {
		n := 1
		for ; n < len(b) && isDigit(b[n]); n++ {
			if n <= 9 {
				nsec = nsec*10 + int64(b[n]-'0')
			}
		}
		for k := n; k <= 9; k++ {
			nsec *= 10
		}
		b = b[n:]
	}
	unix := daysSinceEpoch(year, month, day)*86400 + int64(hour*3600+minute*60+sec)
	switch {
	case len(b) == 1 && b[0] == 'Z':
	case len(b) == 6 && (b[0] == '+' || b[0] == '-') && b[3] == ':':
		hh, ok1 := digits2(b[1:3])
		mm, ok2 := digits2(b[4:6])
		if !ok1 || !ok2 || hh > 23 || mm > 59 {
			return time.Time{}, false
		}
		offset := int64(hh*3600 + mm*60)
		if b[0] == '-' {
			offset = -offset
		}
		unix -= offset
	default:
		return time.Time{}, false
	}
	return time.Unix(unix, nsec), true
}

func digits2(b []byte) (int, bool) {
	if !isDigit(b[0]) || !isDigit(b[1]) {
		return 0, false
	}
	return int(b[0]-'0')*10 + int(b[1]-'0'), true
}

func digits4(b []byte) (int, bool) {
	hi, ok1 := digits2(b[0:2])
	lo, ok2 := digits2(b[2:4])
	return hi*100 + lo, ok1 && ok2
}

// daysIn is the number of days of month in year (proleptic Gregorian).
func daysIn(month, year int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// daysSinceEpoch is the number of days from 1970-01-01 to the date (year 0
// to 9999), after Howard Hinnant's days_from_civil.
func daysSinceEpoch(year, month, day int) int64 {
	y := int64(year)
	if month <= 2 {
		y--
	}
	era := y / 400
	if y < 0 {
		era = (y - 399) / 400
	}
	yoe := y - era*400
	mp := int64(month+9) % 12
	doy := (153*mp+2)/5 + int64(day) - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return era*146097 + doe - 719468
}
