package config

import (
	"fmt"
	"reflect"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Key describes one key of the configuration file, for `switchboard config
// defaults` and docs/config.md. Reference lists them all.
type Key struct {
	// Path is the key's YAML path; <name> stands for a key the user chooses.
	Path string
	// Type is the value's form: string, bool, size, duration, count, rate,
	// whole number, number, list of strings, map of strings, or mapping.
	Type string
	// Default is the value when the key is absent, as YAML; empty when the
	// key has none (an entry the user adds).
	Default string
	// Component is set when the default is applied by the component the key
	// configures, not written into Config: the key stays zero when absent.
	Component bool
	// Meaning says what the key does, in one line.
	Meaning string
}

// componentDefaults are the defaults the components apply to keys left
// absent (zero in Config). Tests hold each to its component's.
var componentDefaults = map[string]string{
	"limits.maxMessageBytes":        "128KiB",
	"limits.idleTimeout":            "10m",
	"limits.maxLifetime":            "2h",
	"limits.pingInterval":           "30s",
	"limits.pongTimeout":            "10s",
	"limits.sendQueueMessages":      "1024",
	"limits.sendQueueBytes":         "16MiB",
	"limits.maxPostBytes":           "128KiB",
	"limits.maxRecipients":          "1000",
	"limits.maxConnections":         "unlimited",
	"limits.maxConnectionsPerIp":    "unlimited",
	"limits.connectRate":            "unlimited",
	"limits.connectBurst":           "0",
	"limits.messageRate":            "100",
	"limits.messageBurst":           "0",
	"limits.pingRate":               "10",
	"limits.frameTimeout":           "30s",
	"limits.maxFragments":           "1024",
	"limits.handshakeTimeout":       "10s",
	"limits.maxHeaderBytes":         "16KiB",
	"limits.maxTopicBytes":          "256",
	"limits.maxSubscriptions":       "256",
	"cluster.ttl":                   "15s",
	"cluster.grace":                 "10s",
	"cluster.callTimeout":           "5s",
	"functions.<name>.maxProcesses": "4",
	"functions.<name>.initTimeout":  "10s",
	"authorizers.<name>.leeway":     "60s",
	"logging.accessLog":             "true",
	"ordering":                      "ordered",
	"maxMessagesInFlight":           "32",
}

// meanings holds the one-line meaning of every key, by path.
var meanings = map[string]string{
	"listen":                              "address of the WebSocket and management listener, host:port",
	"stage":                               "stage name: clients connect at / or /{stage}; letters, digits, - and _",
	"routeSelectionExpression":            "selects a message's route, such as $request.body.action",
	"routes":                              "the route table, by route key; when present it replaces the built-in one",
	"routes.<name>":                       "one route: $connect, $disconnect, $default or a custom key",
	"routes.<name>.integration":           "what the route invokes",
	"routes.<name>.integration.type":      "broadcast, subscribe, unsubscribe, publish, echo, mock, lambda, invoke or http",
	"routes.<name>.integration.response":  "the body a mock integration answers with",
	"routes.<name>.integration.function":  "the function to run: an entry of functions (lambda) or a function name (invoke)",
	"routes.<name>.integration.url":       "the URL the event JSON is posted to (http)",
	"routes.<name>.integration.headers":   "headers added to every request (http)",
	"routes.<name>.integration.endpoint":  "the Lambda Invoke API's base URL (invoke); empty means AWS",
	"routes.<name>.integration.qualifier": "the function version or alias (invoke)",
	"routes.<name>.integration.region":    "the region the call is signed for (invoke); empty means the AWS configuration's",
	"routes.<name>.authorizer":            "names an entry of authorizers; $connect only",
	"routes.<name>.routeResponse":         "send the integration's response body back to the caller; default true for echo and mock, else false",
	"routes.<name>.ordering":              "ordered or concurrent: how one connection's messages run through this route; empty means ordering",
	"limits":                              "limits on connections and messages; 0, off or unlimited disables one",
	"limits.maxMessageBytes":              "the largest message a client may send (closed with 1009 beyond)",
	"limits.idleTimeout":                  "closes a connection with no data message for this long",
	"limits.maxLifetime":                  "closes a connection this long after it opened",
	"limits.pingInterval":                 "how often the gateway pings a client",
	"limits.pongTimeout":                  "how long a ping may wait for its pong",
	"limits.sendQueueMessages":            "messages that may wait to be sent to one client (closed with 1008 beyond)",
	"limits.sendQueueBytes":               "bytes that may wait to be sent to one client (closed with 1008 beyond)",
	"limits.maxPostBytes":                 "the largest management API payload (413 beyond)",
	"limits.maxRecipients":                "connection IDs one POST /@connections may name (400 beyond)",
	"limits.maxConnections":               "open connections (503 beyond)",
	"limits.maxConnectionsPerIp":          "open connections per source IP (429 beyond)",
	"limits.connectRate":                  "new connections per second (429 beyond)",
	"limits.connectBurst":                 "the burst of connectRate; 0 means the rate",
	"limits.messageRate":                  "messages per second one connection may send; beyond, a Too Many Requests frame",
	"limits.messageBurst":                 "the burst of messageRate; 0 means the component's",
	"limits.pingRate":                     "pings, pongs and empty fragments per second a client may send (1008 beyond)",
	"limits.frameTimeout":                 "how long a frame may take to arrive whole once begun (1008 beyond)",
	"limits.maxFragments":                 "frames one client message may arrive in (1009 beyond)",
	"limits.handshakeTimeout":             "bounds reading the upgrade request's headers",
	"limits.maxHeaderBytes":               "the upgrade request's headers (431 beyond)",
	"limits.maxTopicBytes":                "the longest topic a client may subscribe or publish to",
	"limits.maxSubscriptions":             "topics one connection may subscribe to",
	"subprotocols":                        "accepted Sec-WebSocket-Protocol values; empty accepts the client's first offer",
	"trustedProxies":                      "addresses or CIDR prefixes whose X-Forwarded-For is believed",
	"shutdownTimeout":                     "bounds the drain on SIGINT or SIGTERM",
	"heapFloor":                           "the heap the garbage collector lets grow before it runs while little is live; off leaves GOGC alone, as GOGC in the environment does; read at start",
	"heapFloorResident":                   "touches the floor's memory at start, so that a burst in the first minutes does not fault the heap in page by page; held until a collection finds the heap small (two minutes idle); read at start",
	"integrationTimeout":                  "bounds one route invocation",
	"ordering":                            "how one connection's messages run through routes that set none: ordered (one after another, in order) or concurrent (each at once, as API Gateway does)",
	"maxMessagesInFlight":                 "messages of one connection that may wait for their route or run at once; beyond, the connection is not read until one is done",
	"authorizers":                         "$connect authorizers, by name",
	"authorizers.<name>":                  "one authorizer",
	"authorizers.<name>.type":             "jwt or lambda",
	"authorizers.<name>.tokenSources":     "jwt: where the token is read, in order: header:Authorization, query:token, subprotocol",
	"authorizers.<name>.jwksUrl":          "jwt: the identity provider's key set URL",
	"authorizers.<name>.jwksFile":         "jwt: a key set (jwks.json) in a file, relative to the config file",
	"authorizers.<name>.pemKeys":          "jwt: verification keys in PEM",
	"authorizers.<name>.pemFiles":         "jwt: files of verification keys in PEM, relative to the config file",
	"authorizers.<name>.issuer":           "jwt: the required iss",
	"authorizers.<name>.audience":         "jwt: accepted aud or client_id values",
	"authorizers.<name>.tokenUse":         "jwt: the required token_use",
	"authorizers.<name>.leeway":           "jwt: clock skew allowed on exp and nbf",
	"authorizers.<name>.principalClaim":   "jwt: the claim that becomes the principal; empty means sub",
	"authorizers.<name>.function":         "lambda: an entry of functions run as the authorizer",
	"authorizers.<name>.url":              "lambda: a URL the authorizer event is posted to instead",
	"authorizers.<name>.invoke":           "lambda: call the authorizer through the Lambda Invoke API instead",
	"authorizers.<name>.invoke.type":      "not used here",
	"authorizers.<name>.invoke.response":  "not used here",
	"authorizers.<name>.invoke.function":  "the function to call",
	"authorizers.<name>.invoke.url":       "not used here",
	"authorizers.<name>.invoke.headers":   "not used here",
	"authorizers.<name>.invoke.endpoint":  "the Lambda Invoke API's base URL; empty means AWS",
	"authorizers.<name>.invoke.qualifier": "the function version or alias",
	"authorizers.<name>.invoke.region":    "the region the call is signed for",
	"authorizers.<name>.identitySources":  "lambda: route.request.header.X or route.request.querystring.Y values the result is cached by",
	"authorizers.<name>.ttl":              "lambda: how long results are cached; 0 disables",
	"management":                          "who may call the management API and open the dashboard",
	"management.listen":                   "a listener of their own for the management API and dashboard; empty shares listen",
	"management.accessKeys":               "AWS access key IDs and their secrets accepted in SigV4 signatures (adds SWITCHBOARD_MANAGEMENT_KEYS)",
	"management.tokens":                   "tokens accepted as Authorization: Bearer (adds SWITCHBOARD_MANAGEMENT_TOKEN)",
	"management.region":                   "when set, the region signatures must be scoped to",
	"management.allowUnauthenticated":     "serve the management API without credentials on a non-loopback address",
	"management.allowedHosts":             "host names accepted in the Host header when no credentials are set, besides localhost and IPs",
	"tls":                                 "wss:// and https:// on the main listener",
	"tls.certFile":                        "the certificate file (PEM), relative to the config file; with keyFile, TLS only",
	"tls.keyFile":                         "the key file (PEM), relative to the config file",
	"tls.disable":                         "serve only plain ws:// and http:// when no certificate is set",
	"tls.dataDir":                         "where the local CA is kept, relative to the config file; SWITCHBOARD_DATA_DIR wins; empty means dataDir, else $XDG_DATA_HOME/switchboard or ~/.local/share/switchboard",
	"origins":                             "Origin values accepted on upgrades (patterns such as https://*.example.com); empty accepts any",
	"logging":                             "the access log",
	"logging.accessLog":                   "one line per route invocation",
	"logging.accessLogFormat":             "renders each line from $context variables; empty logs structured fields",
	"pprof":                               "serve /debug/pprof/ beside the management API",
	"presence":                            "what subscribers learn of each other",
	"presence.announce":                   "topics (path.Match patterns such as room.*) whose subscribers get presence.join and presence.leave messages",
	"events":                              "the EventBridge entrance (PutEvents): its buses and the rules that route events (docs/events.md)",
	"events.buses":                        "event buses that exist besides default and those the rules name",
	"events.rules":                        "a list of {name, bus (default default), pattern: an EventBridge event pattern, disabled, targets: [{id, function, queue, or topic and data (a $.path or a ${template}), maxAttempts (default 185), maxAge (default 24h)}]}",
	"consumers":                           "read events from a NATS JetStream stream or a Redis stream into topics (docs/events.md): a list of {name, topic and data (a $.path or a ${template}), idempotencyKey (a path or template; default the message ID), window (default 5m), maxDeliver (default 5), backoff (default [1s, 5s, 30s]), publishTimeout (default 10s), batch (default 100), and nats: {url (default the cluster's NATS), stream, subjects, durable (default switchboard-<name>), ackWait (default 30s), deadLetter (default switchboard.dead.<name>)} or redis: {url (default the cluster's Redis), stream, group (default switchboard-<name>), field (default data), minIdle (default 30s), deadLetter (default <stream>:dead)}}",
	"dataDir":                             "where a node alone keeps its queues' messages across restarts (embedded JetStream file storage), relative to the config file; SWITCHBOARD_DATA_DIR wins; empty: queues live in memory and are lost on stop",
	"queues":                              "message queues served by the SQS API (docs/events.md): a list of {name, visibilityTimeout (default 30s), delay (default none), retention (default 96h), maxMessageBytes (default 256KiB), maxMessages (default 100000), receiveWait (long polling of receives that name no wait; default none), deadLetter: {queue, maxReceiveCount}, triggers: [{function, batchSize (default 10), batchWindow (default none), reportBatchItemFailures, maxConcurrency (default 2), disabled}]}",
	"history":                             "topics whose recent publications are kept for subscribers that resume: a list of {topics: pattern such as chat.* or orders.>, size: how many per topic (default 100), ttl: how long (default 10m)}; kept in the node's memory alone, in the engine on a cluster (JetStream streams on NATS, streams and keys on Redis)",
	"functions":                           "Lambda functions run as local processes, by name",
	"functions.<name>":                    "one function",
	"functions.<name>.command":            "a custom-runtime executable and its arguments; relative to codeDir",
	"functions.<name>.runtime":            "nodejs* runs handler with the bundled Node bootstrap",
	"functions.<name>.handler":            "file.exportName for Node; _HANDLER for commands",
	"functions.<name>.codeDir":            "the function's directory (LAMBDA_TASK_ROOT), relative to the config file; empty means its folder",
	"functions.<name>.environment":        "added to the function's environment, over environment",
	"functions.<name>.maxProcesses":       "the most processes kept warm",
	"functions.<name>.timeout":            "bounds one invocation; absent means integrationTimeout",
	"functions.<name>.initTimeout":        "bounds a new process's start-up (a cold start)",
	"environment":                         "variables given to every function",
	"endpointEnv":                         "the variable that tells functions the management API's URL",
	"warm":                                "start one process of every function before serving",
	"cluster":                             "joins this gateway to others; absent, a node alone",
	"cluster.url":                         "nats://host:port[,host:port] (tls://), redis://host:port (rediss://) or embedded; empty: a node alone",
	"cluster.node":                        "this node's name, unique per process; empty means the host name and a random suffix",
	"cluster.ttl":                         "how long a dead node's connections stay known: its lease",
	"cluster.grace":                       "how long the node may be cut off from the engine before /healthz answers 503",
	"cluster.callTimeout":                 "bounds each directory and bus call",
	"cluster.user":                        "the engine's user, where the URL has none",
	"cluster.password":                    "the engine's password, where the URL has none",
	"cluster.token":                       "a NATS token",
	"cluster.credsFile":                   "a NATS .creds file, relative to the config file",
	"cluster.tls":                         "TLS to the engine",
	"cluster.tls.caFile":                  "trusts the engine's certificate; relative to the config file",
	"cluster.tls.certFile":                "this node's client certificate; relative to the config file",
	"cluster.tls.keyFile":                 "this node's client key; relative to the config file",
	"cluster.embedded":                    "the NATS server inside the gateway, with url embedded",
	"cluster.embedded.listen":             "its client address, host:port; empty means 127.0.0.1:0",
	"cluster.embedded.cluster":            "the route address peers connect to; empty runs it alone",
	"cluster.embedded.peers":              "every node's route address, the same list everywhere",
	"cluster.embedded.storeDir":           "JetStream's data, relative to the config file; empty means <data dir>/nats/<node> for a named node, else a temporary directory",
}

// Reference lists every key of the configuration file, in the order of the
// Config type, with its type, default and meaning.
func Reference() []Key {
	def := &Config{}
	def.fillDefaults()
	var keys []Key
	var walk func(t reflect.Type, v reflect.Value, path string)
	walk = func(t reflect.Type, v reflect.Value, path string) {
		for i := range t.NumField() {
			f := t.Field(i)
			name := yamlKey(f)
			if name == "" {
				continue
			}
			p := joinPath(path, name)
			var fv reflect.Value
			if v.IsValid() {
				fv = v.Field(i)
			}
			k := Key{Path: p, Type: typeName(f.Type), Meaning: meanings[p]}
			if d, ok := componentDefaults[p]; ok {
				k.Default, k.Component = d, true
			} else if fv.IsValid() && k.Type != "mapping" {
				k.Default = yamlValue(fv)
			}
			keys = append(keys, k)
			switch ft := f.Type; {
			case ft.Kind() == reflect.Struct && !isValueType(ft):
				walk(ft, fv, p)
			case ft.Kind() == reflect.Pointer && ft.Elem().Kind() == reflect.Struct:
				walk(ft.Elem(), reflect.Value{}, p)
			case ft.Kind() == reflect.Map && ft.Elem().Kind() == reflect.Struct:
				keys = append(keys, Key{Path: p + ".<name>", Type: "mapping", Meaning: meanings[p+".<name>"]})
				walk(ft.Elem(), reflect.Value{}, p+".<name>")
			}
		}
	}
	walk(reflect.TypeFor[Config](), reflect.ValueOf(def).Elem(), "")
	for i, k := range keys {
		if k.Path == "routes" {
			keys[i].Default = "sendMessage, subscribe, unsubscribe, publish (the built-in table)"
		}
	}
	return keys
}

func isValueType(t reflect.Type) bool {
	switch t {
	case sizeType, durationType, countType, rateType:
		return true
	}
	return false
}

// typeName is a field type's form, in the words of errors and docs.
func typeName(t reflect.Type) string {
	switch t {
	case sizeType:
		return "size"
	case durationType:
		return "duration"
	case countType:
		return "count"
	case rateType:
		return "rate"
	}
	switch t.Kind() {
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "bool"
	case reflect.Int, reflect.Int64:
		return "whole number"
	case reflect.Pointer:
		return typeName(t.Elem())
	case reflect.Slice:
		return "list of " + typeName(t.Elem()) + "s"
	case reflect.Map:
		if t.Elem().Kind() == reflect.String {
			return "map of strings"
		}
		return "mapping"
	case reflect.Struct:
		return "mapping"
	}
	return t.Kind().String()
}

// yamlValue writes a value of the default Config as YAML.
func yamlValue(v reflect.Value) string {
	switch x := v.Interface().(type) {
	case Duration:
		if x == 0 {
			return ""
		}
		return time.Duration(x).String()
	case Size:
		switch {
		case x == 0:
			return ""
		case x%(1<<20) == 0:
			return fmt.Sprintf("%dMiB", x>>20)
		case x%(1<<10) == 0:
			return fmt.Sprintf("%dKiB", x>>10)
		}
	}
	switch v.Kind() {
	case reflect.Slice:
		if v.Len() == 0 {
			return "[]"
		}
	case reflect.Map:
		if v.Len() == 0 {
			return "{}"
		}
	case reflect.Pointer:
		if v.IsNil() {
			return ""
		}
		v = v.Elem()
	}
	b, err := yaml.Marshal(v.Interface())
	if err != nil {
		return fmt.Sprint(v.Interface())
	}
	return strings.TrimSpace(string(b))
}

// DefaultsYAML is the default configuration as a commented YAML file: every
// key with its default and meaning. Keys whose default a component applies,
// and the keys of entries the user names, are commented out; the file loads
// into the same Config as no file at all.
func DefaultsYAML() string {
	var b strings.Builder
	b.WriteString("# Switchboard's configuration with every key at its default.\n" +
		"# A commented key shows the default applied when it is absent, or the\n" +
		"# keys of an entry you name (<name>). Sizes take 131072, 128KiB or 1MiB;\n" +
		"# durations 30s, 10m or 2h; 0, off or unlimited disables a limit.\n")
	for _, k := range Reference() {
		depth := strings.Count(k.Path, ".")
		name := k.Path[strings.LastIndex(k.Path, ".")+1:]
		if depth == 0 {
			b.WriteString("\n")
		}
		indent := strings.Repeat("  ", depth)
		commented := k.Component || strings.Contains(k.Path, "<name>") ||
			k.Type != "mapping" && k.Type != "string" && (k.Default == "" || k.Default == "[]" || k.Default == "{}")
		line := name + ":"
		switch {
		case k.Type == "mapping" && k.Path != "routes":
		case k.Path == "routes":
		case k.Default != "":
			line += " " + k.Default
		case k.Type == "string":
			line += ` ""`
		}
		if commented {
			line = "# " + line
		}
		fmt.Fprintf(&b, "%s%s  # %s\n", indent, line, k.Meaning)
		if k.Path == "routes" {
			for _, key := range []string{"sendMessage", "subscribe", "unsubscribe", "publish"} {
				fmt.Fprintf(&b, "  %s:\n    integration:\n      type: %s\n", key, DefaultRoutes()[key].Integration.Type)
			}
		}
	}
	return b.String()
}

// ReferenceMarkdown is docs/config.md: a table of every key.
func ReferenceMarkdown() string {
	var b strings.Builder
	b.WriteString("<!-- Generated by `go run ./internal/config/gen` from internal/config; do not edit. -->\n\n" +
		"# Configuration reference\n\n" +
		"Every key of the YAML file given to `switchboard serve --config`. `<name>` stands\n" +
		"for a name you choose. Relative paths are taken from the config file's folder.\n" +
		"Sizes take `131072`, `128KiB` or `1MiB`; durations `30s`, `10m` or `2h`; for a\n" +
		"limit, `0`, `off` or `unlimited` disables it. A default marked *(component)* is\n" +
		"applied by the part the key configures when the key is absent.\n" +
		"`switchboard config defaults` prints this as a commented file, and\n" +
		"`switchboard config validate FILE` checks a file.\n\n" +
		"| key | type | default | meaning |\n|---|---|---|---|\n")
	for _, k := range Reference() {
		d := ""
		if k.Default != "" {
			d = "`" + k.Default + "`"
			if k.Path == "routes" {
				d = k.Default
			}
			if k.Component {
				d += " *(component)*"
			}
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", k.Path, k.Type, d, strings.ReplaceAll(k.Meaning, "|", `\|`))
	}
	return b.String()
}
