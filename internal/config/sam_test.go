package config_test

import (
	"errors"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-gateway/switchboard/internal/config"
)

// loadTemplate writes content as template.yaml in a folder named
// chat-stack and loads it.
func loadTemplate(t *testing.T, content string, env map[string]string, flags config.Overrides) (*config.Config, error) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "chat-stack")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "template.yaml")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return config.LoadTemplate(path, func(k string) string { return env[k] }, flags)
}

// tmplWith is a minimal WebSocket template whose function F has the
// variable V set to expr, with extra top-level sections before Resources.
func tmplWith(sections, expr string) string {
	return `AWSTemplateFormatVersion: '2010-09-09'
` + sections + `
Resources:
  Api:
    Type: AWS::ApiGatewayV2::Api
    Properties: {ProtocolType: WEBSOCKET, RouteSelectionExpression: $request.body.action}
  Route:
    Type: AWS::ApiGatewayV2::Route
    Properties: {ApiId: !Ref Api, RouteKey: $default, Target: !Join [/, [integrations, !Ref Integ]]}
  Integ:
    Type: AWS::ApiGatewayV2::Integration
    Properties:
      ApiId: !Ref Api
      IntegrationType: AWS_PROXY
      IntegrationUri: !Sub arn:aws:apigateway:${AWS::Region}:lambda:path/2015-03-31/functions/${F.Arn}/invocations
  F:
    Type: AWS::Lambda::Function
    Properties:
      Code: src/
      Handler: app.handler
      Runtime: nodejs20.x
      Environment:
        Variables:
          V: ` + expr + `
  Named:
    Type: AWS::Serverless::Function
    Properties: {FunctionName: my-named-fn, CodeUri: ., Handler: a.b, Runtime: nodejs20.x}
  Table:
    Type: AWS::DynamoDB::Table
`
}

const tmplSections = `Parameters:
  Env: {Type: String, Default: dev, AllowedValues: [dev, prod]}
  Names: {Type: CommaDelimitedList, Default: "alpha, beta,gamma"}
  Count: {Type: Number, Default: 3}
Conditions:
  IsProd: !Equals [!Ref Env, prod]
  IsDev: !Not [!Condition IsProd]
  Both: !And [!Condition IsDev, !Equals [!Ref Count, 3]]
  Either: !Or [!Condition IsProd, !Equals [a, b]]
  LongForm: {"Fn::Equals": [{"Ref": "Env"}, "dev"]}
Mappings:
  Sizes:
    dev: {memory: "128"}
    prod: {memory: "1024"}`

func TestTemplateIntrinsics(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, expr string
		env        map[string]string
		params     map[string]string
		want       string
	}{
		{"Ref parameter default", "!Ref Env", nil, nil, "dev"},
		{"Ref parameter override", "!Ref Env", nil, map[string]string{"Env": "prod"}, "prod"},
		{"Ref number parameter", "!Ref Count", nil, nil, "3"},
		{"Ref resource is its logical ID", "!Ref Table", nil, nil, "Table"},
		{"Ref function with FunctionName", "!Ref Named", nil, nil, "my-named-fn"},
		{"long-form Ref", `{"Ref": "Env"}`, nil, nil, "dev"},
		{"AWS::Region default", "!Ref AWS::Region", nil, nil, "us-east-1"},
		{"AWS::Region from the environment", "!Ref AWS::Region", map[string]string{"AWS_REGION": "eu-west-1"}, nil, "eu-west-1"},
		{"AWS::AccountId", "!Ref AWS::AccountId", nil, nil, "123456789012"},
		{"AWS::StackName is the folder", "!Ref AWS::StackName", nil, nil, "chat-stack"},
		{"AWS::Partition", "!Ref AWS::Partition", nil, nil, "aws"},
		{"GetAtt short", "!GetAtt F.Arn", nil, nil, "arn:aws:lambda:us-east-1:123456789012:function:F"},
		{"GetAtt long", `{"Fn::GetAtt": [Named, Arn]}`, nil, nil, "arn:aws:lambda:us-east-1:123456789012:function:my-named-fn"},
		{"GetAtt long with a dot", `{"Fn::GetAtt": "F.Arn"}`, nil, nil, "arn:aws:lambda:us-east-1:123456789012:function:F"},
		{"GetAtt short list", "!GetAtt [Api, ApiEndpoint]", nil, nil, "wss://Api.execute-api.us-east-1.amazonaws.com"},
		{"GetAtt other Arn", "!GetAtt Table.Arn", nil, nil, "arn:aws:dynamodb:us-east-1:123456789012:Table"},
		{"Sub", "!Sub '${AWS::Region}/${Env}/${Api}'", nil, nil, "us-east-1/dev/Api"},
		{"Sub GetAtt", "!Sub '${F.Arn}'", nil, nil, "arn:aws:lambda:us-east-1:123456789012:function:F"},
		{"Sub literal", "!Sub '${!Literal}-${Env}'", nil, nil, "${Literal}-dev"},
		{"Sub with variables", "!Sub ['${A}-${Env}', {A: !Ref Count}]", nil, nil, "3-dev"},
		{"Sub long form", `{"Fn::Sub": "x-${Env}"}`, nil, nil, "x-dev"},
		{"Join", "!Join ['-', [a, !Ref Env, 7]]", nil, nil, "a-dev-7"},
		{"Join long form", `{"Fn::Join": ["", ["a", "b"]]}`, nil, nil, "ab"},
		{"Join a list parameter", "!Join ['+', !Ref Names]", nil, nil, "alpha+beta+gamma"},
		{"Select", "!Select [1, [a, b, c]]", nil, nil, "b"},
		{"Select from a list parameter", "!Select ['2', !Ref Names]", nil, nil, "gamma"},
		{"Split then Select", "!Select [1, !Split [',', 'x,y,z']]", nil, nil, "y"},
		{"Split then Join", `{"Fn::Join": ["+", {"Fn::Split": ["/", "a/b"]}]}`, nil, nil, "a+b"},
		{"If true", "!If [IsDev, yes, no]", nil, nil, "yes"},
		{"If false", "!If [IsProd, yes, no]", nil, nil, "no"},
		{"If after override", "!If [IsProd, yes, no]", nil, map[string]string{"Env": "prod"}, "yes"},
		{"And", "!If [Both, yes, no]", nil, nil, "yes"},
		{"Or", "!If [Either, yes, no]", nil, nil, "no"},
		{"long-form condition", "!If [LongForm, yes, no]", nil, nil, "yes"},
		{"FindInMap", "!FindInMap [Sizes, !Ref Env, memory]", nil, nil, "128"},
		{"Base64", "!Base64 hi", nil, nil, "aGk="},
		{"number", "42", nil, nil, "42"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg, err := loadTemplate(t, tmplWith(tmplSections, tt.expr), tt.env, config.Overrides{Parameters: tt.params})
			if err != nil {
				t.Fatalf("LoadTemplate(V: %s): %v", tt.expr, err)
			}
			if got := cfg.Functions["F"].Environment["V"]; got != tt.want {
				t.Errorf("V: %s = %q, want %q", tt.expr, got, tt.want)
			}
		})
	}
}

func TestTemplateNoValueRemovesTheVariable(t *testing.T) {
	t.Parallel()
	cfg, err := loadTemplate(t, tmplWith(tmplSections, "!If [IsProd, x, !Ref AWS::NoValue]"), nil, config.Overrides{})
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := cfg.Functions["F"].Environment["V"]; ok {
		t.Errorf("V = %q, want it removed by AWS::NoValue", v)
	}
}

const samChat = `AWSTemplateFormatVersion: '2010-09-09'
Transform: AWS::Serverless-2016-10-31
Parameters:
  StageName: {Type: String, Default: production}
  Token: {Type: String}
Conditions:
  WithAudit: !Equals [!Ref StageName, production]
Globals:
  Function:
    Runtime: nodejs20.x
    Timeout: 5
    Handler: app.handler
    MemorySize: 256
    Environment:
      Variables: {SHARED: from-globals, OVERRIDDEN: from-globals}
  Api:
    Cors: '*'
Resources:
  Ws:
    Type: AWS::ApiGatewayV2::Api
    Properties:
      Name: Chat
      ProtocolType: WEBSOCKET
      RouteSelectionExpression: $request.body.message
  Http:
    Type: AWS::ApiGatewayV2::Api
    Properties: {Name: Other, ProtocolType: HTTP}
  Auth:
    Type: AWS::ApiGatewayV2::Authorizer
    Properties:
      ApiId: !Ref Ws
      Name: Auth
      AuthorizerType: REQUEST
      AuthorizerUri: !Sub arn:aws:apigateway:${AWS::Region}:lambda:path/2015-03-31/functions/${AuthFn.Arn}/invocations
      IdentitySource: [route.request.header.Auth, route.request.querystring.token]
  ConnectRoute:
    Type: AWS::ApiGatewayV2::Route
    Properties:
      ApiId: !Ref Ws
      RouteKey: $connect
      AuthorizationType: CUSTOM
      AuthorizerId: !Ref Auth
      Target: !Join ['/', ['integrations', !Ref ConnectInteg]]
  ConnectInteg:
    Type: AWS::ApiGatewayV2::Integration
    Properties:
      ApiId: !Ref Ws
      IntegrationType: AWS_PROXY
      IntegrationUri: !Sub arn:aws:apigateway:${AWS::Region}:lambda:path/2015-03-31/functions/${ConnectFn.Arn}/invocations
      TimeoutInMillis: 5000
  EchoRoute:
    Type: AWS::ApiGatewayV2::Route
    Properties:
      ApiId: !Ref Ws
      RouteKey: echo
      Target: !Sub integrations/${EchoInteg}
  EchoInteg:
    Type: AWS::ApiGatewayV2::Integration
    Properties:
      ApiId: !Ref Ws
      IntegrationType: AWS_PROXY
      IntegrationUri: !GetAtt EchoFn.Arn
  EchoResponse:
    Type: AWS::ApiGatewayV2::RouteResponse
    Properties: {ApiId: !Ref Ws, RouteId: !Ref EchoRoute, RouteResponseKey: $default}
  AuditRoute:
    Type: AWS::ApiGatewayV2::Route
    Condition: WithAudit
    Properties:
      ApiId: !Ref Ws
      RouteKey: audit
      AuthorizationType: AWS_IAM
      Target: integrations/AuditInteg
  AuditInteg:
    Type: AWS::ApiGatewayV2::Integration
    Properties: {ApiId: !Ref Ws, IntegrationType: HTTP_PROXY, IntegrationUri: 'http://127.0.0.1:9/audit', IntegrationMethod: POST}
  HttpRoute:
    Type: AWS::ApiGatewayV2::Route
    Properties: {ApiId: !Ref Http, RouteKey: GET /x}
  Stage:
    Type: AWS::ApiGatewayV2::Stage
    Properties: {ApiId: !Ref Ws, StageName: !Ref StageName, StageVariables: {a: b}}
  AuthFn:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: auth/
      Environment:
        Variables: {TOKEN: !Ref Token, OVERRIDDEN: local}
  ConnectFn:
    Type: AWS::Serverless::Function
    Properties: {CodeUri: connect/, ReservedConcurrentExecutions: 2, Timeout: 20, Events: {Api: {Type: Api}}}
  EchoFn:
    Type: AWS::Lambda::Function
    Properties: {Code: bin/, Handler: ignored, Runtime: provided.al2023}
  PyFn:
    Type: AWS::Serverless::Function
    Properties: {CodeUri: py/, Runtime: python3.12}
  Deployment:
    Type: AWS::ApiGatewayV2::Deployment
    Properties: {ApiId: !Ref Ws}
  Perm:
    Type: AWS::Lambda::Permission
  Role:
    Type: AWS::IAM::Role
  Queue:
    Type: AWS::SQS::Queue
Outputs:
  Url: {Value: !GetAtt Ws.ApiEndpoint}
`

func TestTemplateResources(t *testing.T) {
	t.Parallel()
	cfg, err := loadTemplate(t, samChat, nil, config.Overrides{Parameters: map[string]string{"Token": "s3cret"}})
	if err != nil {
		t.Fatal(err)
	}
	yes, no := true, false
	wantRoutes := map[string]config.Route{
		"$connect": {Integration: config.Integration{Type: "lambda", Function: "ConnectFn"}, Authorizer: "Auth", RouteResponse: &no},
		"echo":     {Integration: config.Integration{Type: "lambda", Function: "EchoFn"}, RouteResponse: &yes},
		"audit":    {Integration: config.Integration{Type: "http", URL: "http://127.0.0.1:9/audit"}, RouteResponse: &no},
	}
	if len(cfg.Routes) != len(wantRoutes) {
		t.Errorf("routes %v, want %v", slices.Sorted(maps.Keys(cfg.Routes)), slices.Sorted(maps.Keys(wantRoutes)))
	}
	for key, want := range wantRoutes {
		got, ok := cfg.Routes[key]
		if !ok || got.Integration.Type != want.Integration.Type || got.Integration.Function != want.Integration.Function ||
			got.Integration.URL != want.Integration.URL || got.Authorizer != want.Authorizer || got.TwoWay() != want.TwoWay() {
			t.Errorf("route %s = %+v (two-way %v), want %+v (two-way %v)", key, got, got.TwoWay(), want, want.TwoWay())
		}
	}
	checks := []struct {
		name string
		ok   bool
	}{
		{"selection expression", cfg.RouteSelectionExpression == "$request.body.message"},
		{"stage", cfg.Stage == "production"},
		{"source", strings.HasSuffix(cfg.Source, "template.yaml (SAM template)")},
		{"authorizer", cfg.Authorizers["Auth"].Type == "lambda" && cfg.Authorizers["Auth"].Function == "AuthFn" &&
			slices.Equal(cfg.Authorizers["Auth"].IdentitySources, []string{"route.request.header.Auth", "route.request.querystring.token"})},
		{"globals merged", cfg.Functions["AuthFn"].Environment["SHARED"] == "from-globals" && cfg.Functions["ConnectFn"].Environment["SHARED"] == "from-globals"},
		{"the function's own variable wins", cfg.Functions["AuthFn"].Environment["OVERRIDDEN"] == "local"},
		{"parameter override", cfg.Functions["AuthFn"].Environment["TOKEN"] == "s3cret"},
		{"global handler and runtime", cfg.Functions["AuthFn"].Handler == "app.handler" && cfg.Functions["AuthFn"].Runtime == "nodejs20.x" && cfg.Functions["AuthFn"].CodeDir == "auth/"},
		{"global timeout", cfg.Functions["AuthFn"].Timeout == config.Duration(5*time.Second)},
		{"own timeout", cfg.Functions["ConnectFn"].Timeout == config.Duration(20*time.Second)},
		{"reserved concurrency caps processes", cfg.Functions["ConnectFn"].MaxProcesses == 2},
		{"provided runtime runs bootstrap", slices.Equal(cfg.Functions["EchoFn"].Command, []string{"./bootstrap"}) && cfg.Functions["EchoFn"].CodeDir == "bin/"},
		{"no globals for AWS::Lambda::Function", cfg.Functions["EchoFn"].Environment == nil},
		{"python is not run", !hasKey(cfg.Functions, "PyFn")},
		{"region for functions", cfg.Environment["AWS_REGION"] == "us-east-1"},
	}
	for _, c := range checks {
		if !c.ok {
			t.Errorf("%s wrong: %+v", c.name, cfg)
		}
	}
	for _, want := range []string{
		"Globals.Api is not applied",
		"Outputs are not evaluated",
		"Resources.Http: ProtocolType HTTP APIs are not served (only WEBSOCKET)",
		"Resources.HttpRoute belongs to API Http, not the WebSocket API Ws, and is ignored",
		"Resources.AuditRoute: AuthorizationType AWS_IAM is not enforced locally: route audit is open",
		"Resources.AuditInteg: HTTP_PROXY runs as the http integration",
		`Resources.PyFn is not run: runtime "python3.12" is not supported (nodejs*, provided*, go1.x)`,
		"Resources.ConnectFn.Properties.Events.Api: events of Type Api are not run (SQS is)",
		"property MemorySize is not applied locally: AuthFn, ConnectFn, PyFn",
		"property StageVariables is not applied locally: Stage",
		"property TimeoutInMillis is not applied locally: ConnectInteg",
		"resources with no local effect: Deployment (AWS::ApiGatewayV2::Deployment), Perm (AWS::Lambda::Permission), Role (AWS::IAM::Role)",
	} {
		if n := countPrefixed(cfg.Warnings, want); n != 1 {
			t.Errorf("warning %q listed %d times, want once; warnings:\n%s", want, n, strings.Join(cfg.Warnings, "\n"))
		}
	}
}

func TestTemplateConditionDropsAResource(t *testing.T) {
	t.Parallel()
	cfg, err := loadTemplate(t, samChat, nil, config.Overrides{Parameters: map[string]string{"Token": "x", "StageName": "beta"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := cfg.Routes["audit"]; ok {
		t.Error("route audit is served, but its Condition WithAudit is false")
	}
	if cfg.Stage != "beta" {
		t.Errorf("stage %q, want beta", cfg.Stage)
	}
}

func TestTemplateFlagsWin(t *testing.T) {
	t.Parallel()
	cfg, err := loadTemplate(t, samChat, map[string]string{"SWITCHBOARD_LISTEN": "127.0.0.1:0"}, config.Overrides{Stage: "fromflag", Parameters: map[string]string{"Token": "x"}})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Stage != "fromflag" || cfg.Listen != "127.0.0.1:0" {
		t.Errorf("stage %q listen %q, want the flag's stage and the environment's address", cfg.Stage, cfg.Listen)
	}
}

func TestTemplateJSON(t *testing.T) {
	t.Parallel()
	cfg, err := loadTemplate(t, `{
  "Resources": {
    "Api": {"Type": "AWS::ApiGatewayV2::Api", "Properties": {"ProtocolType": "WEBSOCKET"}},
    "R": {"Type": "AWS::ApiGatewayV2::Route", "Properties": {"ApiId": {"Ref": "Api"}, "RouteKey": "$default",
      "Target": {"Fn::Join": ["/", ["integrations", {"Ref": "I"}]]}}},
    "I": {"Type": "AWS::ApiGatewayV2::Integration", "Properties": {"ApiId": {"Ref": "Api"}, "IntegrationType": "AWS_PROXY",
      "IntegrationUri": {"Fn::Sub": ["arn:aws:apigateway:${AWS::Region}:lambda:path/2015-03-31/functions/${Arn}/invocations", {"Arn": {"Fn::GetAtt": ["Fn", "Arn"]}}]}}},
    "Fn": {"Type": "AWS::Lambda::Function", "Properties": {"Code": "bin", "Handler": "chat", "Runtime": "go1.x"}}
  }
}`, nil, config.Overrides{})
	if err != nil {
		t.Fatal(err)
	}
	if r := cfg.Routes["$default"]; r.Integration.Function != "Fn" || !slices.Equal(cfg.Functions["Fn"].Command, []string{"./chat"}) {
		t.Errorf("$default = %+v, function %+v", r, cfg.Functions["Fn"])
	}
	if !strings.HasSuffix(cfg.Source, "(CloudFormation template)") {
		t.Errorf("source %q, want a CloudFormation template", cfg.Source)
	}
}

func TestTemplateErrors(t *testing.T) {
	t.Parallel()
	base := tmplWith(tmplSections, "x")
	tests := []struct {
		name, template string
		params         map[string]string
		want           string
	}{
		{"empty", "", nil, "the template is empty"},
		{"not a map", "- a\n- b\n", nil, "a template is a map"},
		{"no resources", "AWSTemplateFormatVersion: '2010-09-09'\n", nil, "no Resources"},
		{"YAML syntax", "Resources: {a: [}\n", nil, "yaml"},
		{"no WebSocket API", "Resources:\n  T: {Type: AWS::SQS::Queue}\n", nil, "no AWS::ApiGatewayV2::Api with ProtocolType WEBSOCKET"},
		{"two WebSocket APIs", base + "  Api2:\n    Type: AWS::ApiGatewayV2::Api\n    Properties: {ProtocolType: WEBSOCKET}\n", nil, "two WebSocket APIs, Api and Api2"},
		{"resource without Type", base + "  Bad: {Properties: {}}\n", nil, "Resources.Bad: Type is required"},
		{"Ref to nothing", tmplWith("", "!Ref Nope"), nil, `Ref "Nope": no such parameter or resource`},
		{"unknown tag", tmplWith("", "!Frobnicate x"), nil, "unknown tag !Frobnicate"},
		{"unknown function", tmplWith("", `{"Fn::Frobnicate": x}`), nil, "Fn::Frobnicate: unknown intrinsic function"},
		{"GetAtt without a dot", tmplWith("", "!GetAtt F"), nil, "want Resource.Attribute"},
		{"GetAtt long without a dot", tmplWith("", `{"Fn::GetAtt": "F"}`), nil, "want Resource.Attribute"},
		{"GetAtt of nothing", tmplWith("", "!GetAtt Nope.Arn"), nil, "Fn::GetAtt Nope.Arn: no such resource"},
		{"Sub unclosed", tmplWith("", "!Sub 'a${AWS::Region'"), nil, "unclosed ${"},
		{"Sub of a list", tmplWith(tmplSections, "!Sub '${Names}'"), nil, "want a string, have a list"},
		{"Join of a map", tmplWith("", "!Join [',', {a: b}]"), nil, "Fn::Join: want a list"},
		{"Select out of range", tmplWith("", "!Select [3, [a]]"), nil, "index 3 is out of range"},
		{"Select bad index", tmplWith("", "!Select [x, [a]]"), nil, "want a whole number"},
		{"Split empty delimiter", tmplWith("", "!Split ['', abc]"), nil, "non-empty string"},
		{"If unknown condition", tmplWith("", "!If [Nope, a, b]"), nil, `condition "Nope" is not defined`},
		{"If wrong arity", tmplWith(tmplSections, "!If [IsProd, a]"), nil, "want [condition"},
		{"condition cycle", tmplWith("Conditions:\n  A: !Not [!Condition B]\n  B: !Not [!Condition A]", "x"), nil, "refers to itself"},
		{"bad condition", tmplWith("Conditions:\n  A: yes", "x"), nil, "want Fn::Equals"},
		{"FindInMap missing", tmplWith(tmplSections, "!FindInMap [Sizes, qa, memory]"), nil, "no such entry in Mappings"},
		{"parameter without default", tmplWith("Parameters:\n  Token: {Type: String}", "x"), nil, "parameter Token has no Default: give it with --parameter-overrides Token=VALUE"},
		{"override of no parameter", base, map[string]string{"Nope": "1"}, "the template has no parameter Nope"},
		{"not an allowed value", base, map[string]string{"Env": "qa"}, `"qa" is not one of its AllowedValues`},
		{"duplicate key", base + "  F: {Type: AWS::SQS::Queue}\n", nil, `key "F" appears twice`},
		{"merge key", "x: &a {b: 1}\nResources:\n  <<: *a\n", nil, "merge keys"},
		{"route to an unsupported function", strings.Replace(base, "Runtime: nodejs20.x\n      Environment", "Runtime: java21\n      Environment", 1), nil, `function F is not run: runtime "java21" is not supported`},
		{"route to a missing integration", strings.Replace(base, "!Ref Integ]", "Nope]", 1), nil, `Target "integrations/Nope": no integration Nope`},
		{"bad target", strings.Replace(base, "!Join [/, [integrations, !Ref Integ]]", "Integ", 1), nil, "want integrations/<integration>"},
		{"bad timeout", strings.Replace(base, "Code: src/", "Code: src/\n      Timeout: soon", 1), nil, "Properties.Timeout: want seconds"},
		{"bad environment", strings.Replace(base, "CodeUri: ., Handler", "CodeUri: ., Environment: [a], Handler", 1), nil, "want {Variables"},
		{"two routes, one key", base + "  Route2:\n    Type: AWS::ApiGatewayV2::Route\n    Properties: {ApiId: !Ref Api, RouteKey: $default, Target: integrations/Integ}\n", nil, `route "$default" is declared twice`},
		{"integration names no function", strings.Replace(base, "${F.Arn}", "arn:aws:lambda:us-east-1:1:function:Ghost", 1), nil, `names no function`},
		{"authorizer not REQUEST", base + "  A:\n    Type: AWS::ApiGatewayV2::Authorizer\n    Properties: {ApiId: !Ref Api, AuthorizerType: JWT}\n", nil, "take REQUEST authorizers"},
		{"bad identity source", base + "  A:\n    Type: AWS::ApiGatewayV2::Authorizer\n    Properties: {ApiId: !Ref Api, AuthorizerType: REQUEST, AuthorizerUri: !GetAtt F.Arn, IdentitySource: [method.request.header.X]}\n", nil, "want route.request.header.NAME"},
		{"unknown authorizer", strings.Replace(base, "RouteKey: $default,", "RouteKey: $connect, AuthorizationType: CUSTOM, AuthorizerId: Nope,", 1), nil, `AuthorizerId "Nope" names no REQUEST authorizer`},
		{"bad authorization type", strings.Replace(base, "RouteKey: $default,", "RouteKey: $default, AuthorizationType: JWT,", 1), nil, `AuthorizationType "JWT"`},
		{"bad stage name", base + "  S:\n    Type: AWS::ApiGatewayV2::Stage\n    Properties: {ApiId: !Ref Api, StageName: a/b}\n", nil, `stage: expected letters, digits, - and _, got "a/b"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := loadTemplate(t, tt.template, nil, config.Overrides{Parameters: tt.params})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("LoadTemplate = %v, want an error mentioning %q", err, tt.want)
			}
			if !errors.Is(err, config.ErrInvalid) {
				t.Errorf("error %v does not wrap ErrInvalid", err)
			}
		})
	}
}

func TestTemplateWithoutRoutesSaysSo(t *testing.T) {
	t.Parallel()
	cfg, err := loadTemplate(t, "Resources:\n  Api: {Type: AWS::ApiGatewayV2::Api, Properties: {ProtocolType: WEBSOCKET}}\n", nil, config.Overrides{})
	if err != nil {
		t.Fatal(err)
	}
	want := "the WebSocket API Api has no route that can be served: every message is refused"
	if len(cfg.Routes) != 0 || !slices.Contains(cfg.Warnings, want) {
		t.Errorf("routes %v, warnings %q; want no route and %q", cfg.Routes, cfg.Warnings, want)
	}
}

func TestTemplateMissingFile(t *testing.T) {
	t.Parallel()
	_, err := config.LoadTemplate(filepath.Join(t.TempDir(), "template.yaml"), func(string) string { return "" }, config.Overrides{})
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("LoadTemplate(missing) = %v, want ErrNotExist", err)
	}
}

// An alias bomb is refused by the bound on the tree, not expanded.
func TestTemplateAliasBomb(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	b.WriteString("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n")
	for i := 1; i < 9; i++ {
		b.WriteString("a" + string(rune('0'+i)) + ": &a" + string(rune('0'+i)) + " [")
		for j := range 10 {
			if j > 0 {
				b.WriteString(", ")
			}
			b.WriteString("*a" + string(rune('0'+i-1)))
		}
		b.WriteString("]\n")
	}
	b.WriteString("Resources: {}\n")
	_, err := loadTemplate(t, b.String(), nil, config.Overrides{})
	if err == nil || !errors.Is(err, config.ErrInvalid) {
		t.Fatalf("LoadTemplate(alias bomb) = %v, want ErrInvalid", err)
	}
}

func TestTemplateWarningsForUnresolvable(t *testing.T) {
	t.Parallel()
	cfg, err := loadTemplate(t, tmplWith("", "!ImportValue shared-table"), nil, config.Overrides{})
	if err != nil {
		t.Fatal(err)
	}
	want := "Resources.F.Properties.Environment.Variables.V: Fn::ImportValue cannot be resolved locally; an empty string is used"
	if !slices.Contains(cfg.Warnings, want) {
		t.Errorf("warnings %q lack %q", cfg.Warnings, want)
	}
	if v := cfg.Functions["F"].Environment["V"]; v != "" {
		t.Errorf("V = %q, want empty", v)
	}
}

func TestParseParameterOverrides(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string
		want map[string]string
		err  bool
	}{
		{"pairs in one argument", []string{"A=1 B=two"}, map[string]string{"A": "1", "B": "two"}, false},
		{"pairs in several arguments", []string{"A=1", "B=x=y"}, map[string]string{"A": "1", "B": "x=y"}, false},
		{"CloudFormation form", []string{"ParameterKey=A,ParameterValue=1 ParameterKey=B,ParameterValue="}, map[string]string{"A": "1", "B": ""}, false},
		{"empty", nil, map[string]string{}, false},
		{"no equals", []string{"A"}, nil, true},
		{"no key", []string{"=1"}, nil, true},
		{"half CloudFormation form", []string{"ParameterKey=A"}, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := config.ParseParameterOverrides(tt.args...)
			if (err != nil) != tt.err {
				t.Fatalf("ParseParameterOverrides(%q) error %v, want error %v", tt.args, err, tt.err)
			}
			if err == nil && !maps.Equal(got, tt.want) {
				t.Errorf("ParseParameterOverrides(%q) = %v, want %v", tt.args, got, tt.want)
			}
		})
	}
}

// FuzzLoadTemplate: whatever the bytes, the loader answers with a config
// or an error, never a panic.
func FuzzLoadTemplate(f *testing.F) {
	f.Add([]byte(samChat))
	f.Add([]byte(tmplWith(tmplSections, "!Sub '${!x}${Env}'")))
	f.Add([]byte(`{"Resources": {"A": {"Type": "AWS::ApiGatewayV2::Api", "Properties": {"ProtocolType": {"Fn::If": ["C", 1, 2]}}}}}`))
	f.Add([]byte("Conditions: {A: !And [!Condition A, !Condition A]}\nResources: {X: {Type: AWS::ApiGatewayV2::Api, Condition: A}}"))
	f.Add([]byte("Resources: !Ref x\n"))
	dir := f.TempDir()
	path := filepath.Join(dir, "template.yaml")
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := config.LoadTemplate(path, func(string) string { return "" }, config.Overrides{Parameters: map[string]string{}})
		if err == nil && cfg == nil {
			t.Fatal("no config and no error")
		}
	})
}

func hasKey[V any](m map[string]V, k string) bool {
	_, ok := m[k]
	return ok
}

func countPrefixed(list []string, prefix string) int {
	n := 0
	for _, s := range list {
		if strings.HasPrefix(s, prefix) {
			n++
		}
	}
	return n
}
