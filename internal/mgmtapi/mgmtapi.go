// Package mgmtapi serves the @connections management API, wire-compatible
// with API Gateway's ApiGatewayManagementApi (PostToConnection,
// GetConnection, DeleteConnection), and Switchboard's extensions: listing
// connections, sending one message to a list of connections, publishing to
// a topic and broadcasting. It reaches the gateway through the Hub
// interface.
package mgmtapi

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/switchboard-gateway/switchboard/internal/apigw"
	"github.com/switchboard-gateway/switchboard/internal/conn"
	"github.com/switchboard-gateway/switchboard/internal/gateway"
	"github.com/switchboard-gateway/switchboard/internal/metrics"
)

// Hub is what the management API needs from the gateway.
type Hub interface {
	Send(ctx context.Context, connID string, data []byte) error
	Conn(ctx context.Context, connID string) (gateway.ConnInfo, error)
	Disconnect(ctx context.Context, connID string) error
	List(ctx context.Context, cursor string, limit int) ([]gateway.ConnInfo, string, error)
	Publish(ctx context.Context, topic string, data []byte) (int, error)
	Broadcast(ctx context.Context, data []byte) (int, error)
}

// Options configures the API. The zero value works. Every limit follows one
// convention: zero means its default, negative disables it.
type Options struct {
	// Stage is served as a path prefix besides the root: /{stage}/@connections/{id}.
	// Empty means "dev".
	Stage string
	// MaxPostBytes is the largest payload accepted; larger gets 413
	// PayloadTooLargeException. Zero means 131072 (API Gateway's); negative is unlimited.
	MaxPostBytes int64
	// MaxListLimit caps the page size of GET /@connections. Zero means 1000.
	MaxListLimit int
	// MaxListTopics caps the topics listed per connection by GET
	// /@connections; a connection with more is listed with the first ones,
	// "topicsTruncated": true and its "topicCount". With the subscription
	// caps it bounds a page's size. Zero means 32.
	MaxListTopics int
	// MaxRecipients caps the connection IDs of one POST /@connections (400
	// BadRequestException beyond). Zero means DefaultMaxRecipients;
	// negative is unlimited.
	MaxRecipients int
	// Logger receives internal errors. Nil means slog.Default().
	Logger *slog.Logger
	// Metrics counts calls by operation and status. Nil counts nowhere.
	Metrics *metrics.Metrics
}

func (o Options) withDefaults() Options {
	if o.Stage == "" {
		o.Stage = "dev"
	}
	if o.MaxPostBytes == 0 {
		o.MaxPostBytes = apigw.MaxPostBytes
	}
	if o.MaxListLimit == 0 {
		o.MaxListLimit = 1000
	}
	if o.MaxListTopics == 0 {
		o.MaxListTopics = 32
	}
	if o.MaxRecipients == 0 {
		o.MaxRecipients = DefaultMaxRecipients
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Metrics == nil {
		o.Metrics = metrics.New(nil)
	}
	return o
}

// API is the management API; Register mounts it on a ServeMux.
type API struct {
	hub  Hub
	opts Options
}

// New returns the management API over hub.
func New(hub Hub, opts Options) *API {
	return &API{hub: hub, opts: opts.withDefaults()}
}

// Mux is where Register adds the API's routes: an *http.ServeMux, or a
// server's own table of them.
type Mux interface {
	Handle(pattern string, handler http.Handler)
}

// Register adds the API's routes to mux, so that a server mounting it
// matches a request's path once, not once to find the API and again inside.
// The patterns, and their order, depend on Options.Stage alone.
func (a *API) Register(mux Mux) {
	for _, prefix := range []string{"", "/" + a.opts.Stage} {
		mux.Handle("POST "+prefix+"/@connections/{id}", a.wrap("PostToConnection", a.post))
		mux.Handle("GET "+prefix+"/@connections/{id}", a.wrap("GetConnection", a.get))
		mux.Handle("DELETE "+prefix+"/@connections/{id}", a.wrap("DeleteConnection", a.delete))
		mux.Handle("GET "+prefix+"/@connections", a.wrap("ListConnections", a.list))
		mux.Handle("POST "+prefix+"/@connections", a.wrap("PostToConnections", a.postMany))
		mux.Handle("POST "+prefix+"/@topics/{topic}", a.wrap("Publish", a.publish))
		mux.Handle("POST "+prefix+"/@broadcast", a.wrap("Broadcast", a.broadcast))
		a.registerUsers(mux, prefix)
		// Paths of the API with another method answer as API Gateway does,
		// not with net/http's 405.
		for _, p := range []string{"/@connections/", "/@connections", "/@topics/", "/@broadcast"} {
			mux.Handle(prefix+p, a.wrap("Unknown", a.notFound))
		}
	}
}

// NotFound answers a request that no route of the gateway matches, in
// API Gateway's shape: 403 ForbiddenException {"message":"Forbidden"} for
// /{stage} or /{stage}/@... with a stage other than Options.Stage (and not a
// path of the gateway's own such as @connections or _), as execute-api
// answers an unknown stage, else 404
// NotFoundException "No method found matching route ...". Both carry
// x-amzn-RequestId and x-amzn-ErrorType.
func (a *API) NotFound() http.Handler { return a.wrap("Unknown", a.notFound) }

func (a *API) notFound(_ http.ResponseWriter, r *http.Request) error {
	path := strings.TrimPrefix(r.URL.Path, "/")
	first, rest, _ := strings.Cut(path, "/")
	own := first == "" || first == a.opts.Stage || strings.HasPrefix(first, "@") || strings.HasPrefix(first, "_")
	if !own && (rest == "" || strings.HasPrefix(rest, "@")) {
		return errUnknownStage
	}
	return &apiError{Status: http.StatusNotFound, Type: apigw.ErrTypeNotFound,
		Message: fmt.Sprintf("No method found matching route %s for http method %s.", path, r.Method)}
}

// apiError is an error answered with an AWS-style error response.
type apiError struct {
	Status  int
	Type    string // x-amzn-ErrorType
	Message string // omitted from the body when empty, as for GoneException
	// Recipients, when set, is how many connections did get the message
	// (a publish or broadcast that reached this node's but not the others').
	Recipients *int
}

func (e *apiError) Error() string { return fmt.Sprintf("%d %s: %s", e.Status, e.Type, e.Message) }

var (
	errGone = &apiError{Status: http.StatusGone, Type: apigw.ErrTypeGone}
	errSlow = &apiError{Status: http.StatusTooManyRequests, Type: apigw.ErrTypeLimitExceeded, Message: "The connection's send buffer is full; it was closed as too slow"}
	// errUnknownStage is execute-api's answer for a stage it does not have.
	errUnknownStage = &apiError{Status: http.StatusForbidden, Type: apigw.ErrTypeForbidden, Message: "Forbidden"}
)

// statusRecorder remembers the status a handler wrote, for the metrics.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

func (a *API) wrap(operation string, h func(http.ResponseWriter, *http.Request) error) http.Handler {
	ok := a.opts.Metrics.ManagementRequests.WithLabelValues(operation, strconv.Itoa(http.StatusOK)) // the common case, resolved once
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		w := &statusRecorder{ResponseWriter: rw}
		defer func() {
			if status := cmp.Or(w.status, http.StatusOK); status == http.StatusOK {
				ok.Inc()
			} else {
				a.opts.Metrics.ManagementRequests.WithLabelValues(operation, strconv.Itoa(status)).Inc()
			}
		}()
		requestID := apigw.NewID()
		w.Header().Set("x-amzn-RequestId", requestID)
		err := h(w, r)
		if err == nil {
			return
		}
		var ae *apiError
		if !errors.As(err, &ae) {
			a.opts.Logger.Error("management API", "method", r.Method, "path", r.URL.Path, "err", err)
			ae = &apiError{Status: http.StatusInternalServerError, Type: "InternalServerErrorException", Message: "Internal server error"}
		}
		w.Header().Set("x-amzn-ErrorType", ae.Type)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(ae.Status)
		switch {
		case ae.Recipients != nil:
			_ = json.NewEncoder(w).Encode(struct {
				Message    string `json:"message"`
				Recipients int    `json:"recipients"`
			}{ae.Message, *ae.Recipients})
		case ae.Message != "":
			_ = json.NewEncoder(w).Encode(map[string]string{"message": ae.Message})
		default:
			_, _ = io.WriteString(w, "{}")
		}
	})
}

// connID reads the path's connection ID. One that no connection can have is
// gone at once, without asking the hub (or, later, a networked registry).
func connID(r *http.Request) (string, error) {
	id := r.PathValue("id")
	if !apigw.ValidID(id) {
		return "", errGone
	}
	return id, nil
}

func (a *API) hubErr(err error) error {
	switch {
	case errors.Is(err, conn.ErrGone):
		return errGone
	case errors.Is(err, conn.ErrSlowConsumer):
		return errSlow
	}
	return err
}

// readBody reads the whole payload, answering 413 past the limit.
func (a *API) readBody(r *http.Request) ([]byte, error) {
	limit := a.opts.MaxPostBytes
	var body io.Reader = r.Body
	if limit > 0 {
		body = io.LimitReader(r.Body, limit+1)
	}
	data, err := io.ReadAll(body)
	if err != nil {
		return nil, &apiError{Status: http.StatusBadRequest, Type: apigw.ErrTypeBadRequest, Message: "Could not read the request body"}
	}
	if limit > 0 && int64(len(data)) > limit {
		return nil, &apiError{Status: http.StatusRequestEntityTooLarge, Type: apigw.ErrTypePayloadTooLarge,
			Message: "Request payload exceeds the limit of " + strconv.FormatInt(limit, 10) + " bytes"}
	}
	return data, nil
}

func (a *API) post(w http.ResponseWriter, r *http.Request) error {
	data, err := a.readBody(r)
	if err != nil {
		return err
	}
	id, err := connID(r)
	if err != nil {
		return err
	}
	if err := a.hub.Send(r.Context(), id, data); err != nil {
		return a.hubErr(err)
	}
	w.WriteHeader(http.StatusOK)
	return nil
}

type identity struct {
	SourceIP  string `json:"sourceIp"`
	UserAgent string `json:"userAgent"`
}

// connection is GetConnection's body; the listing adds connectionId, topics and node.
type connection struct {
	ConnectionID string   `json:"connectionId,omitempty"`
	ConnectedAt  string   `json:"connectedAt"`
	Identity     identity `json:"identity"`
	LastActiveAt string   `json:"lastActiveAt"`
	Principal    string   `json:"principal,omitempty"`
	UserID       string   `json:"userId,omitempty"`
	Topics       []string `json:"topics,omitempty"`
	// Node is the node of a cluster holding the connection; absent on a node alone.
	Node string `json:"node,omitempty"`
	// TopicsTruncated and TopicCount are set when Topics lists only the first of TopicCount.
	TopicsTruncated bool `json:"topicsTruncated,omitempty"`
	TopicCount      int  `json:"topicCount,omitempty"`
}

func render(info gateway.ConnInfo) connection {
	return connection{
		ConnectedAt:  apigw.FormatTime(info.ConnectedAt),
		Identity:     identity{SourceIP: info.SourceIP, UserAgent: info.UserAgent},
		LastActiveAt: apigw.FormatTime(info.LastActiveAt),
	}
}

func (a *API) get(w http.ResponseWriter, r *http.Request) error {
	id, err := connID(r)
	if err != nil {
		return err
	}
	info, err := a.hub.Conn(r.Context(), id)
	if err != nil {
		return a.hubErr(err)
	}
	return writeJSON(w, http.StatusOK, render(info))
}

func (a *API) delete(w http.ResponseWriter, r *http.Request) error {
	id, err := connID(r)
	if err != nil {
		return err
	}
	if err := a.hub.Disconnect(r.Context(), id); err != nil {
		return a.hubErr(err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

type listResponse struct {
	Items      []connection `json:"items"`
	NextCursor string       `json:"nextCursor,omitempty"`
}

// list is GET /@connections?limit=N&cursor=C, an extension.
func (a *API) list(w http.ResponseWriter, r *http.Request) error {
	limit := 100
	if s := r.URL.Query().Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			return &apiError{Status: http.StatusBadRequest, Type: apigw.ErrTypeBadRequest, Message: "limit must be a positive integer"}
		}
		limit = min(n, a.opts.MaxListLimit)
	}
	infos, next, err := a.hub.List(r.Context(), r.URL.Query().Get("cursor"), limit)
	if err != nil {
		return err
	}
	resp := listResponse{Items: make([]connection, 0, len(infos)), NextCursor: next}
	for _, info := range infos {
		c := render(info)
		c.ConnectionID, c.Principal, c.Topics, c.Node = info.ConnID, info.Principal, info.Topics, info.Node
		c.UserID = info.User
		if n := a.opts.MaxListTopics; n >= 0 && len(c.Topics) > n {
			c.Topics, c.TopicsTruncated, c.TopicCount = c.Topics[:n], true, len(c.Topics)
		}
		resp.Items = append(resp.Items, c)
	}
	return writeJSON(w, http.StatusOK, resp)
}

type deliveryResponse struct {
	Recipients int `json:"recipients"`
}

// publish is POST /@topics/{topic}, an extension: the body goes to the topic's subscribers.
func (a *API) publish(w http.ResponseWriter, r *http.Request) error {
	topic := r.PathValue("topic")
	if strings.TrimSpace(topic) == "" {
		return &apiError{Status: http.StatusBadRequest, Type: apigw.ErrTypeBadRequest, Message: "topic is required"}
	}
	data, err := a.readBody(r)
	if err != nil {
		return err
	}
	n, err := a.hub.Publish(r.Context(), topic, data)
	if err != nil {
		return undelivered(n, err)
	}
	return writeJSON(w, http.StatusOK, deliveryResponse{Recipients: n})
}

// broadcast is POST /@broadcast, an extension: the body goes to every connection.
func (a *API) broadcast(w http.ResponseWriter, r *http.Request) error {
	data, err := a.readBody(r)
	if err != nil {
		return err
	}
	n, err := a.hub.Broadcast(r.Context(), data)
	if err != nil {
		return undelivered(n, err)
	}
	return writeJSON(w, http.StatusOK, deliveryResponse{Recipients: n})
}

// undelivered answers a publish or broadcast that reached this node's n
// recipients but that the bus did not take for the other nodes: 503
// ServiceUnavailableException, with the recipients it did reach, so the
// caller knows it may retry (a retry reaches this node's recipients again).
// The hub returns an error only for the other nodes (a node alone never
// fails here); the bus counted and logged it.
func undelivered(n int, _ error) error {
	return &apiError{Status: http.StatusServiceUnavailable, Type: ErrTypeServiceUnavailable, Recipients: &n,
		Message: fmt.Sprintf("Delivered to %d connections of this node; the other nodes of the cluster could not be reached", n)}
}

// ErrTypeServiceUnavailable is the x-amzn-ErrorType of a publish or
// broadcast the other nodes did not get.
const ErrTypeServiceUnavailable = "ServiceUnavailableException"

func writeJSON(w http.ResponseWriter, status int, v any) error {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v) // the status is sent; a failed write means the caller left
	return nil
}

// DefaultMaxRecipients is Options.MaxRecipients' default.
const DefaultMaxRecipients = 1000

// idBytes bounds what one connection ID takes in a POST /@connections body
// (quotes, comma and blanks included), for the body's size limit.
const idBytes = 64

// postManyRequest is the body of POST /@connections.
type postManyRequest struct {
	ConnectionIDs []string        `json:"connectionIds"`
	Data          json.RawMessage `json:"data"`
}

// postManyResponse says what became of each connection: IDs neither gone,
// slow nor failed were delivered to.
type postManyResponse struct {
	Delivered int      `json:"delivered"`
	Gone      []string `json:"gone"`   // no such connection (410 for PostToConnection)
	Slow      []string `json:"slow"`   // its queue overflowed; it is being closed (429)
	Failed    []string `json:"failed"` // the node holding it could not be reached
}

// concurrent is the optional ability of a hub whose Send may wait on
// another node: such sends run a few at a time.
type concurrent interface{ Nonblocking() bool }

// sendWorkers is how many sends of one POST /@connections may wait on
// other nodes at once.
const sendWorkers = 16

// postMany is POST /@connections, an extension: one message to each of
// the listed connections, wherever they are, with what became of each in
// the answer. "data" is the message: a JSON string is sent as its text,
// any other JSON value as written. An ID listed twice is sent to once.
func (a *API) postMany(w http.ResponseWriter, r *http.Request) error {
	limit := a.opts.MaxPostBytes
	if limit > 0 && a.opts.MaxRecipients > 0 {
		limit += int64(a.opts.MaxRecipients)*idBytes + 64
	} else {
		limit = -1
	}
	var body io.Reader = r.Body
	if limit > 0 {
		body = io.LimitReader(r.Body, limit+1)
	}
	raw, err := io.ReadAll(body)
	if err != nil {
		return &apiError{Status: http.StatusBadRequest, Type: apigw.ErrTypeBadRequest, Message: "Could not read the request body"}
	}
	if limit > 0 && int64(len(raw)) > limit {
		return &apiError{Status: http.StatusRequestEntityTooLarge, Type: apigw.ErrTypePayloadTooLarge,
			Message: "Request body exceeds the limit of " + strconv.FormatInt(limit, 10) + " bytes"}
	}
	var req postManyRequest
	if err := json.Unmarshal(raw, &req); err != nil {
		return badRequest("the body must be {\"connectionIds\": [...], \"data\": ...}: " + err.Error())
	}
	if len(req.Data) == 0 || string(req.Data) == "null" {
		return badRequest("\"data\" is required")
	}
	if n := a.opts.MaxRecipients; n > 0 && len(req.ConnectionIDs) > n {
		return badRequest("\"connectionIds\" lists " + strconv.Itoa(len(req.ConnectionIDs)) + " connections; at most " + strconv.Itoa(n) + " are allowed")
	}
	data := []byte(req.Data)
	if req.Data[0] == '"' {
		var text string
		if err := json.Unmarshal(req.Data, &text); err != nil {
			return badRequest("\"data\": " + err.Error())
		}
		data = []byte(text)
	}
	if max := a.opts.MaxPostBytes; max > 0 && int64(len(data)) > max {
		return &apiError{Status: http.StatusRequestEntityTooLarge, Type: apigw.ErrTypePayloadTooLarge,
			Message: "Request payload exceeds the limit of " + strconv.FormatInt(max, 10) + " bytes"}
	}
	ids := unique(req.ConnectionIDs)
	results := make([]error, len(ids))
	if c, ok := a.hub.(concurrent); ok && !c.Nonblocking() && len(ids) > 1 {
		a.sendConcurrently(r.Context(), ids, data, results)
	} else {
		for i, id := range ids {
			results[i] = a.sendOne(r.Context(), id, data)
		}
	}
	resp := postManyResponse{Gone: []string{}, Slow: []string{}, Failed: []string{}}
	for i, err := range results {
		switch {
		case err == nil:
			resp.Delivered++
		case errors.Is(err, conn.ErrGone):
			resp.Gone = append(resp.Gone, ids[i])
		case errors.Is(err, conn.ErrSlowConsumer):
			resp.Slow = append(resp.Slow, ids[i])
		default:
			a.opts.Logger.Warn("management API: PostToConnections", "connectionId", ids[i], "err", err)
			resp.Failed = append(resp.Failed, ids[i])
		}
	}
	return writeJSON(w, http.StatusOK, resp)
}

// sendOne sends data to id; an ID no connection can have is gone at once.
func (a *API) sendOne(ctx context.Context, id string, data []byte) error {
	if !apigw.ValidID(id) {
		return conn.ErrGone
	}
	return a.hub.Send(ctx, id, data)
}

// sendConcurrently sends data to ids, sendWorkers at a time, and puts each
// send's error in results; it returns when all are done.
func (a *API) sendConcurrently(ctx context.Context, ids []string, data []byte, results []error) {
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(sendWorkers, len(ids)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				results[i] = a.sendOne(ctx, ids[i], data)
			}
		}()
	}
	for i := range ids {
		next <- i
	}
	close(next)
	wg.Wait()
}

// unique returns ids without repeats, in their first order.
func unique(ids []string) []string {
	seen := make(map[string]struct{}, len(ids))
	out := ids[:0:0]
	for _, id := range ids {
		if _, ok := seen[id]; !ok {
			seen[id] = struct{}{}
			out = append(out, id)
		}
	}
	return out
}

func badRequest(msg string) error {
	return &apiError{Status: http.StatusBadRequest, Type: apigw.ErrTypeBadRequest, Message: msg}
}
