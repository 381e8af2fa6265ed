package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
)

// queuesText is the paragraph of `switchboard queues`' help.
const queuesText = `Lists and redrives the gateway's queues (Switchboard extensions of the
management API): list prints every queue with its message counts, its
dead-letter queue and, for a dead-letter queue, the queues it serves, as
JSON; show prints one queue and its first 100 messages, without receiving
them (a dead letter names the queue it came from); redrive moves every
message of a dead-letter queue back to the queue it came from, visible at
once with its receive count reset, and says how many moved ('switchboard
queues show orders-dlq', 'switchboard queues redrive orders-dlq'). Endpoint and
credentials are those of the other management commands: --endpoint (env
SWITCHBOARD_ENDPOINT, default ` + defaultEndpoint + `), --token or SigV4 keys.`

// queuesHelp is the help text of `switchboard queues`, whose verb comes first.
func queuesHelp() *Help {
	h := &Help{Usage: []string{"switchboard queues list|show|redrive [flags] [QUEUE]"}, Text: queuesText}
	for _, verb := range []string{"list", "show", "redrive"} {
		h.Examples = append(h.Examples, manageExamples["queues "+verb]...)
	}
	return h
}

// manageQueues runs "queues list", "queues show" and "queues redrive".
func manageQueues(ctx context.Context, c *client, command string, pos []string, stdout io.Writer) error {
	switch command {
	case "queues list":
		return printJSON(ctx, c, command, "/@queues", nil, stdout)
	case "queues show":
		return printJSON(ctx, c, command+" "+pos[0], "/@queues/"+escapeSegment(pos[0]), nil, stdout)
	case "queues redrive":
		resp, err := c.do(ctx, http.MethodPost, "/@queues/"+escapeSegment(pos[0])+"/redrive", nil, nil)
		if err != nil {
			return fmt.Errorf("%s %s: %w", command, pos[0], err)
		}
		var d struct {
			Moved *int `json:"moved"`
		}
		if err := json.Unmarshal(resp, &d); err != nil || d.Moved == nil {
			return fmt.Errorf("%s %s: unexpected answer %.200q", command, pos[0], resp)
		}
		fmt.Fprintf(stdout, "moved %s from %s back to their queues\n", plural(*d.Moved, "message"), pos[0])
		return nil
	}
	return Usagef("unknown management command %q", command)
}
