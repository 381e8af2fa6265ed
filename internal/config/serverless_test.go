package config_test

import (
	"cmp"
	"errors"
	"os"
	"path/filepath"
	"reflect"
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
      - sqs: arn:aws:sqs:eu-west-1:123456789012:jobs
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
	if want := []config.HTTPRoute{{Method: "GET", Path: "/x", Version: 1, Function: "send", StagePrefix: true}}; !reflect.DeepEqual(cfg.HTTPRoutes, want) {
		t.Errorf("http routes = %+v, want %+v", cfg.HTTPRoutes, want)
	}
	if f, ok := cfg.Functions["orphan"]; !ok || f.Runtime != "nodejs20.x" {
		t.Errorf("function orphan = %+v, %v: a function with no event is still one of the project's", f, ok)
	}
	warnings := strings.Join(cfg.Warnings, "\n")
	for _, want := range []string{"provider.memorySize", "functions.send.layers", "events[2].sqs is not run: queue jobs is not one of the project's queues", "websocket.authorizer: only $connect takes an authorizer"} {
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
	f.Add(slsVariables)
	f.Add("custom:\n  a: ${self:custom.${self:custom.a}}\n  b: ${x:${y, ${z}}, 'q'}\n")
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

func writeSlsProject(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return filepath.Join(dir, "serverless.yml")
}

const slsVariables = `
service: vars
provider:
  name: aws
  stage: ${opt:stage, 'dev'}
  region: ${opt:region, 'eu-west-3'}
  websocketsApiRouteSelectionExpression: ${self:custom.selection}
  environment:
    STAGE: ${sls:stage}
    SELF_STAGE: ${self:provider.stage}
    URL: ${self:custom.${opt:stage, 'dev'}.url}
    INTERPOLATED: https://${self:custom.host}:${self:custom.port}/${sls:stage}
    FROM_ENV: ${env:SLS_TEST_VAR, 'fallback'}
    NESTED_DEFAULT: ${env:SLS_MISSING, ${self:custom.host}}
    ENV_DEFAULT_NUMBER: ${env:SLS_MISSING, 42}
    FILE_KEY: ${file(./extra.yml):table.name}
    JSON_KEY: ${file(./extra.json):queue}
    FALLBACK_CHAIN: ${self:custom.absent, env:SLS_MISSING, "last"}
custom:
  selection: $request.body.type
  host: example.test
  port: ${self:custom.portNumber}
  portNumber: 8443
  dev: {url: dev.example.test}
  prod: {url: prod.example.test}
  concurrency: 2
  timeout: ${file(./extra.json):timeout}
  settings: ${file(./extra.yml)}
functions:
  f:
    handler: h.f
    timeout: ${self:custom.timeout}
    reservedConcurrency: ${self:custom.concurrency}
    environment: ${self:custom.settings.fnEnv}
    events:
      - websocket: $default
`

func TestServerlessVariables(t *testing.T) {
	t.Parallel()
	path := writeSlsProject(t, map[string]string{
		"serverless.yml": slsVariables,
		"extra.yml":      "table:\n  name: orders-${sls:stage}\nfnEnv: {ONLY_F: yes-f, COUNT: 3}\n",
		"extra.json":     `{"queue": "jobs", "timeout": 7}`,
	})
	env := func(k string) string { return map[string]string{"SLS_TEST_VAR": "from-env"}[k] }
	for _, tt := range []struct {
		stage, url string
	}{{"", "dev.example.test"}, {"prod", "prod.example.test"}} {
		cfg, err := config.LoadServerless(path, env, config.Overrides{Stage: tt.stage})
		if err != nil {
			t.Fatalf("stage %q: LoadServerless: %v", tt.stage, err)
		}
		stage := cmp.Or(tt.stage, "dev")
		want := map[string]string{
			"STAGE":              stage,
			"SELF_STAGE":         stage,
			"URL":                tt.url,
			"INTERPOLATED":       "https://example.test:8443/" + stage,
			"FROM_ENV":           "from-env",
			"NESTED_DEFAULT":     "example.test",
			"ENV_DEFAULT_NUMBER": "42",
			"FILE_KEY":           "orders-" + stage,
			"JSON_KEY":           "jobs",
			"FALLBACK_CHAIN":     "last",
			"AWS_REGION":         "eu-west-3",
		}
		for k, v := range want {
			if got := cfg.Environment[k]; got != v {
				t.Errorf("stage %q: environment %s = %q, want %q", tt.stage, k, got, v)
			}
		}
		if cfg.Stage != stage || cfg.RouteSelectionExpression != "$request.body.type" {
			t.Errorf("stage %q, selection %q", cfg.Stage, cfg.RouteSelectionExpression)
		}
		f := cfg.Functions["f"]
		if time.Duration(f.Timeout) != 7*time.Second || f.MaxProcesses != 2 || f.Environment["ONLY_F"] != "yes-f" || f.Environment["COUNT"] != "3" {
			t.Errorf("function f = %+v: want a 7s timeout from a JSON number, 2 processes, the object from extra.yml", f)
		}
		if f.Runtime != config.SlsDefaultRuntime {
			t.Errorf("function f runtime %q, want the default %q", f.Runtime, config.SlsDefaultRuntime)
		}
		if len(cfg.Warnings) != 0 {
			t.Errorf("warnings: %v", cfg.Warnings)
		}
	}
}

func TestServerlessVariableErrors(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, yaml, want string }{
		{"env without default", "provider:\n  environment:\n    A: ${env:SLS_NOT_SET_ANYWHERE}\n", "provider.environment.A (line 3)"},
		{"self path missing", "custom: {}\nprovider:\n  environment:\n    A: x-${self:custom.nothing}\n", "variable ${self:custom.nothing} cannot be resolved"},
		{"cycle", "custom:\n  a: ${self:custom.b}\n  b: ${self:custom.a}\n", "cycle"},
		{"self cycle through an object", "custom:\n  a: ${self:custom}\n", "cycle"},
		{"unclosed", "provider:\n  stage: ${opt:stage\n", "not closed"},
		{"object inside a string", "custom:\n  o: {k: v}\n  s: x-${self:custom.o}\n", "cannot be part of a string"},
		{"missing file without default", "custom:\n  a: ${file(./nope.yml):k}\n", "custom.a (line 2)"},
		{"bare word", "custom:\n  a: ${opt:stage, dev}\n", `"dev" in a variable`},
		{"reservedConcurrency 0", "functions:\n  f:\n    handler: h.f\n    reservedConcurrency: 0\n", "reservedConcurrency 0"},
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

// Deep documents are not mistaken for deeply nested variables.
func TestServerlessDeepDocument(t *testing.T) {
	t.Parallel()
	deep := "custom:\n"
	for i := range 100 {
		deep += strings.Repeat("  ", i+1) + "k:\n"
	}
	deep += strings.Repeat("  ", 101) + "v: ${sls:stage}\n"
	if _, err := config.LoadServerless(writeServerless(t, deep), func(string) string { return "" }, config.Overrides{}); err != nil {
		t.Errorf("a document 100 levels deep: %v", err)
	}
}

func TestServerlessDotenv(t *testing.T) {
	t.Parallel()
	const yml = "useDotenv: true\nprovider:\n  stage: ${opt:stage, 'dev'}\n  environment:\n    A: ${env:A}\n    B: ${env:B, 'none'}\n"
	path := writeSlsProject(t, map[string]string{
		"serverless.yml": yml,
		".env":           "# comment\nA=from-dotenv\nB=\"quoted ${A}\"\n",
		".env.prod":      "export A='prod-only'\n",
	})
	tests := []struct {
		name, stage string
		env         map[string]string
		a, b        string
	}{
		{"dev reads .env", "", nil, "from-dotenv", "quoted from-dotenv"},
		{"a stage file replaces .env", "prod", nil, "prod-only", "none"},
		{"the environment wins", "", map[string]string{"A": "real"}, "real", "quoted real"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg, err := config.LoadServerless(path, func(k string) string { return tt.env[k] }, config.Overrides{Stage: tt.stage})
			if err != nil {
				t.Fatal(err)
			}
			if len(cfg.Environment) != 2 {
				t.Errorf("environment %v: the .env file's variables must not reach the functions unless named", cfg.Environment)
			}
			if cfg.Environment["A"] != tt.a || cfg.Environment["B"] != tt.b {
				t.Errorf("A=%q B=%q, want %q %q", cfg.Environment["A"], cfg.Environment["B"], tt.a, tt.b)
			}
		})
	}
	// Without useDotenv the files are not read.
	off := writeSlsProject(t, map[string]string{"serverless.yml": strings.Replace(yml, "useDotenv: true", "useDotenv: false", 1), ".env": "A=x\n"})
	if _, err := config.LoadServerless(off, func(string) string { return "" }, config.Overrides{}); err == nil || !strings.Contains(err.Error(), "${env:A}") {
		t.Errorf("without useDotenv: err = %v, want ${env:A} unresolved", err)
	}
}

func TestServerlessOfflineAndAuthorizer(t *testing.T) {
	t.Parallel()
	const yml = `
service: chat
provider: {name: aws, runtime: nodejs20.x}
plugins: [serverless-offline, serverless-webpack]
resources: {Resources: {T: {Type: AWS::DynamoDB::Table}}}
custom:
  serverless-offline: {host: 0.0.0.0, websocketPort: 4001, noPrependStageInUrl: true, lambdaPort: 3002}
functions:
  auth:
    handler: h.auth
  connect:
    handler: h.connect
    events:
      - websocket:
          route: $connect
          authorizer:
            name: auth
            identitySource: [route.request.querystring.token]
`
	path := writeServerless(t, yml)
	cfg, err := config.LoadServerless(path, func(string) string { return "" }, config.Overrides{})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listen != "0.0.0.0:4001" {
		t.Errorf("listen %q, want custom.serverless-offline's host and websocketPort", cfg.Listen)
	}
	a := cfg.Authorizers[cfg.Routes["$connect"].Authorizer]
	if a.Type != "lambda" || a.Function != "auth" || !slices.Equal(a.IdentitySources, []string{"route.request.querystring.token"}) {
		t.Errorf("authorizer %+v", a)
	}
	warnings := strings.Join(cfg.Warnings, "\n")
	for _, want := range []string{"plugin serverless-webpack is not run", "resources.Resources.T (AWS::DynamoDB::Table) is not run locally", "custom.serverless-offline.lambdaPort"} {
		if !strings.Contains(warnings, want) {
			t.Errorf("warnings lack %q:\n%s", want, warnings)
		}
	}
	if strings.Contains(warnings, "plugin serverless-offline") {
		t.Errorf("serverless-offline is honoured, yet warned about:\n%s", warnings)
	}
	cfg, err = config.LoadServerless(path, func(string) string { return "" }, config.Overrides{Listen: "127.0.0.1:0"})
	if err != nil || cfg.Listen != "127.0.0.1:0" {
		t.Errorf("listen %q (%v): the flag must win", cfg.Listen, err)
	}
	// The string form, and an ARN of the project's function, take the default identity source.
	for _, auth := range []string{"auth", "{arn: 'arn:aws:lambda:us-east-1:123456789012:function:chat-dev-auth'}"} {
		y := strings.Replace(yml, "authorizer:\n            name: auth\n            identitySource: [route.request.querystring.token]", "authorizer: "+auth, 1)
		cfg, err := config.LoadServerless(writeServerless(t, y), func(string) string { return "" }, config.Overrides{})
		if err != nil {
			t.Fatalf("%s: %v", auth, err)
		}
		if a := cfg.Authorizers[cfg.Routes["$connect"].Authorizer]; a.Function != "auth" || !slices.Equal(a.IdentitySources, []string{"route.request.header.Auth"}) {
			t.Errorf("%s: authorizer %+v", auth, a)
		}
	}
	y := strings.Replace(yml, "name: auth", "arn: arn:aws:lambda:us-east-1:1:function:elsewhere", 1)
	if _, err := config.LoadServerless(writeServerless(t, y), func(string) string { return "" }, config.Overrides{}); !errors.Is(err, config.ErrInvalid) || !strings.Contains(err.Error(), "not a function of this project") {
		t.Errorf("foreign ARN: err = %v", err)
	}
}

func TestServerlessHTTPEvents(t *testing.T) {
	t.Parallel()
	const yml = `
provider:
  runtime: nodejs20.x
  httpApi:
    cors: {allowedOrigins: [https://app.example], allowCredentials: true, maxAge: 60}
    authorizers: {}
custom:
  serverless-offline:
    noPrependStageInUrl: ${env:NO_STAGE, false}
functions:
  api:
    handler: h.api
    events:
      - http: GET users/{id}
      - http:
          path: /files/{proxy+}
          method: any
          cors: true
          private: true
      - httpApi: 'POST /orders'
      - httpApi:
          method: get
          path: /orders/{id}
      - httpApi: '*'
`
	for _, noStage := range []string{"", "true"} {
		cfg, err := config.LoadServerless(writeServerless(t, yml), func(k string) string { return map[string]string{"NO_STAGE": noStage}[k] }, config.Overrides{})
		if err != nil {
			t.Fatal(err)
		}
		apiCORS := &config.CORS{Origins: []string{"https://app.example"}, Headers: config.SlsCORSHeaders, AllowCredentials: true, MaxAge: 60}
		prefix := noStage == ""
		want := []config.HTTPRoute{
			{Method: "GET", Path: "/users/{id}", Version: 1, Function: "api", StagePrefix: prefix},
			{Method: "ANY", Path: "/files/{proxy+}", Version: 1, Function: "api", StagePrefix: prefix, CORS: &config.CORS{Origins: []string{"*"}, Headers: config.SlsCORSHeaders}},
			{Method: "POST", Path: "/orders", Version: 2, Function: "api", CORS: apiCORS},
			{Method: "GET", Path: "/orders/{id}", Version: 2, Function: "api", CORS: apiCORS},
			{Method: "ANY", Path: "*", Version: 2, Function: "api", CORS: apiCORS},
		}
		if !reflect.DeepEqual(cfg.HTTPRoutes, want) {
			t.Errorf("noPrependStageInUrl %q: routes\n%+v\nwant\n%+v", noStage, cfg.HTTPRoutes, want)
		}
		warnings := strings.Join(cfg.Warnings, "\n")
		for _, w := range []string{"events[1].http.private", "provider.httpApi.authorizers"} {
			if !strings.Contains(warnings, w) {
				t.Errorf("warnings lack %q:\n%s", w, warnings)
			}
		}
	}
	_, err := config.LoadServerless(writeServerless(t, "functions:\n  f:\n    handler: h.f\n    events: [{http: 'nopath'}]\n"), func(string) string { return "" }, config.Overrides{})
	if !errors.Is(err, config.ErrInvalid) || !strings.Contains(err.Error(), "METHOD path") {
		t.Errorf("http: nopath: err = %v", err)
	}
}
