package config_test

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-gateway/switchboard/internal/config"
)

func TestClusterFromYAML(t *testing.T) {
	t.Parallel()
	path := writeFile(t, `
cluster:
  url: embedded
  node: a
  ttl: 20s
  grace: 5s
  callTimeout: 2s
  token: tok
  tls: {caFile: ca.pem}
  embedded:
    listen: 127.0.0.1:4222
    cluster: 127.0.0.1:6222
    peers: [127.0.0.1:6222, 127.0.0.1:6223]
    storeDir: /var/lib/sb
`)
	// tls.caFile is relative to the file's directory, and must exist.
	caFile := filepath.Join(filepath.Dir(path), "ca.pem")
	if err := os.WriteFile(caFile, []byte("not checked here"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path, func(string) string { return "" }, config.Overrides{})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	want := config.Cluster{
		URL: "embedded", Node: "a", TTL: config.Duration(20 * time.Second), Grace: config.Duration(5 * time.Second),
		CallTimeout: config.Duration(2 * time.Second), Token: "tok", TLS: config.ClusterTLS{CAFile: caFile},
		Embedded: config.Embedded{Listen: "127.0.0.1:4222", Cluster: "127.0.0.1:6222",
			Peers: []string{"127.0.0.1:6222", "127.0.0.1:6223"}, StoreDir: "/var/lib/sb"},
	}
	if !reflect.DeepEqual(cfg.Cluster, want) {
		t.Errorf("Cluster = %+v\nwant %+v", cfg.Cluster, want)
	}
}

// TestClusterDefaultsStayZero: absent cluster settings stay zero, for the
// cluster package and the gateway to apply their own defaults.
func TestClusterDefaultsStayZero(t *testing.T) {
	t.Parallel()
	cfg, err := config.Load(writeFile(t, "cluster: {url: 'nats://127.0.0.1:4222'}\n"), func(string) string { return "" }, config.Overrides{})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if c := cfg.Cluster; c.TTL != 0 || c.Grace != 0 || c.CallTimeout != 0 || c.Node != "" {
		t.Errorf("Cluster = %+v, want ttl, grace, callTimeout and node zero", c)
	}
}

func TestClusterPrecedence(t *testing.T) {
	t.Parallel()
	file := writeFile(t, "cluster:\n  url: 'nats://file:4222'\n  node: file\n")
	embedded := writeFile(t, "cluster:\n  url: embedded\n  embedded: {cluster: 'file:1', peers: ['file:1']}\n")
	env := map[string]string{
		"SWITCHBOARD_CLUSTER": "redis://env:6379", "SWITCHBOARD_NODE": "env",
	}
	envEmbedded := map[string]string{
		"SWITCHBOARD_CLUSTER_LISTEN": "env:2", "SWITCHBOARD_CLUSTER_PEERS": "env:2, env:3",
	}
	tests := []struct {
		name  string
		path  string
		env   map[string]string
		flags config.Overrides
		want  config.Cluster
	}{
		{"file", file, nil, config.Overrides{}, config.Cluster{URL: "nats://file:4222", Node: "file"}},
		{"env over file", file, env, config.Overrides{}, config.Cluster{URL: "redis://env:6379", Node: "env"}},
		{"flags over env", file, env, config.Overrides{Cluster: "nats://flag:4222", Node: "flag"},
			config.Cluster{URL: "nats://flag:4222", Node: "flag"}},
		{"env alone", "", env, config.Overrides{}, config.Cluster{URL: "redis://env:6379", Node: "env"}},
		{"embedded from file", embedded, nil, config.Overrides{},
			config.Cluster{URL: "embedded", Embedded: config.Embedded{Cluster: "file:1", Peers: []string{"file:1"}}}},
		{"embedded env over file", embedded, envEmbedded, config.Overrides{},
			config.Cluster{URL: "embedded", Embedded: config.Embedded{Cluster: "env:2", Peers: []string{"env:2", "env:3"}}}},
		{"embedded flags over env", embedded, envEmbedded, config.Overrides{ClusterListen: "flag:4", ClusterPeers: "flag:4,flag:5,"},
			config.Cluster{URL: "embedded", Embedded: config.Embedded{Cluster: "flag:4", Peers: []string{"flag:4", "flag:5"}}}},
		{"flags alone", "", nil, config.Overrides{Cluster: "embedded", Node: "n", ClusterListen: "h:1", ClusterPeers: "h:1,h:2"},
			config.Cluster{URL: "embedded", Node: "n", Embedded: config.Embedded{Cluster: "h:1", Peers: []string{"h:1", "h:2"}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg, err := config.Load(tt.path, func(k string) string { return tt.env[k] }, tt.flags)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if !reflect.DeepEqual(cfg.Cluster, tt.want) {
				t.Errorf("Cluster = %+v, want %+v", cfg.Cluster, tt.want)
			}
		})
	}
}

func TestClusterErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		yaml  string
		flags config.Overrides
		want  string
	}{
		{"unknown scheme", "cluster: {url: 'amqp://h:1'}", config.Overrides{}, `scheme "amqp" not supported`},
		{"no scheme", "cluster: {url: 'h:4222'}", config.Overrides{}, "want nats://host:port, redis://host:port or embedded"},
		{"password hidden", "cluster: {url: 'ftp://u:hunter2@h:1'}", config.Overrides{}, "u:xxxxx@h:1"},
		{"node without url", "cluster: {node: a}", config.Overrides{}, "need cluster.url"},
		{"peers flag without url", "", config.Overrides{ClusterPeers: "h:1"}, "need cluster.url"},
		{"embedded settings on nats", "cluster: {url: 'nats://h:1', embedded: {peers: ['h:1']}}", config.Overrides{}, "needs cluster.url embedded"},
		{"listen without peers", "", config.Overrides{Cluster: "embedded", ClusterListen: "h:1"}, "needs peers"},
		{"bad peer", "", config.Overrides{Cluster: "embedded", ClusterListen: "h:1", ClusterPeers: "h:1,nope"}, `cluster.embedded.peers[1]: expected host:port, got "nope"`},
		{"ttl off", "cluster: {url: embedded, ttl: off}", config.Overrides{}, "cluster.ttl: a lease must end"},
		{"callTimeout off", "cluster: {url: embedded, callTimeout: 0}", config.Overrides{}, "cluster.callTimeout: every call needs a bound"},
		{"two credentials", "cluster: {url: 'nats://h:1', token: t, user: u}", config.Overrides{}, "one of user/password, token or credsFile"},
		{"token on redis", "cluster: {url: 'redis://h:1', token: t}", config.Overrides{}, "token and credsFile are NATS credentials"},
		{"creds on embedded", "cluster: {url: embedded, credsFile: x.creds}", config.Overrides{}, "credsFile needs an external NATS server"},
		{"half a client certificate", "cluster: {url: 'nats://h:1', tls: {certFile: c.pem}}", config.Overrides{}, "set both certFile and keyFile"},
		{"unknown key", "cluster: {nodes: 3}", config.Overrides{}, "cluster.nodes: unknown key; did you mean node?"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := ""
			if tt.yaml != "" {
				path = writeFile(t, tt.yaml+"\n")
			}
			_, err := config.Load(path, func(string) string { return "" }, tt.flags)
			if err == nil || !errors.Is(err, config.ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Load = %v, want an ErrInvalid saying %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("Load = %v: shows the password", err)
			}
		})
	}
}

// TestClusterServerless: a Serverless Framework project takes the cluster
// from the flags and the environment.
func TestClusterServerless(t *testing.T) {
	t.Parallel()
	path := writeServerless(t, slsChat)
	env := map[string]string{"SWITCHBOARD_CLUSTER": "redis://env:6379", "SWITCHBOARD_NODE": "env"}
	cfg, err := config.LoadServerless(path, func(k string) string { return env[k] }, config.Overrides{Node: "flag"})
	if err != nil {
		t.Fatalf("LoadServerless: %v", err)
	}
	if want := (config.Cluster{URL: "redis://env:6379", Node: "flag"}); !reflect.DeepEqual(cfg.Cluster, want) {
		t.Errorf("Cluster = %+v, want %+v", cfg.Cluster, want)
	}
	if _, err := config.LoadServerless(path, func(string) string { return "" }, config.Overrides{Cluster: "amqp://h:1"}); err == nil {
		t.Errorf("LoadServerless with --cluster amqp://h:1 = nil error, want one")
	}
}
