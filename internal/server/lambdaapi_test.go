package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"
	"github.com/aws/smithy-go"

	"github.com/switchboard-gateway/switchboard/internal/config"
	"github.com/switchboard-gateway/switchboard/internal/server/servertest"
	"github.com/switchboard-gateway/switchboard/internal/testutil"
)

const invokeHandlers = `
const fs = require('fs');
exports.echo = async (event, context) => ({ got: event, fn: context.functionName });
exports.fail = async () => { throw new TypeError('bad input'); };
exports.mark = async (event) => { fs.writeFileSync(process.env.MARK, JSON.stringify(event)); return 'marked'; };
`

const invokeProject = `
service: svc
provider:
  name: aws
  runtime: nodejs20.x
  region: eu-west-1
functions:
  echo:
    handler: handler.echo
  fail:
    handler: handler.fail
  mark:
    name: custom-mark
    handler: handler.mark
    environment:
      MARK: ${env:MARK_FILE}
`

// startInvokeProject runs invokeProject; keys, when set, are the
// management credentials (SWITCHBOARD_MANAGEMENT_KEYS).
func startInvokeProject(t *testing.T, keys string) (*servertest.Running, string) {
	t.Helper()
	dir := t.TempDir()
	mark := filepath.Join(dir, "marked.json")
	for name, content := range map[string]string{"serverless.yml": invokeProject, "handler.js": invokeHandlers} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	env := map[string]string{"MARK_FILE": mark, "SWITCHBOARD_MANAGEMENT_KEYS": keys}
	cfg, err := config.LoadServerless(filepath.Join(dir, "serverless.yml"), func(k string) string { return env[k] }, config.Overrides{})
	if err != nil {
		t.Fatal(err)
	}
	return servertest.Start(t, cfg), mark
}

func lambdaClient(endpoint, id, secret string) *lambda.Client {
	return lambda.New(lambda.Options{
		Region:       "eu-west-1",
		BaseEndpoint: aws.String(endpoint),
		Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{AccessKeyID: id, SecretAccessKey: secret}, nil
		}),
		RetryMaxAttempts: 1,
	})
}

func TestLambdaInvokeAPI(t *testing.T) {
	t.Parallel()
	srv, mark := startInvokeProject(t, "")
	api := lambdaClient(srv.HTTP, "AKIDEXAMPLE", "secret")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	for _, name := range []string{"echo", "svc-dev-echo", "arn:aws:lambda:eu-west-1:123456789012:function:echo", "echo:$LATEST"} {
		out, err := api.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String(name), Payload: []byte(`{"x":1}`)})
		if err != nil {
			t.Fatalf("Invoke(%s): %v", name, err)
		}
		var got struct {
			Got map[string]int `json:"got"`
			Fn  string         `json:"fn"`
		}
		if err := json.Unmarshal(out.Payload, &got); err != nil || got.Got["x"] != 1 || got.Fn != "echo" {
			t.Errorf("Invoke(%s) payload %s (%v), want the event back from echo", name, out.Payload, err)
		}
		if out.StatusCode != 200 || out.FunctionError != nil || aws.ToString(out.ExecutedVersion) != "$LATEST" {
			t.Errorf("Invoke(%s): status %d, function error %v, version %q", name, out.StatusCode, out.FunctionError, aws.ToString(out.ExecutedVersion))
		}
	}

	out, err := api.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("fail")})
	if err != nil {
		t.Fatalf("Invoke(fail): %v", err)
	}
	var fe struct{ ErrorType, ErrorMessage string }
	_ = json.Unmarshal(out.Payload, &fe)
	if out.StatusCode != 200 || aws.ToString(out.FunctionError) != "Unhandled" || fe.ErrorType != "TypeError" || fe.ErrorMessage != "bad input" {
		t.Errorf("Invoke(fail): status %d, function error %q, payload %s; want 200, Unhandled, the TypeError", out.StatusCode, aws.ToString(out.FunctionError), out.Payload)
	}

	out, err = api.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("custom-mark"), InvocationType: types.InvocationTypeEvent, Payload: []byte(`{"async":true}`)})
	if err != nil || out.StatusCode != 202 || len(out.Payload) != 0 {
		t.Fatalf("Invoke(Event): %v, status %d, payload %q; want 202 and no payload", err, out.StatusCode, out.Payload)
	}
	testutil.Eventually(t, 20*time.Second, func() bool {
		b, err := os.ReadFile(mark)
		return err == nil && string(b) == `{"async":true}`
	}, "the Event invocation ran the function with its payload")

	out, err = api.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("echo"), InvocationType: types.InvocationTypeDryRun})
	if err != nil || out.StatusCode != 204 {
		t.Errorf("Invoke(DryRun): %v, status %d; want 204", err, out.StatusCode)
	}

	_, err = api.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("nope")})
	var nf *types.ResourceNotFoundException
	if !errors.As(err, &nf) || !strings.Contains(aws.ToString(nf.Message), "function:nope") {
		t.Errorf("Invoke(nope): err = %v, want *types.ResourceNotFoundException naming the function", err)
	}
	_, err = api.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("echo"), Qualifier: aws.String("7")})
	if !errors.As(err, &nf) {
		t.Errorf("Invoke(echo:7): err = %v, want *types.ResourceNotFoundException", err)
	}
	_, err = api.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("echo"), Payload: []byte("not json")})
	var bad *types.InvalidRequestContentException
	if !errors.As(err, &bad) {
		t.Errorf("Invoke with a payload that is not JSON: err = %v, want *types.InvalidRequestContentException", err)
	}

	// curl, as `aws lambda invoke --endpoint-url` sends it, without credentials on loopback.
	resp, err := http.Post(srv.HTTP+"/2015-03-31/functions/echo/invocations", "application/json", strings.NewReader(`{"y":2}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("X-Amzn-RequestId") == "" {
		t.Errorf("plain POST: %d, request ID %q", resp.StatusCode, resp.Header.Get("X-Amzn-RequestId"))
	}
	// Without credentials, what a page of another site could send is refused.
	req, _ := http.NewRequest("POST", srv.HTTP+"/2015-03-31/functions/echo/invocations", strings.NewReader(`{}`))
	req.Header.Set("Origin", "https://evil.example")
	req.Header.Set("Content-Type", "text/plain")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("cross-site POST: %d, want 403", resp.StatusCode)
	}
}

func TestLambdaInvokeAPIRequiresCredentials(t *testing.T) {
	t.Parallel()
	srv, _ := startInvokeProject(t, "AKIDLAMBDA:lambda-secret")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := lambdaClient(srv.HTTP, "AKIDLAMBDA", "lambda-secret").Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("echo")}); err != nil {
		t.Fatalf("Invoke signed with the management key (service lambda): %v", err)
	}
	for name, c := range map[string]*lambda.Client{
		"wrong secret": lambdaClient(srv.HTTP, "AKIDLAMBDA", "wrong"),
		"unknown key":  lambdaClient(srv.HTTP, "AKIDOTHER", "lambda-secret"),
	} {
		_, err := c.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("echo")})
		var re interface{ HTTPStatusCode() int }
		var ae smithy.APIError
		if !errors.As(err, &re) || re.HTTPStatusCode() != 403 || !errors.As(err, &ae) || ae.ErrorCode() != "ForbiddenException" {
			t.Errorf("%s: err = %v, want 403 ForbiddenException", name, err)
		}
	}
	resp, err := http.Post(srv.HTTP+"/2015-03-31/functions/echo/invocations", "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("unsigned POST: %d, want 403", resp.StatusCode)
	}
}
