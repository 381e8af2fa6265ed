package route

import (
	"bytes"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// This file holds the JSON scanner behind Select: one pass over a message
// body both validates it, accepting exactly what json.Valid accepts, and
// finds the value at a path of object keys, without allocating. It replaces
// json.Valid followed by a json.Unmarshal into a map at each level of the
// path, which cost a quarter of the gateway's CPU in the echo benchmark.

// maxDepth is how deeply arrays and objects may nest. It is encoding/json's
// limit: json.Valid rejects a deeper document, so a deeper body goes to
// $default.
const maxDepth = 10000

// find validates doc as json.Valid does and, in the same pass, returns the
// text of the value at path, without surrounding whitespace. Each element
// of path is an object key, compared with the key as encoding/json decodes
// it (escapes decoded, invalid UTF-8 replaced). A key that occurs more than
// once in an object selects its last value, as decoding into a map does.
// found is false when a key is missing or the value at some prefix of path
// is not an object; valid is false when doc is not JSON, and then found is
// false too.
func find(doc []byte, path []string) (val []byte, found, valid bool) {
	s := scanner{data: doc}
	start, end, found, ok := s.lookup(path)
	if !ok || !s.atEnd() {
		return nil, false, false
	}
	if !found {
		return nil, false, true
	}
	return doc[start:end], true, true
}

// valid reports whether doc is JSON, exactly as json.Valid does.
func valid(doc []byte) bool {
	_, _, ok := find(doc, nil)
	return ok
}

// scanner reads JSON text from data. Its methods return false at the first
// byte that json.Valid would reject; s.i is then meaningless.
type scanner struct {
	data  []byte
	i     int // the next byte to read
	depth int // arrays and objects open at i
}

func (s *scanner) skipSpace() {
	for s.i < len(s.data) {
		switch s.data[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// peek returns the next byte, or 0 (which no JSON token starts with) at the
// end of the data.
func (s *scanner) peek() byte {
	if s.i < len(s.data) {
		return s.data[s.i]
	}
	return 0
}

// atEnd reports whether only whitespace is left.
func (s *scanner) atEnd() bool {
	s.skipSpace()
	return s.i == len(s.data)
}

// open consumes the '{' or '[' at s.i.
func (s *scanner) open() bool {
	s.i++
	s.depth++
	return s.depth <= maxDepth
}

// lookup reads one value, preceded by optional whitespace, and reports where
// the value at path within it starts and ends. Only the objects along path
// are walked by recursion, so its depth is bounded by len(path); everything
// else is read by value.
func (s *scanner) lookup(path []string) (start, end int, found, ok bool) {
	s.skipSpace()
	if len(path) == 0 {
		start = s.i
		if !s.value() {
			return 0, 0, false, false
		}
		return start, s.i, true, true
	}
	if s.peek() != '{' {
		return 0, 0, false, s.value()
	}
	if !s.open() {
		return 0, 0, false, false
	}
	s.skipSpace()
	if s.peek() == '}' {
		s.i++
		s.depth--
		return 0, 0, false, true
	}
	for {
		key, kind, ok := s.key()
		if !ok {
			return 0, 0, false, false
		}
		if keyEqual(key, kind, path[0]) {
			// A later duplicate replaces this result, found or not.
			start, end, found, ok = s.lookup(path[1:])
		} else {
			ok = s.value()
		}
		if !ok {
			return 0, 0, false, false
		}
		s.skipSpace()
		switch s.peek() {
		case ',':
			s.i++
			s.skipSpace()
		case '}':
			s.i++
			s.depth--
			return start, end, found, true
		default:
			return 0, 0, false, false
		}
	}
}

// value reads one value, preceded by optional whitespace. It does not
// recurse: the kind of each open container is kept in a bit stack, so a
// deeply nested body cannot exhaust the goroutine stack, and a body nested
// no deeper than 256 levels is read without allocating.
func (s *scanner) value() bool {
	base := s.depth
	var small [4]uint64
	objects := small[:] // bit n is set when the nth container opened here is an object
	for {
		// A value is expected.
		s.skipSpace()
		switch c := s.peek(); c {
		case '{', '[':
			if !s.open() {
				return false
			}
			n := s.depth - base - 1
			if n/64 == len(objects) {
				objects = append(objects, make([]uint64, len(objects))...)
			}
			s.skipSpace()
			if c == '{' {
				objects[n/64] |= 1 << (n % 64)
				if s.peek() != '}' {
					if _, _, ok := s.key(); !ok {
						return false
					}
					continue
				}
			} else {
				objects[n/64] &^= 1 << (n % 64)
				if s.peek() != ']' {
					continue
				}
			}
			s.i++ // an empty object or array
			s.depth--
		case '"':
			if _, _, ok := s.str(); !ok {
				return false
			}
		case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
			if !s.number() {
				return false
			}
		case 't':
			if !s.literal("true") {
				return false
			}
		case 'f':
			if !s.literal("false") {
				return false
			}
		case 'n':
			if !s.literal("null") {
				return false
			}
		default:
			return false
		}
		// A value has ended: close the containers it completes, until one
		// expects another value.
		for s.depth > base {
			n := s.depth - base - 1
			object := objects[n/64]&(1<<(n%64)) != 0
			s.skipSpace()
			c := s.peek()
			if c == ',' {
				s.i++
				if object {
					s.skipSpace()
					if _, _, ok := s.key(); !ok {
						return false
					}
				}
				break
			}
			if object && c != '}' || !object && c != ']' {
				return false
			}
			s.i++
			s.depth--
		}
		if s.depth == base {
			return true
		}
	}
}

// key reads an object key, which must start at s.i, and the colon after it.
func (s *scanner) key() (content []byte, kind uint8, ok bool) {
	if s.peek() != '"' {
		return nil, 0, false
	}
	content, kind, ok = s.str()
	if !ok {
		return nil, 0, false
	}
	s.skipSpace()
	if s.peek() != ':' {
		return nil, 0, false
	}
	s.i++
	return content, kind, true
}

// What str found in a string, beyond printable ASCII.
const (
	strEscaped  = 1 << iota // a backslash escape
	strNonASCII             // a byte of 0x80 or more, perhaps not valid UTF-8
)

// plain marks the bytes that stand for themselves in a JSON string: printable
// ASCII other than the quote and the backslash.
var plain = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// str reads a string, which must start at s.i, and returns its content
// between the quotes, undecoded. Like json.Valid, it accepts any byte of
// 0x80 or more, valid UTF-8 or not.
func (s *scanner) str() (content []byte, kind uint8, ok bool) {
	d := s.data
	start := s.i + 1
	for i := start; i < len(d); {
		for i < len(d) && plain[d[i]] {
			i++
		}
		if i == len(d) {
			break
		}
		switch c := d[i]; {
		case c == '"':
			s.i = i + 1
			return d[start:i], kind, true
		case c == '\\':
			kind |= strEscaped
			if i+1 == len(d) {
				return nil, 0, false
			}
			switch d[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if len(d)-i < 6 || hex4(d[i+2:i+6]) < 0 {
					return nil, 0, false
				}
				i += 6
			default:
				return nil, 0, false
			}
		case c >= utf8.RuneSelf:
			kind |= strNonASCII
			i++
		default: // a control character
			return nil, 0, false
		}
	}
	return nil, 0, false
}

// number reads a number, which must start at s.i.
func (s *scanner) number() bool {
	d, i := s.data, s.i
	if d[i] == '-' {
		i++
	}
	switch {
	case i == len(d):
		return false
	case d[i] == '0':
		i++
	case '1' <= d[i] && d[i] <= '9':
		i = digits(d, i+1)
	default:
		return false
	}
	if i < len(d) && d[i] == '.' {
		i++
		if i == len(d) || !isDigit(d[i]) {
			return false
		}
		i = digits(d, i)
	}
	if i < len(d) && (d[i] == 'e' || d[i] == 'E') {
		i++
		if i < len(d) && (d[i] == '+' || d[i] == '-') {
			i++
		}
		if i == len(d) || !isDigit(d[i]) {
			return false
		}
		i = digits(d, i)
	}
	s.i = i
	return true
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// digits returns the index of the first byte at or after i that is not a digit.
func digits(d []byte, i int) int {
	for i < len(d) && isDigit(d[i]) {
		i++
	}
	return i
}

// literal reads lit, which is true, false or null.
func (s *scanner) literal(lit string) bool {
	if len(s.data)-s.i < len(lit) || string(s.data[s.i:s.i+len(lit)]) != lit {
		return false
	}
	s.i += len(lit)
	return true
}

// hex4 returns the value of four hex digits, or -1.
func hex4(b []byte) rune {
	var r rune
	for _, c := range b[:4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return -1
		}
		r = r<<4 | rune(c)
	}
	return r
}

// nextRune decodes the character of string content s that starts at i, as
// encoding/json does, and returns it with the index of the next one. A \u
// escape of a surrogate that does not start a valid pair, and each byte of
// invalid UTF-8, decode to U+FFFD. s must have been read by str.
func nextRune(s []byte, i int) (rune, int) {
	c := s[i]
	if c >= utf8.RuneSelf {
		r, n := utf8.DecodeRune(s[i:])
		return r, i + n
	}
	if c != '\\' {
		return rune(c), i + 1
	}
	switch s[i+1] {
	case 'b':
		return '\b', i + 2
	case 'f':
		return '\f', i + 2
	case 'n':
		return '\n', i + 2
	case 'r':
		return '\r', i + 2
	case 't':
		return '\t', i + 2
	case 'u':
		r := hex4(s[i+2:])
		i += 6
		if !utf16.IsSurrogate(r) {
			return r, i
		}
		if len(s)-i >= 6 && s[i] == '\\' && s[i+1] == 'u' {
			if dec := utf16.DecodeRune(r, hex4(s[i+2:])); dec != utf8.RuneError {
				return dec, i + 6
			}
		}
		return utf8.RuneError, i
	default: // '"', '\\' or '/'
		return rune(s[i+1]), i + 2
	}
}

// keyEqual reports whether the string content key, read by str with kind,
// decodes to want. It does not allocate.
func keyEqual(key []byte, kind uint8, want string) bool {
	if kind == 0 {
		return string(key) == want
	}
	if kind&strEscaped == 0 && string(key) == want {
		// Invalid UTF-8 in key would decode to U+FFFD, so not to want.
		return utf8.Valid(key)
	}
	j := 0
	for i := 0; i < len(key); {
		var r rune
		r, i = nextRune(key, i)
		if r < utf8.RuneSelf {
			if j == len(want) || want[j] != byte(r) {
				return false
			}
			j++
			continue
		}
		var buf [utf8.UTFMax]byte
		n := utf8.EncodeRune(buf[:], r)
		if len(want)-j < n || string(buf[:n]) != want[j:j+n] {
			return false
		}
		j += n
	}
	return j == len(want)
}

// decodeString decodes string content s, read by str, as json.Unmarshal
// does into a string. Content without escapes that is valid UTF-8 is
// converted as it is, in one allocation.
func decodeString(s []byte) string {
	i := 0
	for i < len(s) && plain[s[i]] {
		i++
	}
	if i == len(s) || bytes.IndexByte(s[i:], '\\') < 0 && utf8.Valid(s[i:]) {
		return string(s)
	}
	var b strings.Builder
	b.Grow(len(s))
	b.Write(s[:i])
	for i < len(s) {
		var r rune
		r, i = nextRune(s, i)
		b.WriteRune(r)
	}
	return b.String()
}

// appendDecoded appends string content s, read by str, decoded as
// decodeString does.
func appendDecoded(dst, s []byte) []byte {
	for i := 0; i < len(s); {
		var r rune
		r, i = nextRune(s, i)
		dst = utf8.AppendRune(dst, r)
	}
	return dst
}
