// Package httpevent serves a project's HTTP routes as API Gateway does for
// Lambda proxy integrations: REST APIs (payload format 1.0, the Serverless
// Framework's http events) and HTTP APIs (payload 2.0, httpApi events). It
// owns the route table (methods, {param} and greedy {proxy+} paths, CORS),
// the proxy events and the reading of the functions' responses; the
// functions are run by their owner.
package httpevent

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/switchboard-gateway/switchboard/internal/apigw"
)

// Function is what the router needs of a hosted function.
type Function interface {
	// InvokeRaw runs the function with event and returns its result; it
	// bounds its own run by the function's timeout.
	InvokeRaw(ctx context.Context, event []byte) ([]byte, error)
}

// Payload versions: REST APIs send 1.0 events, HTTP APIs 2.0 (by default).
const (
	V1 = 1
	V2 = 2
)

// Route is one HTTP route.
type Route struct {
	// Method is GET, POST, ...; "ANY" or "*" matches every method.
	Method string
	// Path is the route's path below the mount point: /users/{id},
	// /files/{proxy+} (the greedy parameter, last only). "*" with method
	// "*" is an HTTP API's $default route, which catches every request.
	Path string
	// Version is V1 or V2.
	Version int
	// Stage, when set, mounts the route at /{Stage}{Path} (a REST API's
	// URLs); empty mounts it at Path.
	Stage string
	// Function runs the route; Name names it in logs.
	Function Function
	Name     string
	// CORS answers preflight requests and adds the CORS headers to
	// responses; nil means none.
	CORS *CORS
}

// CORS is a route's cross-origin configuration.
type CORS struct {
	Origins          []string // "*" allows any
	Headers          []string
	ExposedHeaders   []string
	AllowCredentials bool
	MaxAge           int // seconds; zero sends no Access-Control-Max-Age
}

// Options configures the router. The zero value of each field works.
type Options struct {
	Routes []Route
	// APIStage is requestContext.stage of HTTP API events; empty means
	// "$default".
	APIStage string
	// MaxBodyBytes caps a request's body (413 beyond). Zero means 10 MiB,
	// API Gateway's payload limit.
	MaxBodyBytes int64
	// Logger receives failed invocations. Nil means slog.Default().
	Logger *slog.Logger
}

func (o Options) withDefaults() Options {
	if o.APIStage == "" {
		o.APIStage = "$default"
	}
	if o.MaxBodyBytes == 0 {
		o.MaxBodyBytes = 10 << 20
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

// ErrBadRoute is wrapped by New's errors about a route it cannot serve.
var ErrBadRoute = errors.New("httpevent: bad route")

// Router serves the routes. It is safe for concurrent use.
type Router struct {
	opts   Options
	routes []*compiled
}

type compiled struct {
	Route
	method   string   // upper case; "ANY" for any
	segs     []string // the mounted path's segments; "{x}" a parameter, "{x+}" greedy
	catchAll bool     // an HTTP API's $default route
	resource string   // the path as declared (resource, routeKey)
}

// New validates and compiles the routes.
func New(opts Options) (*Router, error) {
	opts = opts.withDefaults()
	rt := &Router{opts: opts}
	for _, r := range opts.Routes {
		c := &compiled{Route: r, method: strings.ToUpper(r.Method)}
		if c.method == "*" {
			c.method = "ANY"
		}
		if r.Version != V1 && r.Version != V2 {
			return nil, fmt.Errorf("%w: %s %s: payload version %d: want 1 or 2", ErrBadRoute, r.Method, r.Path, r.Version)
		}
		if r.Function == nil {
			return nil, fmt.Errorf("%w: %s %s: no function", ErrBadRoute, r.Method, r.Path)
		}
		if r.Path == "*" && c.method == "ANY" && r.Version == V2 {
			c.catchAll, c.resource = true, "$default"
			rt.routes = append(rt.routes, c)
			continue
		}
		p := "/" + strings.Trim(r.Path, "/")
		c.resource = p
		mounted := p
		if r.Stage != "" {
			mounted = "/" + r.Stage + strings.TrimSuffix(p, "/")
		}
		for i, s := range splitPath(mounted) {
			if strings.HasPrefix(s, "{") != strings.HasSuffix(s, "}") || strings.ContainsAny(strings.Trim(s, "{}"), "{}") {
				return nil, fmt.Errorf("%w: %s: segment %q: want text or {name}", ErrBadRoute, r.Path, s)
			}
			if strings.HasSuffix(s, "+}") && i != len(splitPath(mounted))-1 {
				return nil, fmt.Errorf("%w: %s: a greedy {name+} parameter must be last", ErrBadRoute, r.Path)
			}
			c.segs = append(c.segs, s)
		}
		for _, o := range rt.routes {
			if o.method == c.method && slices.Equal(o.segs, c.segs) && !o.catchAll {
				return nil, fmt.Errorf("%w: %s %s is declared twice", ErrBadRoute, c.method, p)
			}
		}
		rt.routes = append(rt.routes, c)
	}
	return rt, nil
}

func splitPath(p string) []string {
	p = strings.Trim(p, "/")
	if p == "" {
		return nil
	}
	return strings.Split(p, "/")
}

// Len is the number of routes.
func (rt *Router) Len() int { return len(rt.routes) }

// match finds the most specific route for the path, as API Gateway picks
// one: literal segments before parameters before a greedy parameter, a
// route for the method before ANY. pathOK reports whether any route has the
// path, whatever its method.
func (rt *Router) match(method, path string) (best *compiled, params map[string]string, pathOK bool) {
	segs := splitPath(path)
	var bestScore []int
	for _, c := range rt.routes {
		if c.catchAll {
			continue
		}
		score, ps, ok := c.matchPath(segs)
		if !ok {
			continue
		}
		pathOK = true
		if c.method != "ANY" && c.method != method {
			continue
		}
		if c.method != "ANY" {
			score = append(score, 1)
		} else {
			score = append(score, 0)
		}
		if best == nil || slices.Compare(score, bestScore) > 0 {
			best, bestScore, params = c, score, ps
		}
	}
	if best == nil {
		for _, c := range rt.routes {
			if c.catchAll {
				return c, nil, true
			}
		}
	}
	return best, params, pathOK
}

// matchPath matches segments; the score ranks literal (2) over parameter
// (1) over greedy (0), segment by segment.
func (c *compiled) matchPath(segs []string) ([]int, map[string]string, bool) {
	var score []int
	params := map[string]string{}
	for i, s := range c.segs {
		switch {
		case strings.HasSuffix(s, "+}"):
			if i >= len(segs) {
				return nil, nil, false
			}
			params[s[1:len(s)-2]] = strings.Join(segs[i:], "/")
			return append(score, 0), params, true
		case strings.HasPrefix(s, "{"):
			if i >= len(segs) || segs[i] == "" {
				return nil, nil, false
			}
			params[s[1:len(s)-1]] = segs[i]
			score = append(score, 1)
		default:
			if i >= len(segs) || segs[i] != s {
				return nil, nil, false
			}
			score = append(score, 2)
		}
	}
	if len(segs) != len(c.segs) {
		return nil, nil, false
	}
	return score, params, true
}

// Handles reports whether the router answers r: a path one of its routes
// has (or any path, with an HTTP API's $default route).
func (rt *Router) Handles(r *http.Request) bool {
	_, _, ok := rt.match(r.Method, r.URL.Path)
	return ok
}

// ServeHTTP runs the route matching r.
func (rt *Router) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	method := r.Method
	c, params, pathOK := rt.match(method, r.URL.Path)
	if method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
		if cors := rt.corsFor(r.URL.Path); cors != nil {
			rt.preflight(w, r, cors)
			return
		}
	}
	if c == nil {
		if !pathOK {
			http.NotFound(w, r)
			return
		}
		// The path exists for other methods.
		if rt.version(r.URL.Path) == V1 {
			writeMessage(w, http.StatusForbidden, "Missing Authentication Token")
		} else {
			writeMessage(w, http.StatusNotFound, "Not Found")
		}
		return
	}
	rt.invoke(w, r, c, params)
}

// version is the payload version of the routes that have path.
func (rt *Router) version(path string) int {
	segs := splitPath(path)
	for _, c := range rt.routes {
		if _, _, ok := c.matchPath(segs); ok && !c.catchAll {
			return c.Version
		}
	}
	return V2
}

// corsFor is the CORS configuration of the routes that have path.
func (rt *Router) corsFor(path string) *CORS {
	segs := splitPath(path)
	for _, c := range rt.routes {
		if _, _, ok := c.matchPath(segs); (ok || c.catchAll) && c.CORS != nil {
			return c.CORS
		}
	}
	return nil
}

// methodsFor lists the methods the routes of path answer.
func (rt *Router) methodsFor(path string) []string {
	segs := splitPath(path)
	var out []string
	for _, c := range rt.routes {
		if _, _, ok := c.matchPath(segs); ok || c.catchAll {
			if c.method == "ANY" {
				return []string{"DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT"}
			}
			out = append(out, c.method)
		}
	}
	out = append(out, http.MethodOptions)
	slices.Sort(out)
	return slices.Compact(out)
}

// allowOrigin is the Access-Control-Allow-Origin for origin, or "".
func (c *CORS) allowOrigin(origin string) string {
	for _, o := range c.Origins {
		if o == "*" && !c.AllowCredentials {
			return "*"
		}
		if o == "*" || o == origin {
			return origin
		}
	}
	return ""
}

func (rt *Router) preflight(w http.ResponseWriter, r *http.Request, c *CORS) {
	h := w.Header()
	if o := c.allowOrigin(r.Header.Get("Origin")); o != "" {
		h.Set("Access-Control-Allow-Origin", o)
		h.Set("Access-Control-Allow-Methods", strings.Join(rt.methodsFor(r.URL.Path), ","))
		if len(c.Headers) > 0 {
			h.Set("Access-Control-Allow-Headers", strings.Join(c.Headers, ","))
		}
		if c.AllowCredentials {
			h.Set("Access-Control-Allow-Credentials", "true")
		}
		if c.MaxAge > 0 {
			h.Set("Access-Control-Max-Age", strconv.Itoa(c.MaxAge))
		}
		h.Add("Vary", "Origin")
	}
	w.WriteHeader(http.StatusNoContent)
}

// addCORS adds the CORS headers of an actual (not preflight) response.
func addCORS(h http.Header, c *CORS, origin string) {
	if c == nil || origin == "" || h.Get("Access-Control-Allow-Origin") != "" {
		return
	}
	if o := c.allowOrigin(origin); o != "" {
		h.Set("Access-Control-Allow-Origin", o)
		if c.AllowCredentials {
			h.Set("Access-Control-Allow-Credentials", "true")
		}
		if len(c.ExposedHeaders) > 0 {
			h.Set("Access-Control-Expose-Headers", strings.Join(c.ExposedHeaders, ","))
		}
		h.Add("Vary", "Origin")
	}
}

func (rt *Router) invoke(w http.ResponseWriter, r *http.Request, c *compiled, params map[string]string) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, rt.opts.MaxBodyBytes))
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		writeMessage(w, http.StatusRequestEntityTooLarge, "Request Too Long")
		return
	}
	if err != nil {
		writeMessage(w, http.StatusBadRequest, "Bad Request")
		return
	}
	id := apigw.NewUUID()
	now := time.Now()
	var event any
	if c.Version == V1 {
		event = eventV1(r, c, params, body, id, now)
	} else {
		event = eventV2(r, c, params, body, id, now, rt.opts.APIStage)
	}
	raw, err := json.Marshal(event)
	if err != nil {
		writeMessage(w, http.StatusInternalServerError, "Internal server error")
		return
	}
	out, err := c.Function.InvokeRaw(r.Context(), raw)
	if err != nil {
		if r.Context().Err() != nil {
			return // the client has gone
		}
		rt.opts.Logger.Warn("http route failed", "route", c.method+" "+c.resource, "function", c.Name, "requestId", id, "err", err)
		switch {
		case errors.Is(err, context.DeadlineExceeded) && c.Version == V1:
			writeMessage(w, http.StatusGatewayTimeout, "Endpoint request timed out")
		case errors.Is(err, context.DeadlineExceeded):
			writeMessage(w, http.StatusServiceUnavailable, "Service Unavailable")
		case c.Version == V1:
			writeMessage(w, http.StatusBadGateway, "Internal server error")
		default:
			writeMessage(w, http.StatusInternalServerError, "Internal Server Error")
		}
		return
	}
	resp, err := parseResponse(out, c.Version)
	if err != nil {
		rt.opts.Logger.Warn("http route: malformed function response", "route", c.method+" "+c.resource, "function", c.Name, "requestId", id, "err", err)
		if c.Version == V1 {
			writeMessage(w, http.StatusBadGateway, "Internal server error")
		} else {
			writeMessage(w, http.StatusInternalServerError, "Internal Server Error")
		}
		return
	}
	h := w.Header()
	for k, vs := range resp.header {
		for _, v := range vs {
			h.Add(k, v)
		}
	}
	for _, ck := range resp.cookies {
		h.Add("Set-Cookie", ck)
	}
	h.Set("X-Amzn-RequestId", id)
	if c.Version == V2 {
		h.Set("Apigw-Requestid", id)
	}
	addCORS(h, c.CORS, r.Header.Get("Origin"))
	w.WriteHeader(resp.status)
	_, _ = w.Write(resp.body)
}

func writeMessage(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	b, _ := json.Marshal(map[string]string{"message": msg})
	_, _ = w.Write(b)
}

// eventV1 is API Gateway's REST proxy event (payload format 1.0).
func eventV1(r *http.Request, c *compiled, params map[string]string, body []byte, id string, now time.Time) map[string]any {
	headers, multi := map[string]string{}, map[string][]string{}
	for k, vs := range r.Header {
		headers[k] = vs[len(vs)-1]
		multi[k] = vs
	}
	if r.Host != "" {
		headers["Host"], multi["Host"] = r.Host, []string{r.Host}
	}
	var qs, mqs any
	if q := r.URL.Query(); len(q) > 0 {
		single := map[string]string{}
		for k, vs := range q {
			single[k] = vs[len(vs)-1]
		}
		qs, mqs = single, map[string][]string(q)
	}
	var pp any
	if len(params) > 0 {
		pp = params
	}
	path := r.URL.Path
	if c.Stage != "" {
		path = strings.TrimPrefix(path, "/"+c.Stage)
	}
	if path == "" {
		path = "/"
	}
	b, b64 := bodyOf(body)
	stage := c.Stage
	if stage == "" {
		stage = "$default"
	}
	return map[string]any{
		"resource":                        c.resource,
		"path":                            path,
		"httpMethod":                      r.Method,
		"headers":                         headers,
		"multiValueHeaders":               multi,
		"queryStringParameters":           qs,
		"multiValueQueryStringParameters": mqs,
		"pathParameters":                  pp,
		"stageVariables":                  nil,
		"requestContext": map[string]any{
			"accountId":         "123456789012",
			"apiId":             "local",
			"domainName":        r.Host,
			"domainPrefix":      domainPrefix(r.Host),
			"extendedRequestId": id,
			"httpMethod":        r.Method,
			"identity": map[string]any{
				"sourceIp":  sourceIP(r),
				"userAgent": r.UserAgent(),
				"accessKey": nil, "accountId": nil, "caller": nil, "cognitoAuthenticationProvider": nil,
				"cognitoAuthenticationType": nil, "cognitoIdentityId": nil, "cognitoIdentityPoolId": nil,
				"principalOrgId": nil, "user": nil, "userArn": nil,
			},
			"path":             r.URL.Path,
			"protocol":         r.Proto,
			"requestId":        id,
			"requestTime":      now.UTC().Format("02/Jan/2006:15:04:05 -0700"),
			"requestTimeEpoch": now.UnixMilli(),
			"resourceId":       "local",
			"resourcePath":     c.resource,
			"stage":            stage,
		},
		"body":            b,
		"isBase64Encoded": b64,
	}
}

// eventV2 is API Gateway's HTTP API proxy event (payload format 2.0).
func eventV2(r *http.Request, c *compiled, params map[string]string, body []byte, id string, now time.Time, stage string) map[string]any {
	headers := map[string]string{}
	var cookies []string
	for k, vs := range r.Header {
		lk := strings.ToLower(k)
		if lk == "cookie" {
			for _, v := range vs {
				for _, ck := range strings.Split(v, ";") {
					if ck = strings.TrimSpace(ck); ck != "" {
						cookies = append(cookies, ck)
					}
				}
			}
			continue
		}
		headers[lk] = strings.Join(vs, ",")
	}
	if r.Host != "" {
		headers["host"] = r.Host
	}
	routeKey := c.method + " " + c.resource
	if c.catchAll {
		routeKey = "$default"
	}
	e := map[string]any{
		"version":        "2.0",
		"routeKey":       routeKey,
		"rawPath":        r.URL.EscapedPath(),
		"rawQueryString": r.URL.RawQuery,
		"headers":        headers,
		"requestContext": map[string]any{
			"accountId":    "123456789012",
			"apiId":        "local",
			"domainName":   r.Host,
			"domainPrefix": domainPrefix(r.Host),
			"http": map[string]any{
				"method":    r.Method,
				"path":      r.URL.Path,
				"protocol":  r.Proto,
				"sourceIp":  sourceIP(r),
				"userAgent": r.UserAgent(),
			},
			"requestId": id,
			"routeKey":  routeKey,
			"stage":     stage,
			"time":      now.UTC().Format("02/Jan/2006:15:04:05 -0700"),
			"timeEpoch": now.UnixMilli(),
		},
		"isBase64Encoded": false,
	}
	if len(cookies) > 0 {
		e["cookies"] = cookies
	}
	if q := r.URL.Query(); len(q) > 0 {
		single := map[string]string{}
		for k, vs := range q {
			single[k] = strings.Join(vs, ",")
		}
		e["queryStringParameters"] = single
	}
	if len(params) > 0 {
		e["pathParameters"] = params
	}
	if len(body) > 0 {
		b, b64 := bodyOf(body)
		e["body"], e["isBase64Encoded"] = b, b64
	}
	return e
}

// bodyOf is the event's body: nil when empty, the text when it is UTF-8,
// else base64 with isBase64Encoded.
func bodyOf(body []byte) (any, bool) {
	switch {
	case len(body) == 0:
		return nil, false
	case utf8.Valid(body):
		return string(body), false
	}
	return base64.StdEncoding.EncodeToString(body), true
}

func sourceIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func domainPrefix(host string) string {
	h, _, err := net.SplitHostPort(host)
	if err != nil {
		h = host
	}
	p, _, _ := strings.Cut(h, ".")
	return p
}

// response is a function's answer as it goes to the client.
type response struct {
	status  int
	header  http.Header
	cookies []string
	body    []byte
}

// parseResponse reads a proxy response: {statusCode, headers,
// multiValueHeaders, body, isBase64Encoded} (and cookies for 2.0). For 2.0,
// an answer that is not an object with statusCode is a 200 JSON body, as
// HTTP APIs read it.
func parseResponse(out []byte, version int) (*response, error) {
	var probe map[string]json.RawMessage
	isObject := json.Unmarshal(out, &probe) == nil && probe != nil
	if version == V2 && (!isObject || probe["statusCode"] == nil) {
		if !json.Valid(out) {
			return nil, fmt.Errorf("the function's output is not JSON")
		}
		h := http.Header{}
		h.Set("Content-Type", "application/json")
		return &response{status: http.StatusOK, header: h, body: out}, nil
	}
	if !isObject {
		return nil, fmt.Errorf("the function's output is not a JSON object")
	}
	var p struct {
		StatusCode        json.Number      `json:"statusCode"`
		Headers           map[string]any   `json:"headers"`
		MultiValueHeaders map[string][]any `json:"multiValueHeaders"`
		Body              *string          `json:"body"`
		IsBase64Encoded   bool             `json:"isBase64Encoded"`
		Cookies           []string         `json:"cookies"`
	}
	if err := json.Unmarshal(out, &p); err != nil {
		return nil, fmt.Errorf("malformed proxy response: %v", err)
	}
	status, err := strconv.Atoi(p.StatusCode.String())
	if err != nil || status < 100 || status > 599 {
		return nil, fmt.Errorf("malformed proxy response: statusCode %q", p.StatusCode)
	}
	resp := &response{status: status, header: http.Header{}, cookies: p.Cookies}
	for k, vs := range p.MultiValueHeaders {
		for _, v := range vs {
			resp.header.Add(k, scalarText(v))
		}
	}
	for k, v := range p.Headers {
		resp.header.Set(k, scalarText(v))
	}
	if p.Body != nil {
		resp.body = []byte(*p.Body)
		if p.IsBase64Encoded {
			if resp.body, err = base64.StdEncoding.DecodeString(*p.Body); err != nil {
				return nil, fmt.Errorf("malformed proxy response: body is not base64: %v", err)
			}
		}
	}
	return resp, nil
}

func scalarText(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case nil:
		return ""
	}
	b, _ := json.Marshal(v)
	return string(b)
}
