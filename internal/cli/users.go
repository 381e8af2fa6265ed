package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
)

// manageUsers runs the user and presence commands: "users", "user send",
// "user list", "user disconnect" and "presence".
func manageUsers(ctx context.Context, c *client, command string, pos []string, data func(string) ([]byte, error), limit int, cursor string, stdout io.Writer) error {
	page := url.Values{}
	if limit > 0 {
		page.Set("limit", strconv.Itoa(limit))
	}
	if cursor != "" {
		page.Set("cursor", cursor)
	}
	switch command {
	case "users":
		return printJSON(ctx, c, command, "/@users", page, stdout)
	case "presence":
		return printJSON(ctx, c, "presence "+pos[0], "/@topics/"+escapeSegment(pos[0])+"/presence", page, stdout)
	case "user list":
		return printJSON(ctx, c, command+" "+pos[0], "/@users/"+escapeSegment(pos[0]), nil, stdout)
	case "user send", "user disconnect":
		user := pos[0]
		method, body, verb := http.MethodDelete, []byte(nil), "disconnected"
		if command == "user send" {
			b, err := data(pos[1])
			if err != nil {
				return err
			}
			method, body, verb = http.MethodPost, b, "sent "+plural(len(b), "byte")+" to"
		}
		resp, err := c.do(ctx, method, "/@users/"+escapeSegment(user), nil, body)
		if err != nil {
			return fmt.Errorf("%s %s: %w", command, user, err)
		}
		if err := printDelivery(resp, verb, user, stdout); err != nil {
			return fmt.Errorf("%s %s: %w", command, user, err)
		}
		return nil
	}
	return Usagef("unknown management command %q", command)
}

// printJSON GETs path and prints the JSON answer indented.
func printJSON(ctx context.Context, c *client, op, path string, query url.Values, stdout io.Writer) error {
	resp, err := c.do(ctx, http.MethodGet, path, query, nil)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	var out bytes.Buffer
	if err := json.Indent(&out, bytes.TrimSpace(resp), "", "  "); err != nil {
		return fmt.Errorf("%s: the answer is not JSON: %w", op, err)
	}
	out.WriteByte('\n')
	_, err = out.WriteTo(stdout)
	return err
}
