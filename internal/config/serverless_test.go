package config_test

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-gateway/switchboard/internal/config"
)

func writeServerless(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "serverless.yml")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

const slsChat = `
service: chat
provider:
  name: aws
  runtime: nodejs20.x
  stage: ${opt:stage, 'beta'}
  region: eu-west-1
  memorySize: 256
  websocketsApiRouteSelectionExpression: $request.body.type
  environment:
    TABLE: ${env:TABLE_NAME, 'connections'}
    PLAIN: value
functions:
  connect:
    handler: handler.connect
    events:
      - websocket: $connect
  send:
    handler: handler.send
    timeout: 3
    layers: [arn:aws:lambda:layer]
    environment:
      ONLY_SEND: "1"
    events:
      - websocket:
          route: sendMessage
          routeResponseSelectionExpression: $default
      - http:
          path: /x
          method: get
  goFunc:
    runtime: provided.al2
    handler: bin/bootstrap
    events:
      - websocket:
          route: $default
          authorizer: auth
  orphan:
    handler: handler.orphan
`

func TestLoadServerless(t *testing.T) {
	t.Parallel()
	path := writeServerless(t, slsChat)
	cfg, err := config.LoadServerless(path, func(k string) string {
		return map[string]string{"TABLE_NAME": "from-env"}[k]
	}, config.Overrides{})
	if err != nil {
		t.Fatalf("LoadServerless: %v", err)
	}
	if cfg.Stage != "beta" || cfg.RouteSelectionExpression != "$request.body.type" || cfg.Dir != filepath.Dir(path) {
		t.Errorf("stage %q, selection %q, dir %q", cfg.Stage, cfg.RouteSelectionExpression, cfg.Dir)
	}
	if cfg.Environment["TABLE"] != "from-env" || cfg.Environment["PLAIN"] != "value" || cfg.Environment["AWS_REGION"] != "eu-west-1" {
		t.Errorf("environment = %v", cfg.Environment)
	}
	wantRoutes := map[string]struct {
		function string
		twoWay   bool
	}{"$connect": {"connect", false}, "sendMessage": {"send", true}, "$default": {"goFunc", false}}
	if len(cfg.Routes) != len(wantRoutes) {
		t.Errorf("routes = %v, want %v", cfg.Routes, wantRoutes)
	}
	for key, want := range wantRoutes {
		r := cfg.Routes[key]
		if r.Integration.Type != "lambda" || r.Integration.Function != want.function || r.TwoWay() != want.twoWay {
			t.Errorf("route %s = %+v (two-way %v), want lambda %s two-way %v", key, r, r.TwoWay(), want.function, want.twoWay)
		}
	}
	if f := cfg.Functions["send"]; f.Runtime != "nodejs20.x" || f.Handler != "handler.send" || time.Duration(f.Timeout) != 3*time.Second || f.Environment["ONLY_SEND"] != "1" {
		t.Errorf("function send = %+v", f)
	}
	if f := cfg.Functions["goFunc"]; !slices.Equal(f.Command, []string{"bin/bootstrap"}) || f.Runtime != "" {
		t.Errorf("function goFunc = %+v, want the handler run as a command", f)
	}
	if _, ok := cfg.Functions["orphan"]; ok {
		t.Error("a function with no websocket event is configured")
	}
	warnings := strings.Join(cfg.Warnings, "\n")
	for _, want := range []string{"provider.memorySize", "functions.send.layers", "http events", "websocket.authorizer", "functions.orphan has no websocket event"} {
		if !strings.Contains(warnings, want) {
			t.Errorf("warnings lack %q:\n%s", want, warnings)
		}
	}
}

func TestLoadServerlessStageFlag(t *testing.T) {
	t.Parallel()
	cfg, err := config.LoadServerless(writeServerless(t, slsChat), func(string) string { return "" }, config.Overrides{Stage: "prod", Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Stage != "prod" || cfg.Listen != "127.0.0.1:0" || cfg.Environment["TABLE"] != "connections" {
		t.Errorf("stage %q listen %q TABLE %q: want the flag's stage and the variable's default", cfg.Stage, cfg.Listen, cfg.Environment["TABLE"])
	}
}

func TestLoadServerlessErrors(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, yaml, want string }{
		{"unsupported runtime", "provider: {runtime: python3.12}\nfunctions:\n  f:\n    handler: h.f\n    events: [{websocket: $connect}]\n", `runtime "python3.12" is not supported`},
		{"route twice", "provider: {runtime: nodejs20.x}\nfunctions:\n  f:\n    handler: h.f\n    events: [{websocket: a}, {websocket: {route: a}}]\n", `route "a" is declared twice`},
		{"missing route", "provider: {runtime: nodejs20.x}\nfunctions:\n  f:\n    handler: h.f\n    events: [{websocket: {routeResponseSelectionExpression: $default}}]\n", "route is required"},
		{"not yaml", "functions: [", "invalid"},
		{"custom key with $", "provider: {runtime: nodejs20.x}\nfunctions:\n  f:\n    handler: h.f\n    events: [{websocket: $bad}]\n", "must not start with $"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := config.LoadServerless(writeServerless(t, tt.yaml), func(string) string { return "" }, config.Overrides{})
			if !errors.Is(err, config.ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want ErrInvalid mentioning %q", err, tt.want)
			}
		})
	}
}

func TestLoadServerlessUnresolvedVariableWarns(t *testing.T) {
	t.Parallel()
	cfg, err := config.LoadServerless(writeServerless(t, "provider:\n  runtime: nodejs20.x\n  environment: {A: '${ssm:/x/y}'}\nfunctions:\n  f:\n    handler: h.f\n    events: [{websocket: $default}]\n"),
		func(string) string { return "" }, config.Overrides{})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Environment["A"] != "${ssm:/x/y}" || !strings.Contains(strings.Join(cfg.Warnings, ";"), "${ssm:/x/y} is not resolved") {
		t.Errorf("A = %q, warnings %v", cfg.Environment["A"], cfg.Warnings)
	}
}

func FuzzLoadServerless(f *testing.F) {
	f.Add(slsChat)
	f.Add("functions: {a: {events: [{websocket: 1}]}}")
	f.Fuzz(func(t *testing.T, doc string) {
		path := filepath.Join(t.TempDir(), "serverless.yml")
		if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := config.LoadServerless(path, func(string) string { return "" }, config.Overrides{})
		if err == nil && cfg.Validate() != nil {
			t.Errorf("LoadServerless accepted a config that does not validate")
		}
	})
}
