package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/switchboard-gateway/switchboard/internal/testutil"
)

// The tests in this file run three gateway processes as one cluster on a
// nats-server and on a redis-server, as cluster_test.go does, with a
// $connect whose http integration names each connection's user in the
// X-Switchboard-User header of its answer.

// connectUser is a $connect http integration that names the user given in
// the client's "user" query parameter.
func connectUser(w http.ResponseWriter, r *http.Request) {
	var ev struct {
		Query map[string]string `json:"queryStringParameters"`
	}
	if err := json.NewDecoder(r.Body).Decode(&ev); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if u := ev.Query["user"]; u != "" {
		w.Header().Set("X-Switchboard-User", u)
	}
	w.WriteHeader(http.StatusOK)
}

// startUserCluster starts node-a, node-b and node-c on f's engine with the
// built-in subscribe route and connectUser as $connect.
func startUserCluster(t *testing.T, f flavour) *cluster {
	t.Helper()
	hs := httptest.NewServer(http.HandlerFunc(connectUser))
	t.Cleanup(hs.Close)
	flags, eng := f.setup(t)
	cl := &cluster{engine: eng}
	dir := t.TempDir()
	for i, name := range []string{"node-a", "node-b", "node-c"} {
		cfg := filepath.Join(dir, name+".yaml")
		writeFile(t, cfg, fmt.Sprintf(`tls: {disable: true}
cluster: {ttl: %s, grace: %s}
routes:
  $connect:  {integration: {type: http, url: "%s/connect"}}
  subscribe: {integration: {type: subscribe}}
`, clusterTTL, clusterGrace, hs.URL))
		args := append([]string{"--config", cfg, "--node", name, "--log-format", "json"}, flags(i)...)
		env := []string{"SWITCHBOARD_DATA_DIR=" + filepath.Join(dir, name)}
		cl.nodes = append(cl.nodes, &node{gatewayProcess: launchProcess(t, env, args...), name: name})
	}
	for _, n := range cl.nodes {
		n.awaitBanner(t)
	}
	return cl
}

// dialUser connects a client of user to n and returns it, reading.
func dialUser(t *testing.T, n *node, user string) *client {
	t.Helper()
	c := &client{name: user, node: n, want: map[string]int{}, maybe: map[string]int{}, done: make(chan struct{})}
	c.ws = testutil.Dial(t, n.ws+"/?user="+user, nil)
	go c.read()
	t.Cleanup(func() {
		_ = c.ws.CloseNow()
		<-c.done
	})
	return c
}

type userListing struct {
	UserID      string `json:"userId"`
	Connections []struct {
		ConnectionID string `json:"connectionId"`
		Node         string `json:"node"`
		ConnectedAt  string `json:"connectedAt"`
	} `json:"connections"`
}

type presenceListing struct {
	Count int `json:"count"`
	Items []struct {
		ConnectionID string `json:"connectionId"`
		UserID       string `json:"userId"`
		Node         string `json:"node"`
	} `json:"items"`
}

// getJSON GETs url and decodes its 200 answer into out.
func getJSON(t *testing.T, url string, out any) error {
	t.Helper()
	status, body := mgmt(t, http.MethodGet, url, "")
	if status != http.StatusOK {
		return fmt.Errorf("GET %s = %d %s", url, status, body)
	}
	return json.Unmarshal([]byte(body), out)
}

// presenceByNode returns the members of topic through n, as "user@node".
func presenceByNode(t *testing.T, n *node, topic string) []string {
	t.Helper()
	var p presenceListing
	if err := getJSON(t, n.http+"/@topics/"+topic+"/presence", &p); err != nil {
		t.Log(err) // an engine electing a leader may fail a call meanwhile
		return nil
	}
	var out []string
	for _, m := range p.Items {
		out = append(out, m.UserID+"@"+m.Node)
	}
	slices.Sort(out)
	return out
}

// TestClusterUsers: a user with a connection on two nodes gets one message
// on each from POST /@users/{id} through the third; GET lists both with
// their nodes; the users online and a topic's presence are the same
// through every node; a SIGKILLed node's members leave the presence within
// the TTL; DELETE closes the user's connections on every node.
func TestClusterUsers(t *testing.T) {
	t.Parallel()
	for _, f := range flavours {
		if f.name == "embedded" {
			continue // the engine's contract is the same; two engines suffice here
		}
		t.Run(f.name, func(t *testing.T) {
			t.Parallel()
			cl := startUserCluster(t, f)
			a, b, c := cl.nodes[0], cl.nodes[1], cl.nodes[2]
			onA, onB := dialUser(t, a, "alice"), dialUser(t, b, "alice")
			bob, carol := dialUser(t, c, "bob"), dialUser(t, c, "carol")
			for _, cl := range []*client{onA, onB, bob, carol} {
				cl.send(t, `{"action":"subscribe","entityId":"room"}`)
			}
			want := []string{"alice@node-a", "alice@node-b", "bob@node-c", "carol@node-c"}
			for _, n := range cl.nodes {
				testutil.Eventually(t, 20*time.Second, func() bool { return slices.Equal(presenceByNode(t, n, "room"), want) },
					"presence of room through %s is not %q", n.name, want)
			}
			var users struct {
				Count int      `json:"count"`
				Items []string `json:"items"`
			}
			if err := getJSON(t, b.http+"/@users", &users); err != nil || users.Count != 3 || !slices.Equal(users.Items, []string{"alice", "bob", "carol"}) {
				t.Errorf("GET node-b /@users = %+v, %v; want alice, bob, carol", users, err)
			}

			expect("to-alice", onA, onB)
			status, body := mgmt(t, http.MethodPost, c.http+"/@users/alice", "to-alice")
			var d struct {
				Delivered int      `json:"delivered"`
				Failed    []string `json:"failed"`
			}
			if status != http.StatusOK || json.Unmarshal([]byte(body), &d) != nil || d.Delivered != 2 {
				t.Fatalf("POST node-c /@users/alice = %d %s, want 200 and delivered 2", status, body)
			}
			settle(t, a, onA, onB, bob, carol) // one copy each, none elsewhere

			var u userListing
			if err := getJSON(t, c.http+"/@users/alice", &u); err != nil || len(u.Connections) != 2 {
				t.Fatalf("GET node-c /@users/alice = %+v, %v; want two connections", u, err)
			}
			if nodes := []string{u.Connections[0].Node, u.Connections[1].Node}; !slices.Contains(nodes, "node-a") || !slices.Contains(nodes, "node-b") {
				t.Errorf("GET /@users/alice names nodes %q, want node-a and node-b", nodes)
			}

			// SIGKILL node-c: bob and carol leave the presence within the TTL.
			if err := c.cmd.Process.Kill(); err != nil {
				t.Fatal(err)
			}
			killed := time.Now()
			c.wait(t)
			bound := 5*clusterTTL + 20*time.Second // the lease lapses within the TTL; the rest is for a loaded machine
			wantAfter := []string{"alice@node-a", "alice@node-b"}
			testutil.Eventually(t, bound, func() bool { return slices.Equal(presenceByNode(t, a, "room"), wantAfter) },
				"presence through node-a still lists node-c's members")
			t.Logf("node-c SIGKILLed: its members left the presence after %v (cluster.ttl %v)", time.Since(killed).Round(10*time.Millisecond), clusterTTL)
			if err := getJSON(t, b.http+"/@users", &users); err != nil || !slices.Equal(users.Items, []string{"alice"}) {
				t.Errorf("GET node-b /@users after the kill = %+v, %v; want alice alone", users, err)
			}

			status, body = mgmt(t, http.MethodDelete, b.http+"/@users/alice", "")
			if status != http.StatusOK || json.Unmarshal([]byte(body), &d) != nil || d.Delivered != 2 {
				t.Fatalf("DELETE node-b /@users/alice = %d %s, want 200 and delivered 2", status, body)
			}
			for _, cl := range []*client{onA, onB} {
				if code := cl.closed(t); code != websocket.StatusNormalClosure {
					t.Errorf("alice's connection on %s closed with %d, want 1000", cl.node.name, code)
				}
			}
			testutil.Eventually(t, 20*time.Second, func() bool {
				var u userListing
				return getJSON(t, a.http+"/@users/alice", &u) == nil && len(u.Connections) == 0
			}, "alice still has connections after DELETE")
		})
	}
}
