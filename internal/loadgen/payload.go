package loadgen

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"strconv"
)

// A payload is "~SEQ~TS~TAG" padded with 'x' to the requested size: a
// sequence number, the send time in nanoseconds since the run's start, and
// the run's tag, which tells the run's messages from other senders' on the
// same server. It needs no escaping in a JSON string and survives any route
// that echoes or forwards it.

// appendPayload appends the payload of seq to b, padded to size bytes; a
// size too small for the numbers and the tag is exceeded.
func appendPayload(b []byte, size int, seq, ts int64, tag string) []byte {
	start := len(b)
	b = append(b, '~')
	b = strconv.AppendInt(b, seq, 10)
	b = append(b, '~')
	b = strconv.AppendInt(b, ts, 10)
	b = append(b, '~')
	b = append(b, tag...)
	for len(b)-start < size {
		b = append(b, 'x')
	}
	return b
}

// parsePayload finds the first "~SEQ~TS~" in data; rest is what follows it.
func parsePayload(data []byte) (seq, ts int64, rest []byte, ok bool) {
	for i := 0; ; i++ {
		j := bytes.IndexByte(data[i:], '~')
		if j < 0 {
			return 0, 0, nil, false
		}
		i += j
		n, end, found := digits(data, i+1)
		if !found || end >= len(data) || data[end] != '~' {
			continue
		}
		t, tend, found := digits(data, end+1)
		if !found || tend >= len(data) || data[tend] != '~' {
			continue
		}
		return n, t, data[tend+1:], true
	}
}

// ours reports whether data is a payload with the given tag.
func ours(data []byte, tag string) (seq, ts int64, isPayload, isOurs bool) {
	seq, ts, rest, ok := parsePayload(data)
	return seq, ts, ok, ok && bytes.HasPrefix(rest, []byte(tag))
}

// digits parses the decimal number starting at data[i] and returns it and
// the index after it.
func digits(data []byte, i int) (n int64, end int, ok bool) {
	end = i
	for end < len(data) && data[end] >= '0' && data[end] <= '9' && end-i < 18 {
		n = n*10 + int64(data[end]-'0')
		end++
	}
	return n, end, end > i
}

// newTag returns a random tag of 8 hexadecimal digits.
func newTag() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
