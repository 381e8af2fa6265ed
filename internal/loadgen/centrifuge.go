package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/coder/websocket"
)

// The protocols --protocol names.
const (
	// protoAPIGW is the API Gateway WebSocket contract: a connection is open
	// once the WebSocket handshake is done, and every frame is one message.
	protoAPIGW = "apigw"
	// protoCentrifuge is the client protocol of github.com/centrifugal/centrifuge
	// (the core of Centrifugo), version 2, in JSON over WebSocket.
	protoCentrifuge = "centrifuge"
)

// In the centrifuge protocol a client sends commands, {"id":N,"connect":{…}}
// and the like, and the server answers each with a reply carrying the same
// id, {"id":N,"connect":{…}} or {"id":N,"error":{"code":C,"message":M}}.
// Publications in a subscribed channel arrive as pushes, replies without an
// id: {"push":{"channel":CH,"pub":{"data":D}}}. One frame holds one or more
// commands or replies, each on a line of its own. The server's ping is an
// empty reply, {}, which the client answers with an empty command when the
// connect reply said "pong": true.
//
// A session begins with the connect command, the first one allowed; the
// load generator counts a connection as open once its connect reply came.
// Data is any JSON value: a payload travels as a JSON string, which it needs
// no escaping in.
const (
	cfConnectID   = 1
	cfSubscribeID = 2 // a fanout subscriber's subscribe command
	cfFirstID     = 3 // the rpc and publish commands of a connection, from here on
	// cfChannel is the channel of a fanout without --topic.
	cfChannel = "bench"
	// cfEchoMethod is the RPC method echo calls: it must answer its data.
	cfEchoMethod = "echo"
	// cfPublishPath is the server API's publish, after --mgmt-url:
	// {"channel":C,"data":D} publishes D in C.
	cfPublishPath = "/api/publish"
)

var (
	cfConnect = []byte(`{"id":1,"connect":{"name":"` + userAgentPrefix + `"}}`)
	cfPing    = []byte(`{}`)
)

// CentrifugeError is an error reply of a centrifuge server.
type CentrifugeError struct {
	Code    uint32 `json:"code"`
	Message string `json:"message"`
}

func (e *CentrifugeError) Error() string {
	return fmt.Sprintf("centrifuge error %d: %s", e.Code, e.Message)
}

// cfReply is what the load generator reads of a centrifuge reply.
type cfReply struct {
	ID    uint32           `json:"id"`
	Error *CentrifugeError `json:"error"`
	Push  json.RawMessage  `json:"push"`
}

// parseCfReply decodes one reply and returns its id, and its error reply as
// a *CentrifugeError.
func parseCfReply(msg []byte) (uint32, error) {
	var r cfReply
	if err := json.Unmarshal(msg, &r); err != nil {
		return 0, fmt.Errorf("centrifuge reply %.100q: %w", msg, err)
	}
	if r.Error != nil {
		return r.ID, r.Error
	}
	return r.ID, nil
}

// eachMessage calls fn with every message of a frame received over proto: the
// frame itself in the API Gateway contract, each non-empty line of it in
// centrifuge's.
func eachMessage(proto string, frame []byte, fn func(msg []byte)) {
	if proto != protoCentrifuge {
		fn(frame)
		return
	}
	for len(frame) > 0 {
		line, rest, _ := bytes.Cut(frame, []byte{'\n'})
		if len(bytes.TrimSpace(line)) > 0 {
			fn(line)
		}
		frame = rest
	}
}

// isCfPing reports whether msg is a centrifuge server's ping.
func isCfPing(msg []byte) bool { return bytes.Equal(bytes.TrimSpace(msg), cfPing) }

// cfPong answers a ping on c.
func cfPong(ctx context.Context, c *websocket.Conn) error {
	return c.Write(ctx, websocket.MessageText, cfPing)
}

// answerPings answers every ping in a frame received over proto; it returns
// the first write error.
func answerPings(ctx context.Context, proto string, c *websocket.Conn, frame []byte) error {
	var err error
	eachMessage(proto, frame, func(msg []byte) {
		if err == nil && proto == protoCentrifuge && isCfPing(msg) {
			err = cfPong(ctx, c)
		}
	})
	return err
}

// cfHandshake sends the connect command on c and waits, within ctx, for its
// reply, answering pings meanwhile.
func cfHandshake(ctx context.Context, c *websocket.Conn) error {
	if err := c.Write(ctx, websocket.MessageText, cfConnect); err != nil {
		return fmt.Errorf("centrifuge connect: %w", err)
	}
	for {
		_, frame, err := c.Read(ctx)
		if err != nil {
			return fmt.Errorf("centrifuge connect: %w", err)
		}
		var (
			done   bool
			result error
		)
		eachMessage(protoCentrifuge, frame, func(msg []byte) {
			if done {
				return
			}
			if isCfPing(msg) {
				result = cfPong(ctx, c)
				done = result != nil
				return
			}
			id, err := parseCfReply(msg)
			if err != nil || id == cfConnectID {
				done, result = true, err
			}
		})
		if done {
			if result != nil {
				return fmt.Errorf("centrifuge connect: %w", result)
			}
			return nil
		}
	}
}

// cfSubscribe is a subscriber's subscribe command to channel.
func cfSubscribe(channel string) []byte {
	ch, _ := json.Marshal(channel)
	return []byte(`{"id":` + strconv.Itoa(cfSubscribeID) + `,"subscribe":{"channel":` + string(ch) + `}}`)
}

// appendCfRPC appends the rpc command of id calling method with payload as
// its data, a JSON string.
func appendCfRPC(b []byte, id uint32, method string, payload []byte) []byte {
	b = append(b, `{"id":`...)
	b = strconv.AppendUint(b, uint64(id), 10)
	b = append(b, `,"rpc":{"method":`...)
	b = strconv.AppendQuote(b, method)
	b = append(b, `,"data":"`...)
	b = append(b, payload...)
	return append(b, `"}}`...)
}

// cfPublisher publishes fanout payloads as a centrifuge client: publish
// commands in channel, on a connection whose replies its reader checks.
type cfPublisher struct {
	c       *websocket.Conn
	channel []byte // JSON string
	id      uint32
	msg     []byte
}

func (p *cfPublisher) publish(ctx context.Context, payload []byte) error {
	if p.id == 0 {
		p.id = cfFirstID
	}
	p.msg = append(p.msg[:0], `{"id":`...)
	p.msg = strconv.AppendUint(p.msg, uint64(p.id), 10)
	p.msg = append(p.msg, `,"publish":{"channel":`...)
	p.msg = append(p.msg, p.channel...)
	p.msg = append(p.msg, `,"data":"`...)
	p.msg = append(p.msg, payload...)
	p.msg = append(p.msg, `"}}`...)
	p.id++
	return p.c.Write(ctx, websocket.MessageText, p.msg)
}

func (p *cfPublisher) fatal(error) bool { return true }
func (p *cfPublisher) close()           {} // closed with the subscribers
