package main

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/switchboard-gateway/switchboard/internal/testutil"
)

// echoTemplate is a SAM template whose $default route answers with the
// Greeting parameter and the message.
func echoTemplate(greeting string) string {
	return `Transform: AWS::Serverless-2016-10-31
Parameters:
  Greeting: {Type: String, Default: ` + greeting + `}
  Other: {Type: String, Default: unset}
Resources:
  Ws:
    Type: AWS::ApiGatewayV2::Api
    Properties: {ProtocolType: WEBSOCKET, RouteSelectionExpression: $request.body.action}
  Default:
    Type: AWS::ApiGatewayV2::Route
    Properties: {ApiId: !Ref Ws, RouteKey: $default, Target: !Join [/, [integrations, !Ref Integ]]}
  DefaultResponse:
    Type: AWS::ApiGatewayV2::RouteResponse
    Properties: {ApiId: !Ref Ws, RouteId: !Ref Default, RouteResponseKey: $default}
  Integ:
    Type: AWS::ApiGatewayV2::Integration
    Properties:
      ApiId: !Ref Ws
      IntegrationType: AWS_PROXY
      IntegrationUri: !Sub arn:aws:apigateway:${AWS::Region}:lambda:path/2015-03-31/functions/${Echo.Arn}/invocations
  Echo:
    Type: AWS::Serverless::Function
    Properties:
      Handler: app.handler
      Runtime: nodejs20.x
      Environment: {Variables: {GREETING: !Sub '${Greeting}/${Other}'}}
`
}

const echoHandler = "exports.handler = async (event) => ({ statusCode: 200, body: process.env.GREETING + ': ' + event.body });\n"

func echoProject(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("node"); err != nil {
		t.Skip("node is not installed")
	}
	dir := t.TempDir()
	if err := writeFiles(dir, map[string]string{"template.yaml": echoTemplate("hello"), "app.js": echoHandler}); err != nil {
		t.Fatal(err)
	}
	return dir
}

// Run with no flags in a folder holding a template, serve runs it and says
// so; --parameter-overrides takes sam's Key=Value pairs.
func TestServeFindsTheProjectInTheFolder(t *testing.T) {
	dir := echoProject(t)
	t.Chdir(dir)
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"no flags", nil, nil, "hello/unset: hi"},
		{"parameter overrides as sam takes them", []string{"--parameter-overrides", "Greeting=bonjour", "Other=x", "--stage", "beta"}, nil, "bonjour/x: hi"},
		{"parameter overrides in one argument", []string{"--parameter-overrides", "Greeting=hej Other=y"}, nil, "hej/y: hi"},
		{"parameter overrides from the environment", nil, map[string]string{"SWITCHBOARD_PARAMETER_OVERRIDES": "ParameterKey=Greeting,ParameterValue=hola"}, "hola/unset: hi"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wsURL, stdout, _ := serveForTest(t, append([]string{"--listen", "127.0.0.1:0"}, tt.args...), tt.env)
			if !strings.Contains(stdout.String(), "config: template.yaml (SAM template)") {
				t.Errorf("banner does not name the template:\n%s", stdout)
			}
			c := testutil.Dial(t, wsURL, nil)
			if got := testutil.ReadTextAfter(t, c, "hi"); got != tt.want {
				t.Errorf("$default answered %q, want %q", got, tt.want)
			}
		})
	}
}

func TestServeProjectErrors(t *testing.T) {
	dir := t.TempDir()
	if err := writeFiles(dir, map[string]string{
		"serverless.yml": "service: x\n", "template.yaml": echoTemplate("hi"), "switchboard.yaml": "routes: {}\n",
	}); err != nil {
		t.Fatal(err)
	}
	sls, tmpl := filepath.Join(dir, "serverless.yml"), filepath.Join(dir, "template.yaml")
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"serverless.yml given to --config", []string{"--config", sls}, nil, "is a Serverless Framework project: run it with --project " + sls},
		{"template given to --config", []string{"--config", tmpl}, nil, "is a SAM/CloudFormation template: run it with --project " + tmpl},
		{"template given by SWITCHBOARD_CONFIG", nil, map[string]string{"SWITCHBOARD_CONFIG": tmpl}, "run it with --project"},
		{"both flags", []string{"--config", filepath.Join(dir, "switchboard.yaml"), "--project", tmpl}, nil, "either --config or --project"},
		{"a configuration given to --project", []string{"--project", filepath.Join(dir, "switchboard.yaml")}, nil, "run Switchboard's own configuration with --config"},
		{"a missing project", []string{"--project", filepath.Join(dir, "nope.yaml")}, nil, "no such file"},
		{"parameter overrides for a Serverless project", []string{"--serverless", sls, "--parameter-overrides", "A=1"}, nil, "applies to a SAM/CloudFormation template only"},
		{"a parameter the template lacks", []string{"--project", tmpl, "--parameter-overrides", "Nope=1"}, nil, "the template has no parameter Nope"},
		{"a bad parameter override", []string{"--project", tmpl, "--parameter-overrides", "Greeting"}, nil, "want Key=Value"},
		{"a stray argument after the overrides", []string{"--project", tmpl, "--parameter-overrides", "Greeting=x", "stray"}, nil, `unexpected argument "stray"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := run(context.Background(), append([]string{"serve", "--listen", "127.0.0.1:0"}, tt.args...), env(tt.env), &testutil.Buffer{}, &testutil.Buffer{})
			if err == nil || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "\n") {
				t.Errorf("serve %q = %v, want one line mentioning %q", tt.args, err, tt.want)
			}
		})
	}

	// Two projects in the folder serve runs in: both named, and --project.
	t.Chdir(dir)
	err := run(context.Background(), []string{"serve", "--listen", "127.0.0.1:0"}, env(nil), &testutil.Buffer{}, &testutil.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "serverless.yml and template.yaml") || !strings.Contains(err.Error(), "--project") {
		t.Errorf("serve in a folder with two projects = %v, want an error naming both and --project", err)
	}
}

// SIGHUP reloads a project from its file, with the same parameter overrides.
func TestSIGHUPReloadsTheProject(t *testing.T) {
	t.Parallel()
	dir := echoProject(t)
	p := startProcess(t, "--project", filepath.Join(dir, "template.yaml"), "--parameter-overrides", "Other=kept")
	c := testutil.Dial(t, p.ws, nil)
	if got := testutil.ReadTextAfter(t, c, "a"); got != "hello/kept: a" {
		t.Fatalf("before SIGHUP: got %q", got)
	}
	writeFile(t, filepath.Join(dir, "template.yaml"), echoTemplate("reloaded"))
	p.signal(t, syscall.SIGHUP)
	testutil.Eventually(t, 20*time.Second, func() bool { return testutil.ReadTextAfter(t, c, "b") == "reloaded/kept: b" },
		"the template's new default answers after SIGHUP; stderr:\n%s", p.stderr)
}
