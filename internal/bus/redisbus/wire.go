package redisbus

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Every message on the bus's channels is one envelope:
//
//	version byte (1) | kind byte | op byte | id uvarint |
//	sender (uvarint length + bytes) | a (uvarint length + bytes) | b (uvarint length + bytes)
//
// kind publish: a = topic, b = data. broadcast: b = data.
// request: op, id, a = connection ID, b = data. reply: id, a = error name, b = state (Describe).
// ping: id; sent by a node to its own channel and answered by receiving it.
const wireVersion = 1

type kind byte

const (
	kindPublish kind = iota + 1
	kindBroadcast
	kindRequest
	kindReply
	kindPing
)

type op byte

const (
	opSend op = iota + 1
	opDisconnect
	opDescribe
)

func (o op) String() string {
	switch o {
	case opSend:
		return "send"
	case opDisconnect:
		return "disconnect"
	case opDescribe:
		return "describe"
	}
	return fmt.Sprintf("op(%d)", byte(o))
}

type envelope struct {
	kind   kind
	op     op
	id     uint64
	sender string
	a      string
	b      []byte
}

var errMalformed = errors.New("redisbus: malformed message")

func (e envelope) encode() []byte {
	buf := make([]byte, 0, 3+binary.MaxVarintLen64*4+len(e.sender)+len(e.a)+len(e.b))
	buf = append(buf, wireVersion, byte(e.kind), byte(e.op))
	buf = binary.AppendUvarint(buf, e.id)
	buf = appendBytes(buf, []byte(e.sender))
	buf = appendBytes(buf, []byte(e.a))
	buf = appendBytes(buf, e.b)
	return buf
}

func appendBytes(buf, p []byte) []byte {
	buf = binary.AppendUvarint(buf, uint64(len(p)))
	return append(buf, p...)
}

func decode(p []byte) (envelope, error) {
	var e envelope
	if len(p) < 3 || p[0] != wireVersion {
		return e, errMalformed
	}
	e.kind, e.op = kind(p[1]), op(p[2])
	p = p[3:]
	id, n := binary.Uvarint(p)
	if n <= 0 {
		return e, errMalformed
	}
	e.id, p = id, p[n:]
	var sender, a []byte
	var err error
	if sender, p, err = readBytes(p); err != nil {
		return e, err
	}
	if a, p, err = readBytes(p); err != nil {
		return e, err
	}
	if e.b, p, err = readBytes(p); err != nil {
		return e, err
	}
	if len(p) != 0 {
		return e, errMalformed
	}
	e.sender, e.a = string(sender), string(a)
	return e, nil
}

func readBytes(p []byte) (field, rest []byte, err error) {
	l, n := binary.Uvarint(p)
	if n <= 0 || l > uint64(len(p)-n) {
		return nil, nil, errMalformed
	}
	return p[n : n+int(l)], p[n+int(l):], nil
}
