// Package httpint is the HTTP proxy integration: it POSTs a route's API
// Gateway proxy event as JSON to a URL and reads the answer as a Lambda proxy
// response, so that a plain HTTP service can stand in for a Lambda function.
package httpint

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/switchboard-gateway/switchboard/internal/integration"
)

// MaxResponseBytes is the largest response body Invoke reads: 6 MiB, the
// size of the largest Lambda payload.
const MaxResponseBytes = 6 << 20

// ErrResponseTooLarge is returned by Invoke when the backend answers with a
// body longer than MaxResponseBytes.
var ErrResponseTooLarge = errors.New("httpint: response body too large")

// StatusError is returned by Invoke when the backend answers with a status
// outside 2xx.
type StatusError struct {
	URL        string // redacted of any password
	StatusCode int
	Body       string // the start of the response body, at most 512 bytes
}

func (e *StatusError) Error() string {
	msg := fmt.Sprintf("httpint: POST %s: status %d", e.URL, e.StatusCode)
	if e.Body != "" {
		msg += ": " + e.Body
	}
	return msg
}

// Options configures an HTTP integration.
type Options struct {
	// URL is where events are POSTed; http or https. Required.
	URL string
	// Timeout bounds one invocation, from sending the request to reading
	// the whole answer. Zero means no limit beyond the caller's ctx.
	Timeout time.Duration
	// Headers are added to every request, after Content-Type, which they
	// may therefore override. "Host" sets the request's Host.
	Headers map[string]string
	// Client sends the requests. Nil means a client of this integration's
	// own, which keeps up to 100 idle connections to the backend, does not
	// follow redirects, and whose idle connections Close releases.
	Client *http.Client
}

// Integration POSTs events to one URL. It is safe for concurrent use.
type Integration struct {
	url     string // as given
	display string // redacted, for errors
	timeout time.Duration
	header  http.Header
	host    string
	client  *http.Client
	owned   bool // client was made by New, and Close releases its connections
}

var _ integration.Integration = (*Integration)(nil)

// New returns an integration that POSTs to opts.URL. It fails when the URL
// is not an absolute http or https URL.
func New(opts Options) (*Integration, error) {
	u, err := url.Parse(opts.URL)
	if err != nil {
		return nil, fmt.Errorf("httpint: invalid URL: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("httpint: URL %q: scheme must be http or https", u.Redacted())
	}
	if u.Host == "" {
		return nil, fmt.Errorf("httpint: URL %q has no host", u.Redacted())
	}
	if opts.Timeout < 0 {
		return nil, fmt.Errorf("httpint: negative timeout %v", opts.Timeout)
	}
	i := &Integration{
		url:     opts.URL,
		display: u.Redacted(),
		timeout: opts.Timeout,
		header:  http.Header{"Content-Type": {"application/json"}},
		client:  opts.Client,
	}
	for k, v := range opts.Headers {
		if strings.EqualFold(k, "Host") {
			i.host = v
			continue
		}
		i.header.Set(k, v)
	}
	if i.client == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		// The default of 2 idle connections per host would make every
		// concurrent invocation above 2 dial anew: there is only one host.
		t.MaxIdleConnsPerHost = 100
		i.client = &http.Client{
			Transport: t,
			// A redirect is an answer, not an instruction to send the
			// event elsewhere: it is reported as a *StatusError.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
		i.owned = true
	}
	return i, nil
}

// Invoke POSTs req's proxy event and returns the backend's answer, read with
// integration.ParseResponse: a 2xx with an empty body is a 200 with no body,
// and a body that is not a proxy response is the response body itself.
// A status outside 2xx is a *StatusError.
func (i *Integration) Invoke(ctx context.Context, req *integration.Request) (*integration.Response, error) {
	event, err := integration.MarshalEvent(req)
	if err != nil {
		return nil, fmt.Errorf("httpint: %w", err)
	}
	if i.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, i.timeout)
		defer cancel()
	}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, i.url, bytes.NewReader(event))
	if err != nil {
		return nil, fmt.Errorf("httpint: POST %s: %w", i.display, err)
	}
	hreq.Header = i.header.Clone()
	if i.host != "" {
		hreq.Host = i.host
	}
	resp, err := i.client.Do(hreq)
	if err != nil {
		return nil, i.fail(err)
	}
	defer resp.Body.Close()

	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		head, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // lets a short answer keep its connection
		return nil, &StatusError{URL: i.display, StatusCode: resp.StatusCode, Body: strings.TrimSpace(string(head))}
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponseBytes+1))
	if err != nil {
		return nil, i.fail(err)
	}
	if len(body) > MaxResponseBytes {
		return nil, fmt.Errorf("%w: POST %s: more than %d bytes", ErrResponseTooLarge, i.display, MaxResponseBytes)
	}
	out, err := integration.ParseResponse(body)
	if err != nil {
		return nil, fmt.Errorf("httpint: POST %s: %w", i.display, err)
	}
	if u := resp.Header.Get(integration.UserHeader); u != "" {
		set := false
		for k := range out.Headers {
			set = set || strings.EqualFold(k, integration.UserHeader)
		}
		if !set {
			if out.Headers == nil {
				out.Headers = map[string]string{}
			}
			out.Headers[integration.UserHeader] = u // a proxy response's own headers win
		}
	}
	return out, nil
}

// fail wraps a transport error, naming the URL once. An error caused by
// ctx stays visible to errors.Is (net/http wraps ctx's error).
func (i *Integration) fail(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return fmt.Errorf("httpint: POST %s: %w", i.display, err)
}

// Close releases the idle connections of the client New made. It does
// nothing when Options.Client was set: the caller owns that client.
func (i *Integration) Close() error {
	if i.owned {
		i.client.CloseIdleConnections()
	}
	return nil
}
