// Command publisher pushes events about an entity to the clients subscribed
// to it, through Switchboard's POST /@topics/{entity} extension. A backend
// consuming a queue would do the same for every event it reads.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

func main() {
	endpoint := flag.String("endpoint", "http://127.0.0.1:3001/dev", "the gateway's management URL")
	entity := flag.String("entity", "", "entity ID (the topic)")
	data := flag.String("data", "", "event to publish; without it, one event per line of standard input")
	flag.Parse()
	if *entity == "" {
		fmt.Fprintln(os.Stderr, "publisher: -entity is required")
		os.Exit(2)
	}
	p := &Publisher{Endpoint: *endpoint, Client: &http.Client{Timeout: 10 * time.Second}}
	events := []string{*data}
	if *data == "" {
		events = nil
		sc := bufio.NewScanner(os.Stdin)
		for sc.Scan() {
			events = append(events, sc.Text())
		}
	}
	for _, ev := range events {
		n, err := p.Publish(context.Background(), *entity, []byte(ev))
		if err != nil {
			fmt.Fprintln(os.Stderr, "publisher:", err)
			os.Exit(1)
		}
		fmt.Printf("published to %d subscriber(s) of %s\n", n, *entity)
	}
}

// Publisher posts events to a gateway's topics.
type Publisher struct {
	Endpoint string // e.g. http://127.0.0.1:3001/dev
	Client   *http.Client
}

// Publish sends one event to the subscribers of entity and returns how many it reached.
func (p *Publisher) Publish(ctx context.Context, entity string, event []byte) (int, error) {
	u := strings.TrimSuffix(p.Endpoint, "/") + "/@topics/" + url.PathEscape(entity)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, strings.NewReader(string(event)))
	if err != nil {
		return 0, err
	}
	resp, err := p.Client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("publish to %s: %w", entity, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("publish to %s: %s: %s", entity, resp.Status, strings.TrimSpace(string(body)))
	}
	var out struct {
		Recipients int `json:"recipients"`
	}
	if err := json.Unmarshal(body, &out); err != nil {
		return 0, fmt.Errorf("publish to %s: answer %q: %w", entity, body, err)
	}
	return out.Recipients, nil
}
