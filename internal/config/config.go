//go:generate go run ./gen ../../docs/config.md

// Package config turns a YAML file, environment variables and flags into a
// validated Config with every default filled in. It is the only package that
// reads configuration, and imports no other internal package.
package config

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"math"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Defaults of the settings that are not limits. Limits have no default
// here: an absent limit stays zero, and the component it configures applies
// its own default (see Limits).
const (
	DefaultListen             = "127.0.0.1:3001"
	DefaultStage              = "dev"
	DefaultSelection          = "$request.body.action"
	DefaultShutdownTimeout    = 10 * time.Second
	DefaultIntegrationTimeout = 29 * time.Second
	DefaultHeapFloor          = 32 << 20
)

// Unlimited is the value of a limit written as "unlimited", "off" or 0. Every
// component option a limit feeds reads a negative value as "disabled".
const Unlimited = -1

// ErrInvalid is wrapped by every validation error.
var ErrInvalid = errors.New("config: invalid")

// Config is the whole configuration of `switchboard serve`.
type Config struct {
	// Listen is the address of the WebSocket and management listener.
	Listen string `yaml:"listen"`
	// Stage is the stage name: clients may connect at /{stage}, and the
	// management API answers at /{stage}/@connections too.
	Stage string `yaml:"stage"`
	// RouteSelectionExpression selects a message's route, e.g. $request.body.action.
	RouteSelectionExpression string `yaml:"routeSelectionExpression"`
	// Routes maps route keys to routes. When absent, the built-in chat and
	// topic routes are used (see DefaultRoutes).
	Routes map[string]Route `yaml:"routes"`
	// Limits on connections and messages.
	Limits Limits `yaml:"limits"`
	// Subprotocols restricts the accepted Sec-WebSocket-Protocol values; empty accepts the client's first offer.
	Subprotocols []string `yaml:"subprotocols"`
	// TrustedProxies lists addresses or CIDR prefixes whose X-Forwarded-For is believed.
	TrustedProxies []string `yaml:"trustedProxies"`
	// ShutdownTimeout bounds the drain on SIGINT/SIGTERM.
	ShutdownTimeout Duration `yaml:"shutdownTimeout"`
	// IntegrationTimeout bounds one route invocation.
	IntegrationTimeout Duration `yaml:"integrationTimeout"`
	// Ordering is how the messages of one connection run through the
	// routes that set none (see Orderings): one after another in the order
	// they arrived, or each at once, as API Gateway invokes a function for
	// each message. Absent: the gateway's default, ordered.
	Ordering string `yaml:"ordering"`
	// MaxMessagesInFlight is how many messages of one connection may wait
	// for their route or run at once; beyond, the connection is not read
	// until one is done. Absent: the gateway's default, 32; it cannot be
	// disabled.
	MaxMessagesInFlight Count `yaml:"maxMessagesInFlight"`

	// Authorizers guard $connect; routes.$connect.authorizer names one.
	Authorizers map[string]Authorizer `yaml:"authorizers"`
	// Management protects the management API and the dashboard.
	Management Management `yaml:"management"`
	// TLS configures wss:// and https:// on the main listener: with the
	// certificate in CertFile and KeyFile when set (TLS only), else beside
	// plain ws:// and http:// on the same port with a leaf certificate from a
	// local CA kept in DataDir, unless Disable.
	TLS TLS `yaml:"tls"`
	// Origins, when not empty, are the only Origin header values accepted on
	// upgrades (patterns as path.Match, e.g. https://*.example.com); a
	// handshake without Origin (a non-browser client) is accepted.
	Origins []string `yaml:"origins"`

	// Logging configures the access log.
	Logging Logging `yaml:"logging"`
	// Pprof serves /debug/pprof/ beside the management API (and behind its
	// credentials). Also the --pprof flag.
	Pprof bool `yaml:"pprof"`
	// HeapFloor is the heap the garbage collector lets grow before it
	// runs, however little of it is live (package heapfloor): above half
	// of it, GOGC's rule (collect when the heap doubles) is unchanged.
	// Default DefaultHeapFloor; off or 0 turns it off, and so does GOGC in
	// the environment. Read when `switchboard serve` starts; a reload does
	// not change it.
	HeapFloor Size `yaml:"heapFloor"`
	// HeapFloorResident touches the floor's memory when `switchboard
	// serve` starts (heapfloor.Touch), so that a burst of work in the
	// first minutes does not fault the heap in a page at a time: the
	// process holds the floor in RSS from the start rather than from its
	// first burst, until a collection finds the heap small (an idle
	// process's periodic one, after two minutes) and the runtime gives
	// the pages back. Default true; nothing while the floor is off.
	HeapFloorResident *bool `yaml:"heapFloorResident"`
	// Presence configures what a topic's subscribers learn of each other.
	Presence Presence `yaml:"presence"`

	// Functions are the Lambda functions routes of type lambda run.
	Functions map[string]Function `yaml:"functions"`
	// Environment is given to every function.
	Environment map[string]string `yaml:"environment"`
	// EndpointEnv names the variable that tells functions the management
	// API's URL (http://host:port/stage). AWS_ENDPOINT_URL_APIGATEWAYMANAGEMENTAPI
	// is set too, so SDK clients that honour it need no code change.
	EndpointEnv string `yaml:"endpointEnv"`
	// Warm starts one process of every function before serving (and of
	// every function a reload adds), so that the first message pays no cold
	// start; a function that fails to start fails the start-up. Also the
	// --warm flag. Off by default: processes start on first use.
	Warm bool `yaml:"warm"`

	// Cluster joins this gateway to others over NATS or Redis; absent, the
	// gateway is a node alone.
	Cluster Cluster `yaml:"cluster"`

	// History keeps the recent publications of the topics its rules
	// match, for subscribers that resume; absent, no topic keeps any. The
	// first rule that matches a topic applies. A node alone only.
	History []HistoryRule `yaml:"history"`

	// Events configures the EventBridge entrance's buses and the rules that
	// route its events (see docs/events.md).
	Events Events `yaml:"events"`

	// Consumers read events from a NATS JetStream stream or a Redis
	// stream and publish each to a topic's subscribers (see docs/events.md).
	Consumers []Consumer `yaml:"consumers"`

	// Queues are message queues, served by the SQS API on the listener
	// and read by the functions they trigger (see docs/events.md).
	Queues []Queue `yaml:"queues"`

	// DataDir is where a node alone keeps what must survive a restart: its
	// queues' messages, in embedded JetStream file storage under
	// queues/. Env SWITCHBOARD_DATA_DIR wins. Empty: queues live in
	// memory and are lost when the gateway stops. The local CA is kept
	// here too, unless tls.dataDir names another directory. A cluster
	// keeps its queues in its engine instead.
	DataDir string `yaml:"dataDir"`

	// HTTPRoutes are a Serverless Framework project's http and httpApi
	// events, served beside the WebSocket API on the same listener.
	HTTPRoutes []HTTPRoute `yaml:"-"`

	// Warnings are settings that were read but are not supported.
	Warnings []string `yaml:"-"`
	// Dir is the directory relative paths are taken from: the config file's.
	Dir string `yaml:"-"`

	// Source tells where the configuration came from, for the start-up banner.
	Source string `yaml:"-"`
}

// HistoryRule keeps the history of the topics Topics matches.
type HistoryRule struct {
	// Topics is a pattern of dot-separated segments: "*" matches one
	// segment, a final ">" one or more ("chat.*", "orders.>").
	Topics string `yaml:"topics"`
	// Size is how many publications each topic keeps. Absent: 100.
	Size int `yaml:"size"`
	// TTL is how long a publication is kept. Absent: 10m.
	TTL Duration `yaml:"ttl"`
}

// Events are the event buses and rules. Absent settings take the defaults
// of the eventbridge package.
type Events struct {
	// Buses are event buses that exist besides "default" and those the
	// rules name.
	Buses []string `yaml:"buses"`
	// Rules route the events of a bus that match a pattern to targets.
	Rules []EventRule `yaml:"rules"`
}

// EventRule is one rule: an EventBridge event pattern and its targets.
type EventRule struct {
	// Name names the rule in errors, logs and metrics; unique.
	Name string `yaml:"name"`
	// Bus is the event bus the rule listens on; empty means "default".
	Bus string `yaml:"bus"`
	// Pattern is the event pattern, as EventBridge writes it.
	Pattern map[string]any `yaml:"pattern"`
	// Disabled leaves the rule out (a template's State: DISABLED).
	Disabled bool `yaml:"disabled"`
	// Targets receive the events the pattern matches.
	Targets []EventTarget `yaml:"targets"`
}

// EventTarget is where a rule sends an event: a function, a queue, or a
// topic's subscribers (exactly one of Function, Queue and Topic).
type EventTarget struct {
	// ID names the target within its rule; empty means its function's
	// name, or "topic" and its position.
	ID string `yaml:"id"`
	// Function names an entry of functions, invoked asynchronously with
	// the event.
	Function string `yaml:"function"`
	// Queue names an entry of queues; the event is sent to it as one
	// message.
	Queue string `yaml:"queue"`
	// Topic is the topic to publish to: a path ($.detail.room) or a
	// template (orders.${detail.orderId}).
	Topic string `yaml:"topic"`
	// Data is the message published (topic targets): a path or a
	// template as Topic; empty means the whole event.
	Data string `yaml:"data"`
	// MaxAttempts bounds the deliveries of one event; 0 means the
	// default (185, as EventBridge).
	MaxAttempts int `yaml:"maxAttempts"`
	// MaxAge bounds how long an event is retried; 0 means 24h.
	MaxAge Duration `yaml:"maxAge"`
}

// Consumer reads events from a bus (exactly one of NATS and Redis) and
// publishes each to a topic. Absent settings take the defaults of the
// consumer package.
type Consumer struct {
	// Name names the consumer in metrics, logs, dead letters and the
	// engine's records: letters, digits, - and _; unique.
	Name string `yaml:"name"`
	// NATS reads a JetStream stream.
	NATS *ConsumerNATS `yaml:"nats"`
	// Redis reads a Redis stream.
	Redis *ConsumerRedis `yaml:"redis"`
	// Topic is the topic an event is published to: a path ($.room) or a
	// template (orders.${orderId}).
	Topic string `yaml:"topic"`
	// Data is the message published: a path or a template; empty means
	// the whole event.
	Data string `yaml:"data"`
	// IdempotencyKey is a path or a template naming an event; empty means
	// its message ID (a JetStream stream sequence, a Redis entry ID).
	IdempotencyKey string `yaml:"idempotencyKey"`
	// Window is how long a published event's key is kept; 0 means 5m.
	Window Duration `yaml:"window"`
	// MaxDeliver bounds the deliveries of an event; 0 means 5.
	MaxDeliver int `yaml:"maxDeliver"`
	// Backoff is the delay before each retry, the last repeated; empty
	// means 1s, 5s, 30s (a Redis stream retries after minIdle).
	Backoff []Duration `yaml:"backoff"`
	// PublishTimeout bounds one publish; 0 means 10s.
	PublishTimeout Duration `yaml:"publishTimeout"`
	// Batch is how many events are fetched at a time; 0 means 100.
	Batch int `yaml:"batch"`
}

// ConsumerNATS is a consumer's JetStream stream.
type ConsumerNATS struct {
	// URL is the NATS server; empty means the cluster's engine (nats or embedded).
	URL string `yaml:"url"`
	// Stream names the stream; when it does not exist and Subjects are
	// given, it is created on them.
	Stream string `yaml:"stream"`
	// Subjects filter the stream's subjects; empty reads them all.
	Subjects []string `yaml:"subjects"`
	// Durable names the durable consumer; empty means switchboard-<name>.
	Durable string `yaml:"durable"`
	// AckWait is how long an event may stay unacknowledged before it is
	// delivered again; 0 means 30s.
	AckWait Duration `yaml:"ackWait"`
	// DeadLetter is the subject of dead letters; empty means
	// switchboard.dead.<name>.
	DeadLetter string `yaml:"deadLetter"`
}

// ConsumerRedis is a consumer's Redis stream.
type ConsumerRedis struct {
	// URL is the Redis server; empty means the cluster's engine (redis).
	URL string `yaml:"url"`
	// Stream is the stream's key.
	Stream string `yaml:"stream"`
	// Group names the consumer group, created when missing; empty means
	// switchboard-<name>.
	Group string `yaml:"group"`
	// Field is the entry's field holding the event; empty means data.
	Field string `yaml:"field"`
	// MinIdle is how long an entry stays pending before it is claimed
	// and delivered again; 0 means 30s.
	MinIdle Duration `yaml:"minIdle"`
	// DeadLetter is the stream of dead letters; empty means <stream>:dead.
	DeadLetter string `yaml:"deadLetter"`
}

// Route is one route of the route table.
type Route struct {
	Integration Integration `yaml:"integration"`
	// Authorizer names an entry of Config.Authorizers; $connect only.
	Authorizer string `yaml:"authorizer"`
	// RouteResponse sends the integration's response body back to the caller.
	// Unset means true for echo and mock, false otherwise.
	RouteResponse *bool `yaml:"routeResponse"`
	// Ordering is how the messages of one connection run through this
	// route: one of Orderings. Empty means Config.Ordering.
	Ordering string `yaml:"ordering"`
}

// Orderings are the values of ordering, on a route or for the whole
// gateway: "ordered" runs one connection's messages one after another, in
// the order they arrived; "concurrent" runs each as soon as it arrives.
var Orderings = []string{"ordered", "concurrent"}

// Integration says what a route invokes.
type Integration struct {
	// Type is the integration kind: a built-in (broadcast, subscribe,
	// unsubscribe, publish, echo, mock), lambda, invoke or http.
	Type string `yaml:"type"`
	// Response is the fixed body a mock integration answers with.
	Response string `yaml:"response"`

	// Function names an entry of Config.Functions (type lambda) or the
	// function to call (type invoke).
	Function string `yaml:"function"`

	// URL receives the event JSON (type http).
	URL string `yaml:"url"`
	// Headers are added to every request (type http).
	Headers map[string]string `yaml:"headers"`

	// Endpoint is the Lambda Invoke API's base URL (type invoke); empty means AWS.
	Endpoint string `yaml:"endpoint"`
	// Qualifier is the function version or alias (type invoke).
	Qualifier string `yaml:"qualifier"`
	// Region signs the call (type invoke); empty means the AWS configuration's.
	Region string `yaml:"region"`
}

// Function is a Lambda function hosted as local processes through the
// Lambda Runtime API.
type Function struct {
	// Command runs a custom-runtime executable, such as a Go binary built
	// with aws-lambda-go. Relative paths are taken from CodeDir.
	Command []string `yaml:"command"`
	// Runtime "nodejs" (or any nodejs* value) runs Handler with the bundled Node bootstrap.
	Runtime string `yaml:"runtime"`
	// Handler is "file.exportName" for Node; passed as _HANDLER to commands.
	Handler string `yaml:"handler"`
	// CodeDir is the function's directory (LAMBDA_TASK_ROOT). Relative to the config file.
	CodeDir string `yaml:"codeDir"`
	// Environment is added to the function's environment, over Config.Environment.
	Environment map[string]string `yaml:"environment"`
	// MaxProcesses caps the warm pool; 0 means 4.
	MaxProcesses int `yaml:"maxProcesses"`
	// Timeout bounds one invocation, from when the function receives the
	// event; 0 means integrationTimeout.
	Timeout Duration `yaml:"timeout"`
	// InitTimeout bounds a new process's start-up (a cold start); 0 means 10s.
	InitTimeout Duration `yaml:"initTimeout"`
	// Names are other names the Lambda Invoke API knows the function by,
	// besides its key: a Serverless Framework project's deployed names
	// (SERVICE-STAGE-KEY, or the function's name setting).
	Names []string `yaml:"-"`
}

// HTTPRoute is an HTTP route that runs a function with API Gateway's
// Lambda proxy event.
type HTTPRoute struct {
	// Method is GET, POST..., or ANY (also written *).
	Method string
	// Path is /users/{id} or /files/{proxy+}; "*" with method ANY is an
	// HTTP API's catch-all $default route.
	Path string
	// Version is the payload format: 1 for a REST API (http events), 2 for
	// an HTTP API (httpApi events).
	Version int
	// Function names an entry of Config.Functions.
	Function string
	// StagePrefix serves the route at /{stage}{Path}, as a REST API's URLs
	// are; otherwise at Path.
	StagePrefix bool
	// CORS, when set, answers preflight requests and adds the CORS headers
	// to responses.
	CORS *CORS
}

// CORS is a route's cross-origin configuration.
type CORS struct {
	Origins          []string
	Headers          []string
	ExposedHeaders   []string
	AllowCredentials bool
	MaxAge           int // seconds
}

// TwoWay reports whether the route sends its response body back.
func (r Route) TwoWay() bool {
	if r.RouteResponse != nil {
		return *r.RouteResponse
	}
	return r.Integration.Type == "echo" || r.Integration.Type == "mock"
}

// Authorizer is a $connect authorizer.
type Authorizer struct {
	// Type is jwt or lambda.
	Type string `yaml:"type"`

	// TokenSources (jwt): where the token is read, in order:
	// header:Authorization, query:token, subprotocol.
	TokenSources []string `yaml:"tokenSources"`
	// JWKSURL (jwt) is the identity provider's key set.
	JWKSURL string `yaml:"jwksUrl"`
	// JWKSFile (jwt) is a key set in a file (a jwks.json), read at start and
	// on reload, never fetched. Relative to the config file.
	JWKSFile string `yaml:"jwksFile"`
	// PEMKeys (jwt) are verification keys in PEM; PEMFiles are read from files.
	PEMKeys  []string `yaml:"pemKeys"`
	PEMFiles []string `yaml:"pemFiles"`
	// Issuer, Audience and TokenUse (jwt) are checked against iss, aud or
	// client_id, and token_use.
	Issuer   string   `yaml:"issuer"`
	Audience []string `yaml:"audience"`
	TokenUse string   `yaml:"tokenUse"`
	// Leeway (jwt) is the clock skew allowed on exp and nbf; 0 means 60s.
	Leeway Duration `yaml:"leeway"`
	// PrincipalClaim (jwt) becomes the principal; empty means sub.
	PrincipalClaim string `yaml:"principalClaim"`

	// Function (lambda) names an entry of functions, run as the authorizer.
	Function string `yaml:"function"`
	// URL (lambda) receives the authorizer event by POST instead; its answer is the result.
	URL string `yaml:"url"`
	// Invoke (lambda) calls the authorizer through the Lambda Invoke API
	// instead: its function, and endpoint/qualifier/region as for routes.
	Invoke *Integration `yaml:"invoke"`
	// IdentitySources (lambda): route.request.header.X, route.request.querystring.Y.
	IdentitySources []string `yaml:"identitySources"`
	// TTL (lambda) caches results by identity-source values; 0 disables.
	TTL Duration `yaml:"ttl"`
}

// Logging configures the access log: one line per route invocation.
type Logging struct {
	// AccessLog turns the access log on or off; unset means on.
	AccessLog *bool `yaml:"accessLog"`
	// AccessLogFormat renders each line from $context variables, as API
	// Gateway's access log format does; empty logs them as structured fields.
	AccessLogFormat string `yaml:"accessLogFormat"`
}

// HeapFloorTouched reports whether `serve` touches the heap floor's pages
// at start: heapFloorResident, true when unset, and the floor on.
func (c *Config) HeapFloorTouched() bool {
	return c.HeapFloor > 0 && (c.HeapFloorResident == nil || *c.HeapFloorResident)
}

// AccessLogOn reports whether the access log is on.
func (l Logging) AccessLogOn() bool { return l.AccessLog == nil || *l.AccessLog }

// Management says who may call the management API and open the dashboard.
type Management struct {
	// Listen, when set, serves the management API and dashboard on their own
	// listener; the main one then serves WebSocket clients only.
	Listen string `yaml:"listen"`
	// AccessKeys maps AWS access key IDs to secrets accepted in SigV4
	// signatures (service execute-api). The environment variable
	// SWITCHBOARD_MANAGEMENT_KEYS ("AKID:secret,AKID2:secret2") adds more.
	AccessKeys map[string]string `yaml:"accessKeys"`
	// Tokens are accepted as "Authorization: Bearer TOKEN"; the environment
	// variable SWITCHBOARD_MANAGEMENT_TOKEN adds one.
	Tokens []string `yaml:"tokens"`
	// Region, when set, must be the region signatures are scoped to.
	Region string `yaml:"region"`
	// AllowUnauthenticated serves the management API without credentials on
	// a non-loopback address. Also the --insecure-management flag.
	AllowUnauthenticated bool `yaml:"allowUnauthenticated"`
	// AllowedHosts are host names (without port) accepted in the Host header
	// of a management request when no credentials are configured, besides
	// localhost and IP addresses; any other name is refused, against DNS
	// rebinding.
	AllowedHosts []string `yaml:"allowedHosts"`
}

// Protected reports whether the management API requires credentials.
func (m Management) Protected() bool { return len(m.AccessKeys) > 0 || len(m.Tokens) > 0 }

// TLS holds the certificate and key files, or where the local CA lives.
type TLS struct {
	CertFile string `yaml:"certFile"`
	KeyFile  string `yaml:"keyFile"`
	// Disable serves only plain ws:// and http:// when no certificate is set.
	Disable bool `yaml:"disable"`
	// DataDir keeps the local CA (env SWITCHBOARD_DATA_DIR, which wins).
	// Empty means the top-level dataDir, else DefaultDataDir.
	DataDir string `yaml:"dataDir"`
}

// Cluster says how a gateway joins the others of its cluster. Every field
// left zero takes the default of the component it configures (the cluster
// package's, and the gateway's for CallTimeout), as limits do.
type Cluster struct {
	// URL is the engine: "" for a node alone; nats://host:port[,host:port]
	// (tls:// for TLS); redis://[user:password@]host:port[/db] (rediss://
	// for TLS); or "embedded" for a NATS server inside the gateway (see
	// Embedded). Env SWITCHBOARD_CLUSTER, flag --cluster.
	URL string `yaml:"url"`
	// Node names this gateway in the cluster, unique per process. Empty
	// means the host name and a random suffix. Env SWITCHBOARD_NODE, flag --node.
	Node string `yaml:"node"`
	// TTL is how long a dead node's connections stay known: its lease.
	TTL Duration `yaml:"ttl"`
	// Grace is how long the node may be cut off from the engine before
	// /healthz answers 503; "off" never does.
	Grace Duration `yaml:"grace"`
	// CallTimeout bounds each directory and bus call.
	CallTimeout Duration `yaml:"callTimeout"`
	// Credentials for the engine where the URL does not carry them: NATS
	// takes User and Password, Token or CredsFile (one kind); Redis takes
	// User and Password (an ACL user) when the URL has none.
	User      string `yaml:"user"`
	Password  string `yaml:"password"`
	Token     string `yaml:"token"`
	CredsFile string `yaml:"credsFile"`
	// TLS to the engine: CAFile trusts the engine's certificate, CertFile
	// and KeyFile are this node's client certificate.
	TLS ClusterTLS `yaml:"tls"`
	// Embedded configures the NATS server inside the gateway when URL is "embedded".
	Embedded Embedded `yaml:"embedded"`
}

// ClusterTLS holds the files of a TLS connection to the engine.
type ClusterTLS struct {
	CAFile   string `yaml:"caFile"`
	CertFile string `yaml:"certFile"`
	KeyFile  string `yaml:"keyFile"`
}

// Embedded configures the NATS server a gateway runs inside itself.
type Embedded struct {
	// Listen is the NATS client address, host:port; empty means
	// 127.0.0.1:0 (a random loopback port).
	Listen string `yaml:"listen"`
	// Cluster is the route address, host:port, the peers' servers connect
	// to; empty runs the server alone. Flag --cluster-listen, env
	// SWITCHBOARD_CLUSTER_LISTEN.
	Cluster string `yaml:"cluster"`
	// Peers are the route addresses (host:port) of every node, the same
	// list everywhere (a node skips its own). Flag --cluster-peers, env
	// SWITCHBOARD_CLUSTER_PEERS, both comma-separated.
	Peers []string `yaml:"peers"`
	// StoreDir keeps JetStream's data. Empty means <data dir>/nats/<node>
	// when cluster.node is set and there is a data directory, else a
	// temporary directory removed at exit.
	StoreDir string `yaml:"storeDir"`
}

// Cluster engines, as Cluster.Engine names them.
const (
	EngineNone     = ""
	EngineNATS     = "nats"
	EngineRedis    = "redis"
	EngineEmbedded = "embedded"
)

// Engine names the engine URL chooses, or an error for a URL it cannot
// read. A redis URL is only recognised here: the cluster package parses it
// and refuses Redis Cluster and Sentinel with its own message.
func (c Cluster) Engine() (string, error) {
	u := strings.TrimSpace(c.URL)
	if u == "" {
		return EngineNone, nil
	}
	if u == EngineEmbedded {
		return EngineEmbedded, nil
	}
	scheme, _, ok := strings.Cut(u, "://")
	if !ok {
		return "", fmt.Errorf("%w: cluster.url %q: want nats://host:port, redis://host:port or embedded", ErrInvalid, redactURL(u))
	}
	switch s := strings.ToLower(scheme); {
	case s == "nats" || s == "tls":
		return EngineNATS, nil
	case strings.HasPrefix(s, "redis") || strings.Contains(s, "sentinel") || s == "unix":
		return EngineRedis, nil
	}
	return "", fmt.Errorf("%w: cluster.url %s: scheme %q not supported: want nats://, tls://, redis://, rediss:// or embedded", ErrInvalid, redactURL(u), scheme)
}

// redactURL hides a URL's password, for messages.
func redactURL(s string) string {
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok {
		if strings.Contains(s, "@") {
			return "…"
		}
		return s
	}
	if at := strings.LastIndex(rest, "@"); at >= 0 {
		userinfo := rest[:at]
		if user, _, hasPass := strings.Cut(userinfo, ":"); hasPass {
			rest = user + ":xxxxx" + rest[at:]
		}
	}
	return scheme + "://" + rest
}

// RedactedURL is URL with its password hidden, for logs and the banner.
func (c Cluster) RedactedURL() string { return redactURL(c.URL) }

// DefaultDataDir is where Switchboard keeps its local CA:
// $XDG_DATA_HOME/switchboard, else ~/.local/share/switchboard; empty when
// neither XDG_DATA_HOME nor HOME is set.
func DefaultDataDir(getenv func(string) string) string {
	if d := getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "switchboard")
	}
	if h := getenv("HOME"); h != "" {
		return filepath.Join(h, ".local", "share", "switchboard")
	}
	return ""
}

// DataDir resolves the local CA's directory: env SWITCHBOARD_DATA_DIR, else
// the file's tls.dataDir (fileValue), else DefaultDataDir.
func DataDir(getenv func(string) string, fileValue string) string {
	if d := getenv("SWITCHBOARD_DATA_DIR"); d != "" {
		return d
	}
	if fileValue != "" {
		return fileValue
	}
	return DefaultDataDir(getenv)
}

// Limits are the gateway's limits. Sizes accept a number of bytes or a
// suffix (KB, KiB, MB, MiB); durations accept Go durations (10m, 2h); counts
// and rates accept numbers. For every limit, 0 or "unlimited" (or "off")
// disables it and is read as Unlimited; an absent limit stays zero and takes
// the default of the component it configures (API Gateway's where it has
// one). The defaults are listed in the README.
type Limits struct {
	// MaxMessageBytes is the largest message a client may send (1009 beyond).
	MaxMessageBytes Size `yaml:"maxMessageBytes"`
	// IdleTimeout closes a connection with no data message for this long.
	IdleTimeout Duration `yaml:"idleTimeout"`
	// MaxLifetime closes a connection this long after it opened.
	MaxLifetime Duration `yaml:"maxLifetime"`
	// PingInterval is how often the gateway pings a client.
	PingInterval Duration `yaml:"pingInterval"`
	// PongTimeout is how long a ping may wait for its pong.
	PongTimeout Duration `yaml:"pongTimeout"`
	// SendQueueMessages and SendQueueBytes bound what may wait to be sent to
	// one client (1008 beyond).
	SendQueueMessages Count `yaml:"sendQueueMessages"`
	SendQueueBytes    Size  `yaml:"sendQueueBytes"`
	// MaxPostBytes is the largest management API payload (413 beyond).
	MaxPostBytes Size `yaml:"maxPostBytes"`
	// MaxRecipients caps the connection IDs of one POST /@connections
	// (400 beyond).
	MaxRecipients Count `yaml:"maxRecipients"`

	// MaxConnections caps open connections (503 beyond).
	MaxConnections Count `yaml:"maxConnections"`
	// MaxConnectionsPerIP caps open connections per source IP (429 beyond).
	MaxConnectionsPerIP Count `yaml:"maxConnectionsPerIp"`
	// ConnectRate is new connections per second accepted (429 beyond), with
	// bursts of ConnectBurst. A burst is a parameter of its rate, not a limit:
	// absent or 0 means the rate.
	ConnectRate  Rate `yaml:"connectRate"`
	ConnectBurst int  `yaml:"connectBurst"`
	// MessageRate is messages per second one connection may send, with
	// bursts of MessageBurst (absent or 0: the component's default); a
	// message beyond gets a "Too Many Requests" frame and is dropped.
	MessageRate  Rate `yaml:"messageRate"`
	MessageBurst int  `yaml:"messageBurst"`
	// PingRate is WebSocket pings, pongs and empty non-final fragments per
	// second a client may send, together, before it is closed with 1008.
	PingRate Rate `yaml:"pingRate"`
	// FrameTimeout bounds how long a client frame may take to arrive whole
	// once it has begun (1008 beyond).
	FrameTimeout Duration `yaml:"frameTimeout"`
	// MaxFragments caps the frames one client message may arrive in (1009
	// beyond).
	MaxFragments Count `yaml:"maxFragments"`
	// HandshakeTimeout bounds reading the upgrade request's headers.
	HandshakeTimeout Duration `yaml:"handshakeTimeout"`
	// MaxHeaderBytes caps the upgrade request's headers (431 beyond).
	MaxHeaderBytes Size `yaml:"maxHeaderBytes"`
	// MaxTopicBytes is the longest topic a client may subscribe or publish to.
	MaxTopicBytes Size `yaml:"maxTopicBytes"`
	// MaxSubscriptions caps the topics one connection may subscribe to.
	MaxSubscriptions Count `yaml:"maxSubscriptions"`
}

// Duration is a time.Duration read from YAML; Unlimited after "unlimited" or 0.
type Duration time.Duration

// UnmarshalYAML implements yaml.Unmarshaler.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*d = Duration(v)
	return nil
}

// ParseDuration reads "10m", "unlimited", "off" or "0" (the last three mean Unlimited).
func ParseDuration(s string) (time.Duration, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "unlimited", "off", "0":
		return Unlimited, nil
	}
	v, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil || v < 0 {
		return 0, fmt.Errorf("%w duration %q: want a Go duration such as 10m, or unlimited", ErrInvalid, s)
	}
	if v == 0 { // "0s" disables too: zero is never a usable limit
		return Unlimited, nil
	}
	return v, nil
}

// Size is a byte count read from YAML; Unlimited after "unlimited" or 0.
type Size int64

// UnmarshalYAML implements yaml.Unmarshaler.
func (s *Size) UnmarshalYAML(n *yaml.Node) error {
	v, err := ParseSize(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*s = Size(v)
	return nil
}

var sizeRE = regexp.MustCompile(`^(\d+)\s*([kKmM]i?[bB]|[bB])?$`)

// ParseSize reads "131072", "128KB", "1MiB", "unlimited" or "0". KB and KiB
// both mean 1024 bytes, as API Gateway's "128 KB" does.
func ParseSize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	switch strings.ToLower(s) {
	case "unlimited", "off", "0":
		return Unlimited, nil
	}
	m := sizeRE.FindStringSubmatch(s)
	if m == nil {
		return 0, fmt.Errorf("%w size %q: want bytes such as 131072 or 128KB, or unlimited", ErrInvalid, s)
	}
	n, err := strconv.ParseInt(m[1], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w size %q: %v", ErrInvalid, s, err)
	}
	shift := 0
	switch strings.ToUpper(m[2][:min(len(m[2]), 1)]) {
	case "K":
		shift = 10
	case "M":
		shift = 20
	}
	if n > math.MaxInt64>>shift {
		return 0, fmt.Errorf("%w size %q: too large", ErrInvalid, s)
	}
	if n == 0 { // "0KB" disables too
		return Unlimited, nil
	}
	return n << shift, nil
}

// Count is a number of things read from YAML; Unlimited after "unlimited" or 0.
type Count int

// UnmarshalYAML implements yaml.Unmarshaler.
func (c *Count) UnmarshalYAML(n *yaml.Node) error {
	v, err := ParseCount(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*c = Count(v)
	return nil
}

// ParseCount reads "1024", "unlimited", "off" or "0" (the last three mean Unlimited).
func ParseCount(s string) (int, error) {
	s = strings.TrimSpace(s)
	switch strings.ToLower(s) {
	case "unlimited", "off":
		return Unlimited, nil
	}
	v, err := strconv.Atoi(s)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("%w count %q: want a whole number, or unlimited", ErrInvalid, s)
	}
	if v == 0 {
		return Unlimited, nil
	}
	return v, nil
}

// Rate is a number per second read from YAML; Unlimited after "unlimited" or 0.
type Rate float64

// UnmarshalYAML implements yaml.Unmarshaler.
func (r *Rate) UnmarshalYAML(n *yaml.Node) error {
	v, err := ParseRate(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*r = Rate(v)
	return nil
}

// ParseRate reads "10", "0.5", "unlimited", "off" or "0" (the last three mean Unlimited).
func ParseRate(s string) (float64, error) {
	s = strings.TrimSpace(s)
	switch strings.ToLower(s) {
	case "unlimited", "off":
		return Unlimited, nil
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || v < 0 || math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, fmt.Errorf("%w rate %q: want a number per second, or unlimited", ErrInvalid, s)
	}
	if v == 0 {
		return Unlimited, nil
	}
	return v, nil
}

// DefaultRoutes is the zero-config route table: the AWS chat tutorial's
// sendMessage plus topic routes, and no $default.
func DefaultRoutes() map[string]Route {
	return map[string]Route{
		"sendMessage": {Integration: Integration{Type: "broadcast"}},
		"subscribe":   {Integration: Integration{Type: "subscribe"}},
		"unsubscribe": {Integration: Integration{Type: "unsubscribe"}},
		"publish":     {Integration: Integration{Type: "publish"}},
	}
}

// Overrides are values from flags or the environment; empty fields are unset.
type Overrides struct {
	Listen string
	Stage  string
	// Cluster is cluster.url, Node cluster.node; ClusterListen is
	// cluster.embedded.cluster and ClusterPeers cluster.embedded.peers,
	// comma-separated.
	Cluster       string
	Node          string
	ClusterListen string
	ClusterPeers  string
	// Ordering is ordering: how one connection's messages run through the
	// routes that set none, for a project whose file cannot say it.
	Ordering string
	// Parameters override a template's Parameters (--parameter-overrides).
	Parameters map[string]string
}

// EnvOverrides reads the overrides of the environment.
func EnvOverrides(getenv func(string) string) Overrides {
	return Overrides{
		Listen:        getenv("SWITCHBOARD_LISTEN"),
		Stage:         getenv("SWITCHBOARD_STAGE"),
		Cluster:       getenv("SWITCHBOARD_CLUSTER"),
		Node:          getenv("SWITCHBOARD_NODE"),
		ClusterListen: getenv("SWITCHBOARD_CLUSTER_LISTEN"),
		ClusterPeers:  getenv("SWITCHBOARD_CLUSTER_PEERS"),
		Ordering:      getenv("SWITCHBOARD_ORDERING"),
	}
}

// override applies the environment's overrides, then the flags', over the
// file, and returns the key paths they set.
func (c *Config) override(getenv func(string) string, flags Overrides) map[string]bool {
	set := map[string]bool{}
	for _, o := range []Overrides{EnvOverrides(getenv), flags} {
		if o.Listen != "" {
			c.Listen = o.Listen
			set["listen"] = true
		}
		if o.Stage != "" {
			c.Stage = o.Stage
			set["stage"] = true
		}
		if o.Cluster != "" {
			c.Cluster.URL = o.Cluster
			set["cluster.url"] = true
		}
		if o.Node != "" {
			c.Cluster.Node = o.Node
			set["cluster.node"] = true
		}
		if o.ClusterListen != "" {
			c.Cluster.Embedded.Cluster = o.ClusterListen
			set["cluster.embedded.cluster"] = true
		}
		if o.ClusterPeers != "" {
			c.Cluster.Embedded.Peers = splitList(o.ClusterPeers)
			set["cluster.embedded.peers"] = true
		}
		if o.Ordering != "" {
			c.Ordering = o.Ordering
			set["ordering"] = true
		}
	}
	return set
}

// splitList splits a comma-separated list, dropping empty items.
func splitList(s string) []string {
	var out []string
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

// Load reads the YAML file at path (none when empty), applies env and
// overrides (flags win over the environment, which wins over the file), fills
// defaults and validates. Relative paths in the file are taken from the
// file's directory, and the files it names must exist. Every problem found
// is an *Error naming the file, line and key, joined with the others.
func Load(path string, getenv func(string) string, flags Overrides) (*Config, error) {
	cfg := &Config{Source: "built-in defaults"}
	var lines map[string]int
	if path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
		if cfg, lines, err = parse(data); err != nil {
			return nil, locate(err, path, lines, nil)
		}
		cfg.Source = path
		if cfg.Dir, err = filepath.Abs(filepath.Dir(path)); err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
		cfg.resolvePaths()
	}
	set := cfg.override(getenv, flags)
	if err := cfg.applyEnv(getenv); err != nil {
		return nil, err
	}
	if err := cfg.Complete(); err != nil {
		return nil, locate(err, path, lines, set)
	}
	return cfg, nil
}

// Complete fills in every default and validates, as Load does after reading
// a file: for a Config built in code (the public switchboard package's
// Options). The files and directories it names must exist. Every problem is
// an *Error naming its key path, joined with the others.
func (c *Config) Complete() error {
	c.fillDefaults()
	errs := Errors(c.Validate())
	errs = append(errs, c.checkFiles()...)
	return joinErrors(errs)
}

// locate sets the file and line of the Errors in err; a key set by a flag or
// the environment is said to be so instead.
func locate(err error, path string, lines map[string]int, set map[string]bool) error {
	errs := Errors(err)
	for _, e := range errs {
		if set[e.Path] {
			e.Msg += " (set by a flag or the environment)"
			continue
		}
		e.File = path
		if e.Line == 0 {
			e.Line = lineOf(lines, e.Path)
		}
	}
	if len(errs) == 0 {
		return err
	}
	return joinErrors(errs)
}

// applyEnv adds management credentials from the environment, so that
// secrets need not be written in the file, and leaves the collector to
// GOGC when the environment sets it.
func (c *Config) applyEnv(getenv func(string) string) error {
	if getenv("GOGC") != "" {
		c.HeapFloor = Unlimited // the operator chose the collector's rule
	}
	if d := getenv("SWITCHBOARD_DATA_DIR"); d != "" {
		c.DataDir = d
	}
	c.TLS.DataDir = DataDir(getenv, cmp.Or(c.TLS.DataDir, c.DataDir))
	if keys := getenv("SWITCHBOARD_MANAGEMENT_KEYS"); keys != "" {
		if c.Management.AccessKeys == nil {
			c.Management.AccessKeys = map[string]string{}
		}
		for _, pair := range strings.Split(keys, ",") {
			id, secret, ok := strings.Cut(strings.TrimSpace(pair), ":")
			if !ok || id == "" || secret == "" {
				return fmt.Errorf("%w: SWITCHBOARD_MANAGEMENT_KEYS: want AKID:secret[,AKID:secret]", ErrInvalid)
			}
			c.Management.AccessKeys[id] = secret
		}
	}
	if tok := getenv("SWITCHBOARD_MANAGEMENT_TOKEN"); tok != "" {
		c.Management.Tokens = append(c.Management.Tokens, tok)
	}
	return nil
}

// Parse decodes a YAML document, rejecting unknown fields. It fills no
// defaults. Its errors are *Error values with lines but no file name.
func Parse(r io.Reader) (*Config, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("config: read: %w", err)
	}
	cfg, _, err := parse(data)
	return cfg, err
}

// parse decodes data and returns the line of every key path too.
func parse(data []byte) (*Config, map[string]int, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, nil, syntaxError(err)
	}
	c := &checker{lines: map[string]int{}}
	c.check(&doc, reflect.TypeFor[Config](), "")
	if len(c.errs) > 0 {
		return nil, c.lines, joinErrors(c.errs)
	}
	cfg := &Config{}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil && !errors.Is(err, io.EOF) {
		// The checker lets through only what decodes; this is a safety net.
		return nil, c.lines, syntaxError(err)
	}
	return cfg, c.lines, nil
}

// resolvePaths makes the file's relative paths relative to its directory, Dir.
func (c *Config) resolvePaths() {
	abs := func(p *string) {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(c.Dir, *p)
		}
	}
	abs(&c.TLS.CertFile)
	abs(&c.TLS.KeyFile)
	abs(&c.TLS.DataDir)
	abs(&c.DataDir)
	abs(&c.Cluster.CredsFile)
	abs(&c.Cluster.TLS.CAFile)
	abs(&c.Cluster.TLS.CertFile)
	abs(&c.Cluster.TLS.KeyFile)
	abs(&c.Cluster.Embedded.StoreDir)
	for name, f := range c.Functions {
		abs(&f.CodeDir)
		c.Functions[name] = f
	}
	for name, a := range c.Authorizers {
		abs(&a.JWKSFile)
		a.PEMFiles = slices.Clone(a.PEMFiles)
		for i := range a.PEMFiles {
			abs(&a.PEMFiles[i])
		}
		c.Authorizers[name] = a
	}
}

// checkFiles checks that the files and directories the configuration names
// exist, so that a wrong path stops the start before the banner.
func (c *Config) checkFiles() []*Error {
	var errs []*Error
	check := func(path, p string, dir bool) {
		if p == "" {
			return
		}
		fi, err := os.Stat(p)
		switch {
		case errors.Is(err, fs.ErrNotExist) && dir:
			errs = append(errs, &Error{Path: path, Msg: "no such directory: " + p})
		case errors.Is(err, fs.ErrNotExist):
			errs = append(errs, &Error{Path: path, Msg: "no such file: " + p})
		case err != nil:
			var pe *fs.PathError
			if errors.As(err, &pe) {
				err = pe.Err
			}
			errs = append(errs, &Error{Path: path, Msg: fmt.Sprintf("cannot read %s: %v", p, err)})
		case dir && !fi.IsDir():
			errs = append(errs, &Error{Path: path, Msg: "expected a directory, got a file: " + p})
		case !dir && fi.IsDir():
			errs = append(errs, &Error{Path: path, Msg: "expected a file, got a directory: " + p})
		}
	}
	check("tls.certFile", c.TLS.CertFile, false)
	check("tls.keyFile", c.TLS.KeyFile, false)
	check("cluster.credsFile", c.Cluster.CredsFile, false)
	check("cluster.tls.caFile", c.Cluster.TLS.CAFile, false)
	check("cluster.tls.certFile", c.Cluster.TLS.CertFile, false)
	check("cluster.tls.keyFile", c.Cluster.TLS.KeyFile, false)
	for _, name := range slices.Sorted(maps.Keys(c.Functions)) {
		check("functions."+name+".codeDir", c.Functions[name].CodeDir, true)
	}
	for _, name := range slices.Sorted(maps.Keys(c.Authorizers)) {
		check("authorizers."+name+".jwksFile", c.Authorizers[name].JWKSFile, false)
		for i, f := range c.Authorizers[name].PEMFiles {
			check(fmt.Sprintf("authorizers.%s.pemFiles[%d]", name, i), f, false)
		}
	}
	return errs
}

func (c *Config) fillDefaults() {
	if c.Listen == "" {
		c.Listen = DefaultListen
	}
	if c.Stage == "" {
		c.Stage = DefaultStage
	}
	if c.RouteSelectionExpression == "" {
		c.RouteSelectionExpression = DefaultSelection
	}
	if c.Routes == nil {
		c.Routes = DefaultRoutes()
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = Duration(DefaultShutdownTimeout)
	}
	if c.IntegrationTimeout == 0 {
		c.IntegrationTimeout = Duration(DefaultIntegrationTimeout)
	}
	if c.EndpointEnv == "" {
		c.EndpointEnv = "APIG_ENDPOINT"
	}
	if c.HeapFloor == 0 {
		c.HeapFloor = DefaultHeapFloor
	}
	if c.HeapFloorResident == nil {
		resident := true
		c.HeapFloorResident = &resident
	}
}

// specialRoutes are the route keys API Gateway reserves.
var specialRoutes = []string{"$connect", "$disconnect", "$default"}

// CheckRouteKey reports what is wrong with a route key: it is empty, or it
// starts with $ without being $connect, $disconnect or $default. Validate
// checks every key of Routes with it; routes given in code are checked
// with it too.
func CheckRouteKey(key string) error {
	switch {
	case key == "":
		return errors.New("a route has an empty key")
	case strings.HasPrefix(key, "$") && !slices.Contains(specialRoutes, key):
		return fmt.Errorf("custom route keys must not start with $ (the $ routes are $connect, $disconnect and $default)%s", didYouMean(key, specialRoutes))
	}
	return nil
}

// IntegrationTypes are the integration kinds this build knows.
var IntegrationTypes = []string{"broadcast", "subscribe", "unsubscribe", "publish", "echo", "mock", "lambda", "invoke", "http"}

var stageRE = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// problems collects the Errors of a validation.
type problems []*Error

func (p *problems) add(path, format string, args ...any) {
	*p = append(*p, &Error{Path: path, Msg: fmt.Sprintf(format, args...)})
}

// Validate reports every problem it finds, as *Error values joined, each
// with its key path.
func (c *Config) Validate() error {
	var p problems
	if !stageRE.MatchString(c.Stage) {
		p.add("stage", "expected letters, digits, - and _, got %q", c.Stage)
	}
	for i, r := range c.History {
		path := fmt.Sprintf("history[%d]", i)
		segs := strings.Split(r.Topics, ".")
		switch {
		case slices.Contains(segs, ""):
			p.add(path+".topics", "want dot-separated segments, none empty, got %q", r.Topics)
		case slices.Index(segs, ">") >= 0 && slices.Index(segs, ">") != len(segs)-1:
			p.add(path+".topics", "\">\" must be the last segment, got %q", r.Topics)
		case r.Size < 0:
			p.add(path+".size", "must not be negative, got %d", r.Size)
		}
	}
	for _, key := range slices.Sorted(maps.Keys(c.Routes)) {
		r := c.Routes[key]
		path := "routes." + key
		if err := CheckRouteKey(key); err != nil && key == "" {
			p.add("routes", "%v", err)
		} else if err != nil {
			p.add(path, "%v", err)
		}
		if r.Ordering != "" && !slices.Contains(Orderings, r.Ordering) {
			p.add(path+".ordering", "expected one of %s, got %q%s", strings.Join(Orderings, ", "), r.Ordering, didYouMean(r.Ordering, Orderings))
		}
		in := r.Integration
		if r.Authorizer != "" {
			if key != "$connect" {
				p.add(path+".authorizer", "only $connect takes an authorizer")
			} else if _, ok := c.Authorizers[r.Authorizer]; !ok {
				p.add(path+".authorizer", "%q is not defined under authorizers%s", r.Authorizer, didYouMean(r.Authorizer, slices.Collect(maps.Keys(c.Authorizers))))
			}
		}
		switch {
		case in.Type == "" && key == "$connect" && r.Authorizer != "":
			// an authorizer alone guards $connect
		case in.Type == "":
			p.add(path+".integration.type", "missing: expected one of %s", strings.Join(IntegrationTypes, ", "))
		case !slices.Contains(IntegrationTypes, in.Type):
			p.add(path+".integration.type", "expected one of %s, got %q%s", strings.Join(IntegrationTypes, ", "), in.Type, didYouMean(in.Type, IntegrationTypes))
		case in.Type == "lambda" && in.Function == "":
			p.add(path+".integration.function", "missing: a lambda integration needs function, naming an entry of functions")
		case in.Type == "lambda":
			if _, ok := c.Functions[in.Function]; !ok {
				p.add(path+".integration.function", "%q is not defined under functions%s", in.Function, didYouMean(in.Function, slices.Collect(maps.Keys(c.Functions))))
			}
		case in.Type == "invoke" && in.Function == "":
			p.add(path+".integration.function", "missing: an invoke integration needs the function to call")
		case in.Type == "http" && !strings.HasPrefix(in.URL, "http://") && !strings.HasPrefix(in.URL, "https://"):
			p.add(path+".integration.url", "expected an http:// or https:// URL, got %q", in.URL)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(c.Functions)) {
		f := c.Functions[name]
		path := "functions." + name
		if (len(f.Command) == 0) == (f.Runtime == "") {
			p.add(path, "set exactly one of command or runtime")
		}
		if f.Runtime != "" && !strings.HasPrefix(f.Runtime, "nodejs") {
			p.add(path+".runtime", "%q is not supported: runtime supports nodejs* (nodejs18.x, nodejs20.x, nodejs22.x...); run other runtimes with command", f.Runtime)
		}
		if f.Runtime != "" && !strings.Contains(f.Handler, ".") {
			p.add(path+".handler", "expected file.exportName, such as index.handler, got %q", f.Handler)
		}
		if f.MaxProcesses < 0 {
			p.add(path+".maxProcesses", "expected a positive whole number, got %d", f.MaxProcesses)
		}
	}
	for _, hr := range c.HTTPRoutes {
		if _, ok := c.Functions[hr.Function]; !ok {
			p.add("", "http route %s %s: function %q is not defined under functions", hr.Method, hr.Path, hr.Function)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(c.Authorizers)) {
		a := c.Authorizers[name]
		path := "authorizers." + name
		switch a.Type {
		case "jwt":
			if a.JWKSURL == "" && a.JWKSFile == "" && len(a.PEMKeys) == 0 && len(a.PEMFiles) == 0 {
				p.add(path, "a jwt authorizer needs jwksUrl, jwksFile, pemKeys or pemFiles")
			}
		case "lambda":
			set := 0
			for _, v := range []bool{a.Function != "", a.URL != "", a.Invoke != nil} {
				if v {
					set++
				}
			}
			if set != 1 {
				p.add(path, "a lambda authorizer needs exactly one of function, url or invoke")
			} else if a.Invoke != nil && a.Invoke.Function == "" {
				p.add(path+".invoke.function", "missing: invoke needs the function to call")
			} else if _, ok := c.Functions[a.Function]; a.Function != "" && !ok {
				p.add(path+".function", "%q is not defined under functions%s", a.Function, didYouMean(a.Function, slices.Collect(maps.Keys(c.Functions))))
			}
		case "":
			p.add(path+".type", "missing: expected jwt or lambda")
		default:
			p.add(path+".type", "expected jwt or lambda, got %q", a.Type)
		}
	}
	for i, h := range c.Management.AllowedHosts {
		if h == "" || strings.ContainsAny(h, ":/ []") {
			p.add(fmt.Sprintf("management.allowedHosts[%d]", i), "expected a host name without scheme or port, got %q", h)
		}
	}
	if c.TLS.CertFile != "" && c.TLS.KeyFile == "" {
		p.add("tls.keyFile", "missing: set both certFile and keyFile")
	}
	if c.TLS.KeyFile != "" && c.TLS.CertFile == "" {
		p.add("tls.certFile", "missing: set both certFile and keyFile")
	}
	if c.Limits.ConnectBurst < 0 {
		p.add("limits.connectBurst", "bursts must not be negative: expected a whole number, got %d", c.Limits.ConnectBurst)
	}
	if c.Limits.MessageBurst < 0 {
		p.add("limits.messageBurst", "bursts must not be negative: expected a whole number, got %d", c.Limits.MessageBurst)
	}
	for i, tp := range c.TrustedProxies {
		if _, err := ParsePrefix(tp); err != nil {
			p.add(fmt.Sprintf("trustedProxies[%d]", i), "expected an IP address or CIDR prefix such as 10.0.0.0/8, got %q", tp)
		}
	}
	if c.ShutdownTimeout < 0 {
		p.add("shutdownTimeout", "expected a duration such as 10s; a drain needs a bound, so 0 and unlimited are refused")
	}
	if c.Ordering != "" && !slices.Contains(Orderings, c.Ordering) {
		p.add("ordering", "expected one of %s, got %q%s", strings.Join(Orderings, ", "), c.Ordering, didYouMean(c.Ordering, Orderings))
	}
	if c.MaxMessagesInFlight < 0 {
		p.add("maxMessagesInFlight", "expected a whole number such as 32; what one connection starts needs a bound, so 0 and unlimited are refused")
	}
	if c.IntegrationTimeout < 0 {
		p.add("integrationTimeout", "expected a duration such as 29s; an invocation needs a bound, so 0 and unlimited are refused")
	}
	p = append(p, c.Events.validate(c.Functions, c.Queues)...)
	p = append(p, validateQueues(c.Queues, c.Functions)...)
	p = append(p, validateConsumers(c.Consumers, c.Cluster)...)
	p = append(p, c.Cluster.validate()...)
	p = append(p, c.Presence.validate()...)
	return joinErrors(p)
}

// validate checks the rules' names and targets; their patterns and
// templates are compiled, and refused with the reason, when the server is built.
func (e Events) validate(functions map[string]Function, queues []Queue) problems {
	var p problems
	seen := map[string]bool{}
	for i, r := range e.Rules {
		path := fmt.Sprintf("events.rules[%d]", i)
		if r.Name == "" {
			p.add(path+".name", "is required")
			continue
		}
		if seen[r.Name] {
			p.add(path+".name", "rule %q is declared twice", r.Name)
		}
		seen[r.Name] = true
		if len(r.Pattern) == 0 {
			p.add(path+".pattern", "is required (rule %q)", r.Name)
		}
		if len(r.Targets) == 0 {
			p.add(path+".targets", "rule %q has no targets", r.Name)
		}
		for j, t := range r.Targets {
			tp := fmt.Sprintf("%s.targets[%d]", path, j)
			switch {
			case btoi(t.Function != "")+btoi(t.Topic != "")+btoi(t.Queue != "") != 1:
				p.add(tp, "set exactly one of function, queue or topic (rule %q)", r.Name)
			case t.Queue != "":
				if !slices.ContainsFunc(queues, func(q Queue) bool { return q.Name == t.Queue }) {
					p.add(tp+".queue", "queue %q is not defined under queues (rule %q)", t.Queue, r.Name)
				}
				if t.Data != "" {
					p.add(tp+".data", "data is for topic targets (rule %q)", r.Name)
				}
			case t.Function != "":
				if _, ok := functions[t.Function]; !ok {
					p.add(tp+".function", "function %q is not defined under functions (rule %q)", t.Function, r.Name)
				}
				if t.Data != "" {
					p.add(tp+".data", "data is for topic targets (rule %q)", r.Name)
				}
			}
			if t.MaxAttempts < 0 || t.MaxAge < 0 {
				p.add(tp, "maxAttempts and maxAge must not be negative (rule %q)", r.Name)
			}
		}
	}
	return p
}

var consumerName = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// validateConsumers checks the consumers' names, sources and bounds; their
// templates are compiled, and refused with the reason, when the server is built.
func validateConsumers(cs []Consumer, cluster Cluster) problems {
	var p problems
	engine, _ := cluster.Engine() // a bad cluster.url is reported by Cluster.validate
	seen := map[string]bool{}
	for i, c := range cs {
		path := fmt.Sprintf("consumers[%d]", i)
		switch {
		case c.Name == "":
			p.add(path+".name", "is required")
		case !consumerName.MatchString(c.Name):
			p.add(path+".name", "%q: use letters, digits, - and _ (at most 64)", c.Name)
		case seen[c.Name]:
			p.add(path+".name", "consumer %q is declared twice", c.Name)
		}
		seen[c.Name] = true
		if c.Topic == "" {
			p.add(path+".topic", "is required: a path such as $.room or a template such as orders.${orderId}")
		}
		if c.Window == Unlimited {
			p.add(path+".window", "a window must end: expected a duration such as 5m")
		}
		if c.PublishTimeout == Unlimited {
			p.add(path+".publishTimeout", "every publish needs a bound: expected a duration such as 10s")
		}
		if c.MaxDeliver < 0 {
			p.add(path+".maxDeliver", "expected a whole number of 1 or more; 0 means 5")
		}
		if c.Batch < 0 {
			p.add(path+".batch", "expected a whole number of 1 or more; 0 means 100")
		}
		for j, d := range c.Backoff {
			if d == Unlimited {
				p.add(fmt.Sprintf("%s.backoff[%d]", path, j), "expected a duration such as 5s")
			}
		}
		switch {
		case (c.NATS == nil) == (c.Redis == nil):
			p.add(path, "set exactly one of nats and redis")
		case c.NATS != nil:
			n := c.NATS
			if n.Stream == "" {
				p.add(path+".nats.stream", "is required: the JetStream stream to read")
			}
			if n.AckWait == Unlimited {
				p.add(path+".nats.ackWait", "an unacknowledged event must come back: expected a duration such as 30s")
			}
			switch scheme, _, _ := strings.Cut(strings.TrimSpace(n.URL), "://"); {
			case n.URL == "" && engine != EngineNATS && engine != EngineEmbedded:
				p.add(path+".nats.url", "is required unless cluster.url is a NATS server or embedded")
			case n.URL != "" && !strings.EqualFold(scheme, "nats") && !strings.EqualFold(scheme, "tls"):
				p.add(path+".nats.url", "%s: want nats://host:port or tls://host:port", redactURL(n.URL))
			}
		default:
			r := c.Redis
			if r.Stream == "" {
				p.add(path+".redis.stream", "is required: the stream's key")
			}
			if r.MinIdle == Unlimited {
				p.add(path+".redis.minIdle", "a pending entry must come back: expected a duration such as 30s")
			}
			if r.DeadLetter != "" && r.DeadLetter == r.Stream {
				p.add(path+".redis.deadLetter", "is the stream read; name another")
			}
			switch scheme, _, _ := strings.Cut(strings.TrimSpace(r.URL), "://"); {
			case r.URL == "" && engine != EngineRedis:
				p.add(path+".redis.url", "is required unless cluster.url is a Redis server")
			case r.URL != "" && !slices.Contains([]string{"redis", "rediss", "unix"}, strings.ToLower(scheme)):
				p.add(path+".redis.url", "%s: want redis://host:port or rediss://host:port", redactURL(r.URL))
			}
		}
	}
	return p
}

// validate checks the cluster settings that need no engine to check.
func (c Cluster) validate() problems {
	var p problems
	engine, err := c.Engine()
	if err != nil {
		msg := strings.TrimPrefix(err.Error(), ErrInvalid.Error()+": ")
		p.add("cluster.url", "%s", strings.TrimPrefix(msg, "cluster.url "))
		return p
	}
	if engine == EngineNone {
		if c.Node != "" || c.Embedded.Cluster != "" || len(c.Embedded.Peers) > 0 || c.Embedded.Listen != "" || c.Embedded.StoreDir != "" {
			p.add("cluster", "node, embedded, --cluster-listen and --cluster-peers need cluster.url (--cluster)")
		}
		return p
	}
	if c.TTL == Unlimited {
		p.add("cluster.ttl", "a lease must end: expected a duration such as 15s")
	}
	if c.CallTimeout == Unlimited {
		p.add("cluster.callTimeout", "every call needs a bound: expected a duration such as 5s")
	}
	if engine != EngineEmbedded && (c.Embedded.Cluster != "" || len(c.Embedded.Peers) > 0 || c.Embedded.Listen != "" || c.Embedded.StoreDir != "") {
		p.add("cluster.embedded", "cluster.embedded (--cluster-listen, --cluster-peers) needs cluster.url embedded")
	}
	if engine == EngineEmbedded && c.Embedded.Cluster != "" && len(c.Embedded.Peers) == 0 {
		p.add("cluster.embedded.cluster", "needs peers (--cluster-peers): the route address of every node, this one included")
	}
	for _, e := range []struct{ path, hp string }{{"cluster.embedded.listen", c.Embedded.Listen}, {"cluster.embedded.cluster", c.Embedded.Cluster}} {
		if _, _, err := net.SplitHostPort(e.hp); e.hp != "" && err != nil {
			p.add(e.path, "expected host:port, got %q", e.hp)
		}
	}
	for i, hp := range c.Embedded.Peers {
		if _, _, err := net.SplitHostPort(hp); err != nil {
			p.add(fmt.Sprintf("cluster.embedded.peers[%d]", i), "expected host:port, got %q", hp)
		}
	}
	kinds := 0
	for _, set := range []bool{c.User != "" || c.Password != "", c.Token != "", c.CredsFile != ""} {
		if set {
			kinds++
		}
	}
	if kinds > 1 {
		p.add("cluster", "set one of user/password, token or credsFile")
	}
	if engine == EngineRedis && (c.Token != "" || c.CredsFile != "") {
		p.add("cluster", "token and credsFile are NATS credentials; Redis takes user and password (or the URL's)")
	}
	if engine == EngineEmbedded && c.CredsFile != "" {
		p.add("cluster.credsFile", "credsFile needs an external NATS server; the embedded one takes user/password or token")
	}
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		p.add("cluster.tls", "set both certFile and keyFile")
	}
	return p
}

// ParsePrefix reads an address ("10.0.0.1") or a CIDR prefix ("10.0.0.0/8").
func ParsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%q is not a CIDR prefix", s)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not an IP address", s)
	}
	return netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()), nil
}
