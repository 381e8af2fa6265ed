package redisqueue

import (
	"encoding/binary"
	"errors"

	"github.com/switchboard-gateway/switchboard/internal/queue"
)

// bodyVersion starts every encoded body, so that a later encoding can be
// told apart.
const bodyVersion = 1

// errCorrupt: a stored message does not decode.
var errCorrupt = errors.New("corrupt message")

// encodeBody encodes a message's body and attributes byte for byte (JSON
// would replace invalid UTF-8), keeping a nil map and a nil BinaryValue
// apart from empty ones: a version byte, then uvarint lengths before each
// string; a count or a BinaryValue's length is stored plus one, zero for
// nil.
func encodeBody(body string, attrs map[string]queue.MessageAttribute) []byte {
	n := 1 + binary.MaxVarintLen64 + len(body)
	for k, a := range attrs {
		n += 4*binary.MaxVarintLen64 + a.Size(k)
	}
	b := make([]byte, 0, n)
	b = append(b, bodyVersion)
	b = appendString(b, body)
	if attrs == nil {
		return binary.AppendUvarint(b, 0)
	}
	b = binary.AppendUvarint(b, uint64(len(attrs))+1)
	for k, a := range attrs {
		b = appendString(b, k)
		b = appendString(b, a.DataType)
		b = appendString(b, a.StringValue)
		if a.BinaryValue == nil {
			b = binary.AppendUvarint(b, 0)
		} else {
			b = binary.AppendUvarint(b, uint64(len(a.BinaryValue))+1)
			b = append(b, a.BinaryValue...)
		}
	}
	return b
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// decodeBody reverses encodeBody.
func decodeBody(s string) (body string, attrs map[string]queue.MessageAttribute, err error) {
	d := decoder{s: s}
	if len(s) == 0 || s[0] != bodyVersion {
		return "", nil, errCorrupt
	}
	d.s = s[1:]
	body = d.str()
	count := d.uvarint()
	if count > 0 {
		attrs = make(map[string]queue.MessageAttribute, min(count-1, 64))
		for range count - 1 {
			k := d.str()
			a := queue.MessageAttribute{DataType: d.str(), StringValue: d.str()}
			if n := d.uvarint(); n > 0 {
				a.BinaryValue = []byte(d.take(n - 1))
			}
			if d.bad {
				break
			}
			attrs[k] = a
		}
	}
	if d.bad || len(d.s) != 0 {
		return "", nil, errCorrupt
	}
	return body, attrs, nil
}

// decoder reads what encodeBody wrote; bad is set at the first thing
// missing, and every read after returns zero.
type decoder struct {
	s   string
	bad bool
}

func (d *decoder) uvarint() uint64 {
	if d.bad {
		return 0
	}
	v, n := binary.Uvarint([]byte(d.s[:min(len(d.s), binary.MaxVarintLen64)]))
	if n <= 0 {
		d.bad = true
		return 0
	}
	d.s = d.s[n:]
	return v
}

func (d *decoder) take(n uint64) string {
	if d.bad || n > uint64(len(d.s)) {
		d.bad = true
		return ""
	}
	v := d.s[:n]
	d.s = d.s[n:]
	return v
}

func (d *decoder) str() string { return d.take(d.uvarint()) }
