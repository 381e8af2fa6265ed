package config_test

import (
	"errors"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-gateway/switchboard/internal/config"
)

func TestParseSize(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    int64
		wantErr bool
	}{
		{"131072", 131072, false},
		{"1", 1, false},
		{"128KB", 131072, false},
		{"128kb", 131072, false},
		{"128KiB", 131072, false},
		{"128 KB", 131072, false},
		{" 64KB ", 65536, false},
		{"1MiB", 1048576, false},
		{"1MB", 1048576, false},
		{"4MB", 4 << 20, false},
		{"100B", 100, false},
		{"unlimited", config.Unlimited, false},
		{"Unlimited", config.Unlimited, false},
		{"0", config.Unlimited, false},
		{"0KB", config.Unlimited, false},
		{"-1", 0, true},
		{"12XB", 0, true},
		{"12GB", 0, true},
		{"1.5MB", 0, true},
		{"KB", 0, true},
		{"", 0, true},
		{"abc", 0, true},
		{"99999999999999999999", 0, true},
		// These overflow int64 after the multiplication.
		{"17592186044417MiB", 0, true},
		{"18014398509481985KB", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			got, err := config.ParseSize(tt.in)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("ParseSize(%q) = %d, nil; want an error", tt.in, got)
				}
				if !errors.Is(err, config.ErrInvalid) {
					t.Errorf("ParseSize(%q) error = %v, want it to wrap ErrInvalid", tt.in, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("ParseSize(%q) = %d, %v; want %d, nil", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestParseDuration(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    time.Duration
		wantErr bool
	}{
		{"10m", 10 * time.Minute, false},
		{"2h", 2 * time.Hour, false},
		{"1h30m", 90 * time.Minute, false},
		{"250ms", 250 * time.Millisecond, false},
		{" 30s ", 30 * time.Second, false},
		{"unlimited", config.Unlimited, false},
		{"UNLIMITED", config.Unlimited, false},
		{"off", config.Unlimited, false},
		{"0", config.Unlimited, false},
		{"0s", config.Unlimited, false},
		{"-5s", 0, true},
		{"ten", 0, true},
		{"10", 0, true},
		{"", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			got, err := config.ParseDuration(tt.in)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("ParseDuration(%q) = %v, nil; want an error", tt.in, got)
				}
				if !errors.Is(err, config.ErrInvalid) {
					t.Errorf("ParseDuration(%q) error = %v, want it to wrap ErrInvalid", tt.in, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("ParseDuration(%q) = %v, %v; want %v, nil", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestParse(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, yaml string
		wantErr    bool
	}{
		{"empty", "", false},
		{"comment only", "# nothing\n", false},
		{"known fields", "listen: ':8080'\nstage: prod\nlimits:\n  maxMessageBytes: 32KB\n", false},
		{"unknown top-level field", "listen: ':8080'\nlisten_addr: ':9090'\n", true},
		{"unknown nested field", "limits:\n  maxMessageSize: 1KB\n", true},
		{"unknown route field", "routes:\n  a:\n    integration: {type: echo}\n    timeout: 5s\n", true},
		{"bad size", "limits:\n  maxMessageBytes: 12XB\n", true},
		{"bad duration", "limits:\n  idleTimeout: ten\n", true},
		{"wrong type", "routes: [a, b]\n", true},
		{"not YAML", "listen: [\n", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg, err := config.Parse(strings.NewReader(tt.yaml))
			if tt.wantErr {
				if err == nil {
					t.Fatalf("Parse(%q) = %+v, nil; want an error", tt.yaml, cfg)
				}
				if !errors.Is(err, config.ErrInvalid) {
					t.Errorf("Parse(%q) error = %v, want it to wrap ErrInvalid", tt.yaml, err)
				}
				if strings.HasPrefix(tt.name, "unknown") && !strings.Contains(err.Error(), "line ") {
					t.Errorf("Parse(%q) error = %v, want it to name the line", tt.yaml, err)
				}
				return
			}
			if err != nil {
				t.Errorf("Parse(%q) error = %v, want nil", tt.yaml, err)
			}
		})
	}
}

func TestParseFillsNoDefaults(t *testing.T) {
	t.Parallel()
	cfg, err := config.Parse(strings.NewReader("stage: prod\n"))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if cfg.Stage != "prod" || cfg.Listen != "" || cfg.Routes != nil || cfg.Limits != (config.Limits{}) {
		t.Errorf("Parse(stage: prod) = %+v, want only Stage set", cfg)
	}
}

func noEnv(string) string { return "" }

// The heap floor is on by default, its pages touched at start; off in the
// file, or GOGC in the environment (which wins over the file), turn it
// off, and heapFloorResident: false leaves its pages untouched.
func TestHeapFloor(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	off := filepath.Join(dir, "off.yaml")
	set := filepath.Join(dir, "set.yaml")
	if err := os.WriteFile(off, []byte("heapFloor: off\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(set, []byte("heapFloor: 64MiB\nheapFloorResident: false\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	gogc := func(k string) string {
		if k == "GOGC" {
			return "200"
		}
		return ""
	}
	for _, c := range []struct {
		name    string
		path    string
		getenv  func(string) string
		want    config.Size
		touched bool
	}{
		{"default", "", noEnv, 32 << 20, true},
		{"set, not resident", set, noEnv, 64 << 20, false},
		{"off", off, noEnv, config.Unlimited, false},
		{"GOGC set", "", gogc, config.Unlimited, false},
		{"GOGC set and a floor in the file", set, gogc, config.Unlimited, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			cfg, err := config.Load(c.path, c.getenv, config.Overrides{})
			if err != nil {
				t.Fatal(err)
			}
			if cfg.HeapFloor != c.want {
				t.Errorf("HeapFloor = %d, want %d", cfg.HeapFloor, c.want)
			}
			if got := cfg.HeapFloorTouched(); got != c.touched {
				t.Errorf("HeapFloorTouched() = %v, want %v", got, c.touched)
			}
		})
	}
}

func TestLoadDefaults(t *testing.T) {
	t.Parallel()
	cfg, err := config.Load("", noEnv, config.Overrides{})
	if err != nil {
		t.Fatalf("Load with no file: %v", err)
	}
	if cfg.Listen != "127.0.0.1:3001" {
		t.Errorf("Listen = %q, want %q", cfg.Listen, "127.0.0.1:3001")
	}
	if cfg.Stage != "dev" {
		t.Errorf("Stage = %q, want %q", cfg.Stage, "dev")
	}
	if cfg.RouteSelectionExpression != "$request.body.action" {
		t.Errorf("RouteSelectionExpression = %q, want %q", cfg.RouteSelectionExpression, "$request.body.action")
	}
	wantRoutes := map[string]string{
		"sendMessage": "broadcast",
		"subscribe":   "subscribe",
		"unsubscribe": "unsubscribe",
		"publish":     "publish",
	}
	if len(cfg.Routes) != len(wantRoutes) {
		t.Errorf("Routes has keys %q, want %d routes", slices.Sorted(maps.Keys(cfg.Routes)), len(wantRoutes))
	}
	for key, typ := range wantRoutes {
		if got := cfg.Routes[key].Integration.Type; got != typ {
			t.Errorf("Routes[%q].Integration.Type = %q, want %q", key, got, typ)
		}
	}
	if _, ok := cfg.Routes["$default"]; ok {
		t.Errorf("Routes has $default, want none")
	}
	// Limits take their defaults in the components they configure: absent,
	// each stays zero here.
	if cfg.Limits != (config.Limits{}) {
		t.Errorf("Limits = %+v, want all zero", cfg.Limits)
	}
	if cfg.ShutdownTimeout <= 0 || cfg.IntegrationTimeout <= 0 {
		t.Errorf("ShutdownTimeout, IntegrationTimeout = %v, %v; want positive defaults",
			time.Duration(cfg.ShutdownTimeout), time.Duration(cfg.IntegrationTimeout))
	}
	if cfg.Source == "" {
		t.Errorf("Source is empty, want a description of the built-in defaults")
	}
}

// writeFile writes a config file in a fresh temporary directory.
func writeFile(t *testing.T, yaml string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "switchboard.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestLoadPrecedence(t *testing.T) {
	t.Parallel()
	file := writeFile(t, "listen: 'file:1'\nstage: file\n")
	tests := []struct {
		name                string
		path                string
		env                 map[string]string
		flags               config.Overrides
		wantListen, wantStg string
	}{
		{"file only", file, nil, config.Overrides{}, "file:1", "file"},
		{"env over file", file,
			map[string]string{"SWITCHBOARD_LISTEN": "env:2", "SWITCHBOARD_STAGE": "env"},
			config.Overrides{}, "env:2", "env"},
		{"env listen only", file,
			map[string]string{"SWITCHBOARD_LISTEN": "env:2"},
			config.Overrides{}, "env:2", "file"},
		{"flags over env", file,
			map[string]string{"SWITCHBOARD_LISTEN": "env:2", "SWITCHBOARD_STAGE": "env"},
			config.Overrides{Listen: "flag:3", Stage: "flag"}, "flag:3", "flag"},
		{"flag stage only", file,
			map[string]string{"SWITCHBOARD_LISTEN": "env:2", "SWITCHBOARD_STAGE": "env"},
			config.Overrides{Stage: "flag"}, "env:2", "flag"},
		{"flags over file", file, nil, config.Overrides{Listen: "flag:3", Stage: "flag"}, "flag:3", "flag"},
		{"env over defaults", "",
			map[string]string{"SWITCHBOARD_STAGE": "env"},
			config.Overrides{}, "127.0.0.1:3001", "env"},
		{"other env ignored", file,
			map[string]string{"LISTEN": "x:1", "STAGE": "x"},
			config.Overrides{}, "file:1", "file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			getenv := func(k string) string { return tt.env[k] }
			cfg, err := config.Load(tt.path, getenv, tt.flags)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if cfg.Listen != tt.wantListen || cfg.Stage != tt.wantStg {
				t.Errorf("Load: Listen, Stage = %q, %q; want %q, %q", cfg.Listen, cfg.Stage, tt.wantListen, tt.wantStg)
			}
			if tt.path != "" && cfg.Source != tt.path {
				t.Errorf("Load: Source = %q, want %q", cfg.Source, tt.path)
			}
		})
	}
}

func TestLoadErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		path    string
		flags   config.Overrides
		invalid bool // the error wraps ErrInvalid
	}{
		{"missing file", filepath.Join(t.TempDir(), "absent.yaml"), config.Overrides{}, false},
		{"unknown field", writeFile(t, "lisen: ':1'\n"), config.Overrides{}, true},
		{"invalid route", writeFile(t, "routes:\n  $custom:\n    integration: {type: echo}\n"), config.Overrides{}, true},
		{"invalid stage flag", writeFile(t, ""), config.Overrides{Stage: "a/b"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg, err := config.Load(tt.path, noEnv, tt.flags)
			if err == nil {
				t.Fatalf("Load(%q) = %+v, nil; want an error", tt.path, cfg)
			}
			if got := errors.Is(err, config.ErrInvalid); got != tt.invalid {
				t.Errorf("Load(%q) error = %v; errors.Is(err, ErrInvalid) = %v, want %v", tt.path, err, got, tt.invalid)
			}
		})
	}
}

// limitKeys returns the YAML key of every field of Limits that is a limit,
// by reflection, so that a limit added later is covered without a new case.
// Bursts are parameters of their rates, not limits.
func limitKeys(t *testing.T) []string {
	t.Helper()
	var keys []string
	typ := reflect.TypeFor[config.Limits]()
	for i := range typ.NumField() {
		key, _, _ := strings.Cut(typ.Field(i).Tag.Get("yaml"), ",")
		if key != "" && !strings.HasSuffix(key, "Burst") {
			keys = append(keys, key)
		}
	}
	return keys
}

// limitValue returns the value of the Limits field whose YAML key is key.
func limitValue(t *testing.T, l config.Limits, key string) float64 {
	t.Helper()
	v := reflect.ValueOf(l)
	for i := range v.NumField() {
		if k, _, _ := strings.Cut(v.Type().Field(i).Tag.Get("yaml"), ","); k == key {
			switch f := v.Field(i); f.Kind() {
			case reflect.Int, reflect.Int64:
				return float64(f.Int())
			case reflect.Float64:
				return f.Float()
			default:
				t.Fatalf("limits.%s has kind %s", key, f.Kind())
			}
		}
	}
	t.Fatalf("no field of Limits has key %q", key)
	return 0
}

// TestLoadEveryLimitDisables takes "unlimited", "off" and 0 of every limit
// from YAML: each reads as Unlimited. An absent limit stays zero.
func TestLoadEveryLimitDisables(t *testing.T) {
	t.Parallel()
	for _, key := range limitKeys(t) {
		for _, v := range []string{"unlimited", "off", "0", "Unlimited"} {
			t.Run(key+"="+v, func(t *testing.T) {
				t.Parallel()
				cfg, err := config.Load(writeFile(t, "limits:\n  "+key+": "+strconv.Quote(v)+"\n"), noEnv, config.Overrides{})
				if err != nil {
					t.Fatalf("Load: %v", err)
				}
				if got := limitValue(t, cfg.Limits, key); got != config.Unlimited {
					t.Errorf("limits.%s: %s = %v, want Unlimited (%d)", key, v, got, config.Unlimited)
				}
			})
		}
		t.Run(key+" unquoted 0", func(t *testing.T) {
			t.Parallel()
			cfg, err := config.Load(writeFile(t, "limits:\n  "+key+": 0\n"), noEnv, config.Overrides{})
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if got := limitValue(t, cfg.Limits, key); got != config.Unlimited {
				t.Errorf("limits.%s: 0 = %v, want Unlimited", key, got)
			}
		})
	}
}

func TestLoadLimitValues(t *testing.T) {
	t.Parallel()
	path := writeFile(t, `
routes:
  $default:
    integration:
      type: echo
limits:
  maxMessageBytes: unlimited
  idleTimeout: 5m
  sendQueueBytes: 1MB
  sendQueueMessages: 10
  messageRate: 2.5
  messageBurst: 5
  maxSubscriptions: 3
`)
	cfg, err := config.Load(path, noEnv, config.Overrides{})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	l := cfg.Limits
	want := config.Limits{
		MaxMessageBytes:   config.Unlimited,
		IdleTimeout:       config.Duration(5 * time.Minute),
		SendQueueBytes:    1 << 20,
		SendQueueMessages: 10,
		MessageRate:       2.5,
		MessageBurst:      5,
		MaxSubscriptions:  3,
	}
	if l != want {
		t.Errorf("Limits = %+v, want %+v", l, want)
	}
	if len(cfg.Routes) != 1 || cfg.Routes["$default"].Integration.Type != "echo" {
		t.Errorf("Routes = %+v, want only $default -> echo", cfg.Routes)
	}
}

func TestLoadBadLimits(t *testing.T) {
	t.Parallel()
	for _, yaml := range []string{
		"limits: {sendQueueMessages: -1}",
		"limits: {sendQueueMessages: 1.5}",
		"limits: {maxConnections: lots}",
		"limits: {messageRate: -2}",
		"limits: {pingRate: .inf}",
		"limits: {messageBurst: -1}",
	} {
		if cfg, err := config.Load(writeFile(t, yaml+"\n"), noEnv, config.Overrides{}); !errors.Is(err, config.ErrInvalid) {
			t.Errorf("Load(%q) = %+v, %v; want ErrInvalid", yaml, cfg, err)
		}
	}
}

func routeOf(typ string) config.Route {
	return config.Route{Integration: config.Integration{Type: typ}}
}

func validConfig() *config.Config {
	return &config.Config{
		Listen: "127.0.0.1:0",
		Stage:  "prod_1-a",
		Routes: map[string]config.Route{
			"$connect":    routeOf("mock"),
			"$disconnect": routeOf("mock"),
			"$default":    routeOf("echo"),
			"sendMessage": routeOf("broadcast"),
		},
		TrustedProxies: []string{"10.0.0.1", "10.0.0.0/8", "::1", "fd00::/8"},
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		mutate  func(*config.Config)
		mention string // a word the error must contain; empty when valid
	}{
		{"valid", func(*config.Config) {}, ""},
		{"custom $ route", func(c *config.Config) { c.Routes["$custom"] = routeOf("echo") }, "$custom"},
		{"empty route key", func(c *config.Config) { c.Routes[""] = routeOf("echo") }, "empty"},
		{"unknown integration", func(c *config.Config) { c.Routes["x"] = routeOf("carrier-pigeon") }, "carrier-pigeon"},
		{"missing integration type", func(c *config.Config) { c.Routes["x"] = routeOf("") }, "routes.x.integration.type: missing"},
		{"bad stage", func(c *config.Config) { c.Stage = "bad stage" }, "bad stage"},
		{"empty stage", func(c *config.Config) { c.Stage = "" }, "stage"},
		{"bad proxy", func(c *config.Config) { c.TrustedProxies = append(c.TrustedProxies, "10.0.0.300") }, "10.0.0.300"},
		{"bad proxy prefix", func(c *config.Config) { c.TrustedProxies = []string{"10.0.0.0/33"} }, "10.0.0.0/33"},
		{"allowed host", func(c *config.Config) { c.Management.AllowedHosts = []string{"gateway.internal"} }, ""},
		{"allowed host with a port", func(c *config.Config) { c.Management.AllowedHosts = []string{"gateway.internal:3001"} }, "allowedHosts"},
		{"allowed host as a URL", func(c *config.Config) { c.Management.AllowedHosts = []string{"http://gateway.internal"} }, "allowedHosts"},
		{"empty allowed host", func(c *config.Config) { c.Management.AllowedHosts = []string{""} }, "allowedHosts"},
		{"negative burst", func(c *config.Config) { c.Limits.MessageBurst = -1 }, "bursts"},
		{"history", func(c *config.Config) { c.History = []config.HistoryRule{{Topics: "chat.*", Size: 100}} }, ""},
		{"history empty segment", func(c *config.Config) { c.History = []config.HistoryRule{{Topics: "chat..a"}} }, "chat..a"},
		{"history empty topics", func(c *config.Config) { c.History = []config.HistoryRule{{}} }, "history[0]"},
		{"history tail not last", func(c *config.Config) { c.History = []config.HistoryRule{{Topics: "a.>.b"}} }, "a.>.b"},
		{"history negative size", func(c *config.Config) { c.History = []config.HistoryRule{{Topics: "a", Size: -1}} }, "size"},
		{"history on a NATS cluster", func(c *config.Config) {
			c.History = []config.HistoryRule{{Topics: "a"}}
			c.Cluster.URL = "nats://127.0.0.1:4222"
		}, ""},
		{"history on an embedded cluster", func(c *config.Config) {
			c.History = []config.HistoryRule{{Topics: "a"}}
			c.Cluster.URL = "embedded"
		}, ""},
		{"history on a Redis cluster", func(c *config.Config) {
			c.History = []config.HistoryRule{{Topics: "a"}}
			c.Cluster.URL = "redis://127.0.0.1:6379"
		}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := validConfig()
			tt.mutate(c)
			err := c.Validate()
			if tt.mention == "" {
				if err != nil {
					t.Errorf("Validate() = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, config.ErrInvalid) {
				t.Fatalf("Validate() = %v, want an error wrapping ErrInvalid", err)
			}
			if !strings.Contains(err.Error(), tt.mention) {
				t.Errorf("Validate() = %v, want it to mention %q", err, tt.mention)
			}
		})
	}
}

func TestValidateJoinsEveryProblem(t *testing.T) {
	t.Parallel()
	c := validConfig()
	c.Stage = "bad stage"
	c.Routes["$custom"] = routeOf("echo")
	c.Routes["other"] = routeOf("carrier-pigeon")
	c.TrustedProxies = []string{"not-an-ip"}
	err := c.Validate()
	if !errors.Is(err, config.ErrInvalid) {
		t.Fatalf("Validate() = %v, want an error wrapping ErrInvalid", err)
	}
	joined, ok := err.(interface{ Unwrap() []error })
	if !ok {
		t.Fatalf("Validate() = %v (%T), want errors joined", err, err)
	}
	if got := len(joined.Unwrap()); got != 4 {
		t.Errorf("Validate() joined %d errors, want 4: %v", got, err)
	}
	for _, e := range joined.Unwrap() {
		if !errors.Is(e, config.ErrInvalid) {
			t.Errorf("Validate() error %q does not wrap ErrInvalid", e)
		}
	}
	for _, want := range []string{"bad stage", "$custom", "carrier-pigeon", "not-an-ip"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want it to mention %q", err, want)
		}
	}
}

func TestParsePrefix(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in, want string
		wantErr  bool
	}{
		{"10.0.0.1", "10.0.0.1/32", false},
		{"10.1.2.3/8", "10.0.0.0/8", false},
		{"::1", "::1/128", false},
		{"::ffff:10.0.0.1", "10.0.0.1/32", false},
		{"fd00::1/8", "fd00::/8", false},
		{"10.0.0.300", "", true},
		{"10.0.0.0/33", "", true},
		{"example.com", "", true},
		{"", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			got, err := config.ParsePrefix(tt.in)
			if tt.wantErr {
				if err == nil {
					t.Errorf("ParsePrefix(%q) = %v, nil; want an error", tt.in, got)
				}
				return
			}
			if err != nil || got.String() != tt.want {
				t.Errorf("ParsePrefix(%q) = %v, %v; want %s, nil", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestRouteTwoWay(t *testing.T) {
	t.Parallel()
	yes, no := true, false
	tests := []struct {
		name  string
		route config.Route
		want  bool
	}{
		{"echo", config.Route{Integration: config.Integration{Type: "echo"}}, true},
		{"mock", config.Route{Integration: config.Integration{Type: "mock", Response: "{}"}}, true},
		{"broadcast", config.Route{Integration: config.Integration{Type: "broadcast"}}, false},
		{"publish", config.Route{Integration: config.Integration{Type: "publish"}}, false},
		{"echo with routeResponse false", config.Route{Integration: config.Integration{Type: "echo"}, RouteResponse: &no}, false},
		{"broadcast with routeResponse true", config.Route{Integration: config.Integration{Type: "broadcast"}, RouteResponse: &yes}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := tt.route.TwoWay(); got != tt.want {
				t.Errorf("%+v.TwoWay() = %v, want %v", tt.route, got, tt.want)
			}
		})
	}
}

func TestRouteResponseFromYAML(t *testing.T) {
	t.Parallel()
	cfg, err := config.Parse(strings.NewReader(`
routes:
  $default:
    integration: {type: echo}
    routeResponse: false
  ping:
    integration: {type: mock, response: pong}
`))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if cfg.Routes["$default"].TwoWay() {
		t.Errorf("$default (echo, routeResponse: false).TwoWay() = true, want false")
	}
	ping := cfg.Routes["ping"]
	if !ping.TwoWay() || ping.Integration.Response != "pong" {
		t.Errorf("ping = %+v, TwoWay %v; want mock answering pong, two-way", ping, ping.TwoWay())
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(""))
	f.Add([]byte("listen: ':8080'\nstage: prod\n"))
	f.Add([]byte("routes:\n  $default:\n    integration: {type: echo}\n    routeResponse: false\n"))
	f.Add([]byte("limits:\n  maxMessageBytes: 128KB\n  idleTimeout: unlimited\n  maxLifetime: 2h\n"))
	f.Add([]byte("trustedProxies: [10.0.0.0/8, '::1']\nsubprotocols: [a]\n"))
	f.Add([]byte("a: &x [*x]\n"))
	f.Add([]byte("limits: {maxPostBytes: !!binary AAAA}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := config.Parse(strings.NewReader(string(data)))
		if err != nil {
			if !errors.Is(err, config.ErrInvalid) {
				t.Errorf("Parse(%q) error = %v, want it to wrap ErrInvalid", data, err)
			}
			return
		}
		if err := cfg.Validate(); err != nil && !errors.Is(err, config.ErrInvalid) {
			t.Errorf("Validate() after Parse(%q) = %v, want it to wrap ErrInvalid", data, err)
		}
	})
}

func TestFrameTimeoutFromYAML(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		yaml string
		want config.Duration
	}{
		{"limits: {frameTimeout: 250ms}\n", config.Duration(250 * time.Millisecond)},
		{"limits: {frameTimeout: unlimited}\n", config.Unlimited},
		{"limits: {frameTimeout: 0}\n", config.Unlimited},
		{"stage: dev\n", 0}, // absent: the connection's own default (30s)
	} {
		cfg, err := config.Parse(strings.NewReader(tt.yaml))
		if err != nil {
			t.Fatalf("Parse(%q): %v", tt.yaml, err)
		}
		if got := cfg.Limits.FrameTimeout; got != tt.want {
			t.Errorf("Parse(%q): frameTimeout = %v, want %v", tt.yaml, time.Duration(got), time.Duration(tt.want))
		}
	}
}

// The example of docs/history.md loads.
func TestDocsHistoryExampleLoads(t *testing.T) {
	t.Parallel()
	doc, err := os.ReadFile("../../docs/history.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, _ := strings.Cut(string(doc), "```yaml\n")
	example, _, _ := strings.Cut(rest, "```")
	cfg, err := config.Parse(strings.NewReader(example))
	if err != nil {
		t.Fatalf("Parse(docs example): %v", err)
	}
	want := []config.HistoryRule{{Topics: "chat.*", Size: 100, TTL: config.Duration(10 * time.Minute)}, {Topics: "orders.>", Size: 1000}}
	if !slices.Equal(cfg.History, want) {
		t.Errorf("history = %+v, want %+v", cfg.History, want)
	}
}

// A Config built in code and completed equals the one Load makes from no
// file; its problems carry their key paths as Load's do.
func TestCompleteMatchesLoad(t *testing.T) {
	t.Parallel()
	loaded, err := config.Load("", func(string) string { return "" }, config.Overrides{})
	if err != nil {
		t.Fatal(err)
	}
	built := &config.Config{Source: loaded.Source}
	if err := built.Complete(); err != nil {
		t.Fatalf("Complete() = %v", err)
	}
	if !reflect.DeepEqual(built, loaded) {
		t.Errorf("Complete() = %+v, want Load's %+v", built, loaded)
	}

	bad := &config.Config{Stage: "a b", Routes: map[string]config.Route{"$nope": {Integration: config.Integration{Type: "echo"}}}}
	errs := config.Errors(bad.Complete())
	var paths []string
	for _, e := range errs {
		paths = append(paths, e.Path)
	}
	if want := []string{"routes.$nope", "stage"}; !slices.Equal(paths, want) {
		t.Errorf("Complete() problems at %q, want %q (%v)", paths, want, errs)
	}
}

func TestCheckRouteKey(t *testing.T) {
	t.Parallel()
	tests := []struct {
		key, wantErr string
	}{
		{"sendMessage", ""},
		{"$connect", ""},
		{"$disconnect", ""},
		{"$default", ""},
		{"", "a route has an empty key"},
		{"$conect", "custom route keys must not start with $ (the $ routes are $connect, $disconnect and $default); did you mean $connect?"},
	}
	for _, tt := range tests {
		err := config.CheckRouteKey(tt.key)
		got := ""
		if err != nil {
			got = err.Error()
		}
		if got != tt.wantErr {
			t.Errorf("CheckRouteKey(%q) = %q, want %q", tt.key, got, tt.wantErr)
		}
	}
}
