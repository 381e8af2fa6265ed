// Package apigw holds the API Gateway WebSocket wire contract that Switchboard
// copies: identifier shapes, the error frames the gateway itself sends to
// clients, the management API's error types and timestamp format, and the
// default limits. It is pure: no I/O and no goroutines.
package apigw

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"hash/fnv"
	mrand "math/rand/v2"
	"strings"
	"time"
)

// Default limits, as API Gateway applies them.
const (
	// MaxMessageBytes is the largest message a client may send (128 KB).
	MaxMessageBytes = 128 * 1024
	// MaxPostBytes is the largest PostToConnection payload.
	MaxPostBytes = 131072
	// IdleTimeout closes a connection that exchanged no data message for this long.
	IdleTimeout = 10 * time.Minute
	// MaxConnectionDuration closes every connection after this long.
	MaxConnectionDuration = 2 * time.Hour
)

// Route keys API Gateway reserves.
const (
	RouteConnect    = "$connect"
	RouteDisconnect = "$disconnect"
	RouteDefault    = "$default"
)

// Event types, as in requestContext.eventType.
const (
	EventConnect    = "CONNECT"
	EventMessage    = "MESSAGE"
	EventDisconnect = "DISCONNECT"
)

// idBytes random bytes make a 16-character identifier ending in "=", the
// shape of API Gateway's connection, request and message IDs; 88 random
// bits make them unguessable.
const idBytes = 11

// NewID returns a fresh random identifier shaped like API Gateway's
// (for example "R1kmxc2VNjMCFIA="), in URL-safe base64 so that it only
// needs "=" escaped in a path.
func NewID() string {
	var b [idBytes]byte
	_, _ = rand.Read(b[:]) // never returns an error: it crashes the program instead
	return base64.URLEncoding.EncodeToString(b[:])
}

// NewIDPair returns two fresh identifiers shaped as NewID's, in one
// allocation: a message's request and message IDs. They need to be unique,
// not unguessable (no request is authorized by its ID, where a connection
// ID is a handle on the connection), so their 88 bits each come from the
// runtime's per-thread generator (math/rand/v2) rather than the system's
// entropy, a tenth of a message's routing work when they did.
func NewIDPair() (string, string) {
	var b [24]byte // 2 × idBytes, and room for the third word
	binary.LittleEndian.PutUint64(b[0:], mrand.Uint64())
	binary.LittleEndian.PutUint64(b[8:], mrand.Uint64())
	binary.LittleEndian.PutUint64(b[16:], mrand.Uint64())
	const n = 16 // base64.URLEncoding.EncodedLen(idBytes)
	var s [2 * n]byte
	base64.URLEncoding.Encode(s[:n], b[:idBytes])
	base64.URLEncoding.Encode(s[n:], b[idBytes:2*idBytes])
	both := string(s[:])
	return both[:n], both[n:]
}

// NewUUID returns a random UUID (version 4, RFC 9562), the shape of AWS's
// request and message IDs: SQS's MessageId, EventBridge's event IDs,
// Lambda's request IDs.
func NewUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])  // never returns an error: it crashes the program instead
	b[6] = b[6]&0x0f | 0x40 // version 4
	b[8] = b[8]&0x3f | 0x80 // variant 10
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// NodeTagBits is how many leading bits of a connection ID NewTaggedID gives
// to the node tag: the first two characters. The other 76 bits stay random,
// so IDs remain unguessable and a node can make 2^38 before two of its own
// are likely to collide.
const NodeTagBits = 12

// NodeTag returns the tag of a node name: 12 bits of its FNV-1a hash. Two
// nodes of a cluster share a tag with a chance of about n²/8192 for n nodes;
// users of tags must treat a tag as a hint, not as proof.
func NodeTag(node string) uint16 {
	h := fnv.New32a()
	_, _ = h.Write([]byte(node))
	return uint16(h.Sum32() & (1<<NodeTagBits - 1))
}

// NewTaggedID returns an identifier shaped like NewID's whose first 12 bits
// (its first two characters) are tag, for the node holding the connection.
func NewTaggedID(tag uint16) string {
	var b [idBytes]byte
	_, _ = rand.Read(b[:])
	b[0] = byte(tag >> 4)
	b[1] = b[1]&0x0f | byte(tag&0x0f)<<4
	return base64.URLEncoding.EncodeToString(b[:])
}

// IDTag returns the node tag of an ID made by NewTaggedID (any valid ID has
// one; only the gateway knows whether it was tagged).
func IDTag(id string) (uint16, bool) {
	if !ValidID(id) {
		return 0, false
	}
	var b [3]byte
	if _, err := base64.URLEncoding.Decode(b[:], []byte(id[:4])); err != nil {
		return 0, false
	}
	return uint16(b[0])<<4 | uint16(b[1]>>4), true
}

// ValidID reports whether id has the shape NewID produces. Handlers use it to
// answer malformed IDs without a registry lookup.
func ValidID(id string) bool {
	if len(id) != 16 || id[15] != '=' {
		return false
	}
	for i := range 15 {
		c := id[i]
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	// Strict rejects an ID whose unused low bits are set: NewID never makes one.
	_, err := base64.URLEncoding.Strict().DecodeString(id)
	return err == nil
}

// Messages of the error frames the gateway sends to a client.
const (
	MsgForbidden           = "Forbidden"
	MsgInternalServerError = "Internal server error"
	MsgTimedOut            = "Endpoint request timed out"
	MsgTooManyRequests     = "Too Many Requests"
)

// ErrorFrame renders a gateway error frame with API Gateway's exact spacing:
//
//	{"message": "Forbidden", "connectionId":"XDmENcnwIE0CFEQ=", "requestId":"XDmGEE2RoE0FRdQ="}
func ErrorFrame(message, connID, requestID string) []byte {
	var b strings.Builder
	b.Grow(64 + len(message) + len(connID) + len(requestID))
	b.WriteString(`{"message": `)
	b.Write(jsonString(message))
	b.WriteString(`, "connectionId":`)
	b.Write(jsonString(connID))
	b.WriteString(`, "requestId":`)
	b.Write(jsonString(requestID))
	b.WriteString(`}`)
	return []byte(b.String())
}

func jsonString(s string) []byte {
	b, _ := json.Marshal(s) // a string always marshals
	return b
}

// Management API error types, sent in the x-amzn-ErrorType header; the AWS
// SDKs map them to their typed errors.
const (
	ErrTypeGone            = "GoneException"
	ErrTypeForbidden       = "ForbiddenException"
	ErrTypePayloadTooLarge = "PayloadTooLargeException"
	ErrTypeLimitExceeded   = "LimitExceededException"
	ErrTypeBadRequest      = "BadRequestException"
	ErrTypeNotFound        = "NotFoundException"
)

// FormatTime formats t as the management API does (ISO 8601, milliseconds, UTC):
// "2025-02-03T01:46:33.523Z".
func FormatTime(t time.Time) string {
	return t.UTC().Format("2006-01-02T15:04:05.000Z")
}

// RequestTime formats t as requestContext.requestTime: "20/Jan/2024:11:55:00 +0000".
func RequestTime(t time.Time) string {
	return t.UTC().Format("02/Jan/2006:15:04:05 +0000")
}
