package invoke_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"go.uber.org/goleak"

	"github.com/switchboard-gateway/switchboard/internal/apigw"
	"github.com/switchboard-gateway/switchboard/internal/integration"
	"github.com/switchboard-gateway/switchboard/internal/integration/invoke"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// The emulator's account; tests sign with it, or with a wrong secret.
var testCreds = aws.Credentials{AccessKeyID: "AKIDEXAMPLE", SecretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"}

// call is one invocation the emulator accepted.
type call struct {
	Function  string // from the path, unescaped
	Qualifier string
	Payload   []byte
}

// emulator is a local Lambda Invoke API. It accepts only requests signed
// for service lambda in its region with its credentials (recomputing the
// SigV4 signature with the SDK's signer), checks the path and the
// invocation type, records the call and answers with answer.
type emulator struct {
	*httptest.Server
	creds  aws.Credentials
	region string
	answer func(w http.ResponseWriter, r *http.Request, c call)
	calls  chan call
}

func newEmulator(t *testing.T, creds aws.Credentials, region string, answer func(http.ResponseWriter, *http.Request, call)) *emulator {
	t.Helper()
	e := &emulator{creds: creds, region: region, answer: answer, calls: make(chan call, 16)}
	e.Server = httptest.NewServer(e)
	t.Cleanup(e.Close)
	return e
}

// awsError writes an Invoke API error the way Lambda does.
func awsError(w http.ResponseWriter, status int, typ, message string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Amzn-ErrorType", typ)
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"Type":"User","message":%q}`, message)
}

func (e *emulator) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		awsError(w, http.StatusBadRequest, "InvalidRequestContentException", err.Error())
		return
	}
	if err := verifySignature(r, body, e.creds, e.region); err != nil {
		awsError(w, http.StatusForbidden, "InvalidSignatureException", err.Error())
		return
	}
	const prefix, suffix = "/2015-03-31/functions/", "/invocations"
	if r.Method != http.MethodPost || !strings.HasPrefix(r.URL.Path, prefix) || !strings.HasSuffix(r.URL.Path, suffix) {
		awsError(w, http.StatusNotFound, "UnknownOperationException", r.Method+" "+r.URL.Path)
		return
	}
	if got := r.Header.Get("X-Amz-Invocation-Type"); got != "RequestResponse" {
		awsError(w, http.StatusBadRequest, "InvalidParameterValueException", "X-Amz-Invocation-Type = "+got)
		return
	}
	c := call{
		Function:  strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, prefix), suffix),
		Qualifier: r.URL.Query().Get("Qualifier"),
		Payload:   body,
	}
	e.calls <- c
	e.answer(w, r, c)
}

// verifySignature recomputes r's SigV4 signature over the headers r says it
// signed and the body it carries, and compares it with r's.
func verifySignature(r *http.Request, body []byte, creds aws.Credentials, region string) error {
	auth := r.Header.Get("Authorization")
	_, signedList, ok := strings.Cut(auth, "SignedHeaders=")
	if !ok {
		return fmt.Errorf("no SignedHeaders in Authorization %q", auth)
	}
	signedList, _, _ = strings.Cut(signedList, ",")
	when, err := time.Parse("20060102T150405Z", r.Header.Get("X-Amz-Date"))
	if err != nil {
		return fmt.Errorf("X-Amz-Date: %v", err)
	}
	u, err := url.Parse("http://" + r.Host + r.RequestURI)
	if err != nil {
		return err
	}
	signed := &http.Request{Method: r.Method, URL: u, Host: r.Host, Header: http.Header{}, ContentLength: int64(len(body))}
	for _, h := range strings.Split(signedList, ";") {
		if h != "host" && h != "content-length" {
			signed.Header[http.CanonicalHeaderKey(h)] = r.Header.Values(h)
		}
	}
	sum := sha256.Sum256(body)
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, signed, hex.EncodeToString(sum[:]), "lambda", region, when); err != nil {
		return err
	}
	if want := signed.Header.Get("Authorization"); auth != want {
		return fmt.Errorf("the request signature does not match: got %q, want %q", auth, want)
	}
	return nil
}

// echoProxy answers with a proxy response whose body is the event's body.
func echoProxy(w http.ResponseWriter, _ *http.Request, c call) {
	var ev events.APIGatewayWebsocketProxyRequest
	if err := json.Unmarshal(c.Payload, &ev); err != nil {
		awsError(w, http.StatusBadRequest, "InvalidRequestContentException", err.Error())
		return
	}
	json.NewEncoder(w).Encode(map[string]any{
		"statusCode": 200,
		"headers":    map[string]string{"X-Connection": ev.RequestContext.ConnectionID},
		"body":       ev.Body,
	})
}

func newRequest(body string) *integration.Request {
	return &integration.Request{
		RouteKey:  "sendmessage",
		EventType: apigw.EventMessage,
		RequestID: "R1knPH17NjMFftw=",
		MessageID: "R1knPc2ntjMCFIA=",
		Time:      time.Date(2024, time.January, 20, 11, 55, 0, 453e6, time.UTC),
		Body:      []byte(body),
		Conn: &integration.Conn{
			ID:          "R1kmxc2VNjMCFIA=",
			ConnectedAt: time.Date(2024, time.January, 20, 11, 54, 57, 419e6, time.UTC),
			SourceIP:    "203.0.113.7",
			Stage:       "prod",
			DomainName:  "ws.example.com",
			APIID:       "abcdef123",
		},
	}
}

func newIntegration(t *testing.T, opts invoke.Options) *invoke.Integration {
	t.Helper()
	in, err := invoke.New(context.Background(), opts)
	if err != nil {
		t.Fatalf("New(%+v): %v", opts, err)
	}
	t.Cleanup(func() { in.Close() })
	return in
}

func TestInvoke(t *testing.T) {
	t.Parallel()
	session := aws.Credentials{AccessKeyID: "ASIAEXAMPLE", SecretAccessKey: "c2VjcmV0", SessionToken: "FwoGZXIvYXdzEXAMPLE"}
	tests := []struct {
		name, function, qualifier, region string
		creds                             aws.Credentials
	}{
		{name: "name", function: "chat-handler", region: "us-east-1", creds: testCreds},
		{name: "ARN", function: "arn:aws:lambda:eu-west-1:123456789012:function:chat-handler", region: "eu-west-1", creds: testCreds},
		{name: "alias", function: "chat-handler", qualifier: "live", region: "eu-west-1", creds: testCreds},
		{name: "$LATEST", function: "chat-handler", qualifier: "$LATEST", region: "ap-northeast-1", creds: testCreds},
		{name: "session credentials", function: "chat-handler", region: "us-east-1", creds: session},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			em := newEmulator(t, tt.creds, tt.region, echoProxy)
			in := newIntegration(t, invoke.Options{
				Endpoint:    em.URL,
				Function:    tt.function,
				Qualifier:   tt.qualifier,
				Region:      tt.region,
				Credentials: credentials(tt.creds),
			})
			req := newRequest(`{"action":"sendmessage","data":"hi"}`)
			resp, err := in.Invoke(context.Background(), req)
			if err != nil {
				t.Fatalf("Invoke: %v", err)
			}
			want := &integration.Response{
				StatusCode: 200,
				Headers:    map[string]string{"X-Connection": "R1kmxc2VNjMCFIA="},
				Body:       []byte(`{"action":"sendmessage","data":"hi"}`),
			}
			if !reflect.DeepEqual(resp, want) {
				t.Errorf("Invoke = %+v, want %+v", resp, want)
			}
			c := <-em.calls
			if c.Function != tt.function || c.Qualifier != tt.qualifier {
				t.Errorf("emulator invoked %q qualifier %q, want %q qualifier %q", c.Function, c.Qualifier, tt.function, tt.qualifier)
			}
			wantPayload, err := integration.MarshalEvent(req)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(c.Payload, wantPayload) {
				t.Errorf("payload =\n%s\nwant MarshalEvent's\n%s", c.Payload, wantPayload)
			}
		})
	}
}

func credentials(c aws.Credentials) aws.CredentialsProvider {
	return aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) { return c, nil })
}

// TestInvokeRejected checks that requests the emulator refuses to run,
// because they are not signed as it expects, are errors.
func TestInvokeRejected(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		creds  aws.Credentials
		region string // the region the integration signs for; the emulator's is us-east-1
	}{
		{"wrong secret", aws.Credentials{AccessKeyID: testCreds.AccessKeyID, SecretAccessKey: "not-the-secret"}, "us-east-1"},
		{"wrong access key", aws.Credentials{AccessKeyID: "AKIDOTHER", SecretAccessKey: testCreds.SecretAccessKey}, "us-east-1"},
		{"wrong region", testCreds, "eu-west-1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			em := newEmulator(t, testCreds, "us-east-1", echoProxy)
			in := newIntegration(t, invoke.Options{
				Endpoint: em.URL, Function: "chat-handler", Region: tt.region, Credentials: credentials(tt.creds),
			})
			resp, err := in.Invoke(context.Background(), newRequest("hi"))
			var se *invoke.ServiceError
			if !errors.As(err, &se) {
				t.Fatalf("Invoke = %+v, %v; want a *ServiceError", resp, err)
			}
			if se.StatusCode != http.StatusForbidden || se.Type != "InvalidSignatureException" {
				t.Errorf("ServiceError = %d %s, want 403 InvalidSignatureException", se.StatusCode, se.Type)
			}
			if len(em.calls) != 0 {
				t.Errorf("the emulator ran the function %d times, want 0", len(em.calls))
			}
		})
	}
}

func TestInvokeFunctionError(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, header, payload string
		want                  invoke.FunctionError
	}{
		{
			name: "unhandled", header: "Unhandled",
			payload: `{"errorMessage":"boom","errorType":"Error"}`,
			want:    invoke.FunctionError{Type: "Error", Message: "boom"},
		},
		{
			name: "handled with stack trace", header: "Handled",
			payload: `{"errorMessage":"no such user","errorType":"NotFound","stackTrace":["at handler (index.js:3:9)"]}`,
			want:    invoke.FunctionError{Type: "NotFound", Message: "no such user"},
		},
		{
			name: "no errorType", header: "Unhandled",
			payload: `{"errorMessage":"2024-01-20T11:55:03Z Task timed out after 3.00 seconds"}`,
			want:    invoke.FunctionError{Type: "Unhandled", Message: "2024-01-20T11:55:03Z Task timed out after 3.00 seconds"},
		},
		{
			name: "payload not an error object", header: "Unhandled",
			payload: "runtime exited\n",
			want:    invoke.FunctionError{Type: "Unhandled", Message: "runtime exited"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			em := newEmulator(t, testCreds, "us-east-1", func(w http.ResponseWriter, _ *http.Request, _ call) {
				w.Header().Set("X-Amz-Function-Error", tt.header)
				w.Header().Set("X-Amz-Executed-Version", "$LATEST")
				io.WriteString(w, tt.payload)
			})
			in := newIntegration(t, invoke.Options{Endpoint: em.URL, Function: "chat-handler", Region: "us-east-1", Credentials: credentials(testCreds)})
			resp, err := in.Invoke(context.Background(), newRequest("hi"))
			var fe *invoke.FunctionError
			if !errors.As(err, &fe) {
				t.Fatalf("Invoke = %+v, %v; want a *FunctionError", resp, err)
			}
			if *fe != tt.want {
				t.Errorf("FunctionError = %+v, want %+v", *fe, tt.want)
			}
			if !strings.Contains(err.Error(), "chat-handler") {
				t.Errorf("error %q does not name the function", err)
			}
		})
	}
}

func TestInvokeServiceError(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		status     int
		header     http.Header
		body       string
		wantType   string
		wantMsgHas string
	}{
		{
			name: "throttled", status: http.StatusTooManyRequests,
			header:   http.Header{"X-Amzn-Errortype": {"TooManyRequestsException"}},
			body:     `{"Reason":"ReservedFunctionConcurrentInvocationLimitExceeded","Type":"User","message":"Rate Exceeded."}`,
			wantType: "TooManyRequestsException", wantMsgHas: "Rate Exceeded.",
		},
		{
			name: "type only in the body", status: http.StatusNotFound,
			body:     `{"__type":"ResourceNotFoundException","message":"Function not found: arn:aws:lambda:us-east-1:123456789012:function:chat-handler"}`,
			wantType: "ResourceNotFoundException", wantMsgHas: "Function not found",
		},
		{
			name: "type header with a namespace", status: http.StatusRequestEntityTooLarge,
			header:   http.Header{"X-Amzn-Errortype": {"RequestTooLargeException:http://internal.amazon.com/coral/com.amazon.coral.service/"}},
			body:     `{"Type":"User","message":"Request must be smaller than 6291456 bytes for the InvokeFunction operation"}`,
			wantType: "RequestTooLargeException", wantMsgHas: "6291456 bytes",
		},
		{
			name: "service fault", status: http.StatusInternalServerError,
			header:   http.Header{"X-Amzn-Errortype": {"ServiceException"}},
			body:     `{"Type":"Service","message":"internal failure"}`,
			wantType: "ServiceException", wantMsgHas: "internal failure",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			em := newEmulator(t, testCreds, "us-east-1", func(w http.ResponseWriter, _ *http.Request, _ call) {
				for k, v := range tt.header {
					w.Header()[k] = v
				}
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(tt.status)
				io.WriteString(w, tt.body)
			})
			in := newIntegration(t, invoke.Options{Endpoint: em.URL, Function: "chat-handler", Region: "us-east-1", Credentials: credentials(testCreds)})
			resp, err := in.Invoke(context.Background(), newRequest("hi"))
			var se *invoke.ServiceError
			if !errors.As(err, &se) {
				t.Fatalf("Invoke = %+v, %v; want a *ServiceError", resp, err)
			}
			if se.StatusCode != tt.status || se.Type != tt.wantType || !strings.Contains(se.Message, tt.wantMsgHas) {
				t.Errorf("ServiceError = %d %q %q, want %d %q containing %q", se.StatusCode, se.Type, se.Message, tt.status, tt.wantType, tt.wantMsgHas)
			}
			if !strings.Contains(err.Error(), tt.wantType) {
				t.Errorf("error %q does not name %s", err, tt.wantType)
			}
			if len(em.calls) != 1 {
				t.Errorf("the emulator was called %d times, want 1 (no retries)", len(em.calls))
			}
		})
	}
}

func TestInvokeBadOutput(t *testing.T) {
	t.Parallel()
	em := newEmulator(t, testCreds, "us-east-1", func(w http.ResponseWriter, _ *http.Request, _ call) {
		io.WriteString(w, `{"statusCode":700,"body":"x"}`)
	})
	in := newIntegration(t, invoke.Options{Endpoint: em.URL, Function: "chat-handler", Region: "us-east-1", Credentials: credentials(testCreds)})
	if resp, err := in.Invoke(context.Background(), newRequest("hi")); !errors.Is(err, integration.ErrBadResponse) {
		t.Fatalf("Invoke = %+v, %v; want ErrBadResponse", resp, err)
	}
}

func TestInvokeDeadline(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	em := newEmulator(t, testCreds, "us-east-1", func(w http.ResponseWriter, r *http.Request, _ call) {
		select {
		case <-r.Context().Done(): // the client gave up
		case <-release:
		}
	})
	t.Cleanup(func() { close(release) }) // runs before the emulator closes
	in := newIntegration(t, invoke.Options{Endpoint: em.URL, Function: "chat-handler", Region: "us-east-1", Credentials: credentials(testCreds)})

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	resp, err := in.Invoke(ctx, newRequest("hi"))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Invoke = %+v, %v; want DeadlineExceeded", resp, err)
	}
}

func TestInvokeEndpointDown(t *testing.T) {
	t.Parallel()
	em := newEmulator(t, testCreds, "us-east-1", echoProxy)
	em.Close()
	in := newIntegration(t, invoke.Options{Endpoint: em.URL, Function: "chat-handler", Region: "us-east-1", Credentials: credentials(testCreds)})
	resp, err := in.Invoke(context.Background(), newRequest("hi"))
	var se *invoke.ServiceError
	if err == nil || errors.As(err, &se) {
		t.Fatalf("Invoke(endpoint down) = %+v, %v; want a transport error", resp, err)
	}
}

// roundTripFunc answers requests without a network.
type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// TestInvokeDefaultEndpoint checks where requests go without Endpoint.
func TestInvokeDefaultEndpoint(t *testing.T) {
	t.Parallel()
	urls := make(chan string, 1)
	client := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		urls <- r.URL.String()
		return &http.Response{
			StatusCode: http.StatusOK,
			Header:     http.Header{"Content-Type": {"application/json"}},
			Body:       io.NopCloser(strings.NewReader(`"ok"`)),
			Request:    r,
		}, nil
	})}
	in := newIntegration(t, invoke.Options{
		Function: "chat-handler", Qualifier: "live", Region: "eu-central-1", Credentials: credentials(testCreds), Client: client,
	})
	resp, err := in.Invoke(context.Background(), newRequest("hi"))
	if err != nil {
		t.Fatalf("Invoke: %v", err)
	}
	if string(resp.Body) != "ok" {
		t.Errorf("Invoke body = %q, want ok", resp.Body)
	}
	want := "https://lambda.eu-central-1.amazonaws.com/2015-03-31/functions/chat-handler/invocations?Qualifier=live"
	if got := <-urls; got != want {
		t.Errorf("request URL = %s, want %s", got, want)
	}
}

func TestNew(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		opts    invoke.Options
		wantErr bool
	}{
		{"endpoint", invoke.Options{Endpoint: "http://127.0.0.1:9001", Function: "f"}, false},
		{"endpoint with slash", invoke.Options{Endpoint: "https://lambda.example.com/", Function: "f"}, false},
		{"AWS", invoke.Options{Function: "arn:aws:lambda:us-east-1:123456789012:function:f"}, false},
		{"no function", invoke.Options{Endpoint: "http://127.0.0.1:9001"}, true},
		{"endpoint without scheme", invoke.Options{Endpoint: "127.0.0.1:9001", Function: "f"}, true},
		{"endpoint ftp", invoke.Options{Endpoint: "ftp://lambda.example.com", Function: "f"}, true},
		{"endpoint without host", invoke.Options{Endpoint: "http:///x", Function: "f"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.opts.Region, tt.opts.Credentials = "us-east-1", credentials(testCreds) // independent of the environment
			in, err := invoke.New(context.Background(), tt.opts)
			if (err != nil) != tt.wantErr {
				t.Fatalf("New(%+v) error = %v, want error %v", tt.opts, err, tt.wantErr)
			}
			if err == nil {
				in.Close()
			}
		})
	}
}

// TestNewDefaultChain checks that without Credentials and Region the
// integration signs with what the standard AWS configuration provides. It
// sets environment variables, so neither it nor its subtests are parallel.
func TestNewDefaultChain(t *testing.T) {
	emptyEnv := func(t *testing.T) string {
		dir := t.TempDir()
		for _, k := range []string{
			"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_REGION",
			"AWS_DEFAULT_REGION", "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ROLE_ARN",
			"AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
			"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_LAMBDA",
		} {
			t.Setenv(k, "")
		}
		t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "config"))
		t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "credentials"))
		t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
		return dir
	}
	tests := []struct {
		name   string
		region string // the region the emulator expects
		setup  func(t *testing.T, dir string)
	}{
		{
			name: "environment", region: "eu-west-3",
			setup: func(t *testing.T, _ string) {
				t.Setenv("AWS_ACCESS_KEY_ID", testCreds.AccessKeyID)
				t.Setenv("AWS_SECRET_ACCESS_KEY", testCreds.SecretAccessKey)
				t.Setenv("AWS_REGION", "eu-west-3")
			},
		},
		{
			name: "shared files and profile", region: "ap-southeast-2",
			setup: func(t *testing.T, dir string) {
				writeFile(t, filepath.Join(dir, "config"), "[profile gateway]\nregion = ap-southeast-2\n")
				writeFile(t, filepath.Join(dir, "credentials"), fmt.Sprintf(
					"[gateway]\naws_access_key_id = %s\naws_secret_access_key = %s\n", testCreds.AccessKeyID, testCreds.SecretAccessKey))
				t.Setenv("AWS_PROFILE", "gateway")
			},
		},
		{
			name: "no region anywhere", region: "us-east-1",
			setup: func(t *testing.T, _ string) {
				t.Setenv("AWS_ACCESS_KEY_ID", testCreds.AccessKeyID)
				t.Setenv("AWS_SECRET_ACCESS_KEY", testCreds.SecretAccessKey)
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.setup(t, emptyEnv(t))
			em := newEmulator(t, testCreds, tt.region, echoProxy)
			in := newIntegration(t, invoke.Options{Endpoint: em.URL, Function: "chat-handler"})
			resp, err := in.Invoke(context.Background(), newRequest("hi"))
			if err != nil {
				t.Fatalf("Invoke: %v", err)
			}
			if string(resp.Body) != "hi" {
				t.Errorf("Invoke body = %q, want hi", resp.Body)
			}
		})
	}
}

func writeFile(t *testing.T, name, content string) {
	t.Helper()
	if err := os.WriteFile(name, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}
