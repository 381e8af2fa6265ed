// Package eventbridge serves EventBridge's PutEvents on the gateway's
// listener (AWS JSON 1.1, X-Amz-Target: AWSEvents.PutEvents), with AWS's
// per-entry results, limits and error shapes, and routes the events it
// accepts through rules (event patterns) to their targets: a function or a
// topic's subscribers, retried with backoff. It owns the wire format, the
// pattern language and the deliveries; credentials are checked by whoever
// serves it.
package eventbridge

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/switchboard-gateway/switchboard/internal/apigw"
	"github.com/switchboard-gateway/switchboard/internal/metrics"
)

// Limits of PutEvents, as AWS has them.
const (
	MaxEntries      = 10
	MaxRequestBytes = 256 << 10 // the entries' total size, counted as AWS counts it
)

// TargetPrefix starts the X-Amz-Target of every operation this API serves.
const TargetPrefix = "AWSEvents."

// APIOptions configures the API. The zero value of every field but Router works.
type APIOptions struct {
	// Router receives the accepted events. Required.
	Router *Router
	// Region and Account fill the event's region and account. Empty means
	// us-east-1 and 123456789012, as local emulators use.
	Region, Account string
	// Metrics counts entries; nil counts nothing.
	Metrics *metrics.Events
	// Now is the clock of the events' time. Nil means time.Now.
	Now func() time.Time
}

// API serves PutEvents. It is safe for concurrent use.
type API struct{ opts APIOptions }

// NewAPI returns the API.
func NewAPI(opts APIOptions) *API {
	if opts.Region == "" {
		opts.Region = "us-east-1"
	}
	if opts.Account == "" {
		opts.Account = "123456789012"
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &API{opts: opts}
}

// apiError is an answer in AWS JSON 1.1's error shape.
type apiError struct {
	status int
	kind   string
	msg    string
}

func (e *apiError) Error() string { return "eventbridge: " + e.kind + ": " + e.msg }

// ServeHTTP serves POST / with an X-Amz-Target of TargetPrefix.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id := apigw.NewUUID()
	w.Header().Set("X-Amzn-RequestId", id)
	out, err := a.serve(w, r)
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	if err != nil {
		var ae *apiError
		if !errors.As(err, &ae) {
			ae = &apiError{http.StatusInternalServerError, "InternalException", err.Error()}
		}
		w.Header().Set("X-Amzn-ErrorType", ae.kind)
		w.WriteHeader(ae.status)
		_ = json.NewEncoder(w).Encode(map[string]string{"__type": ae.kind, "message": ae.msg})
		return
	}
	_ = json.NewEncoder(w).Encode(out)
}

type putEventsInput struct {
	Entries []entry `json:"Entries"`
}

type entry struct {
	Source       *string         `json:"Source"`
	DetailType   *string         `json:"DetailType"`
	Detail       *string         `json:"Detail"`
	EventBusName string          `json:"EventBusName"`
	Resources    []string        `json:"Resources"`
	Time         json.RawMessage `json:"Time"` // epoch seconds, as the SDKs send it
	TraceHeader  string          `json:"TraceHeader"`
}

type resultEntry struct {
	EventID      string `json:"EventId,omitempty"`
	ErrorCode    string `json:"ErrorCode,omitempty"`
	ErrorMessage string `json:"ErrorMessage,omitempty"`
}

type putEventsOutput struct {
	FailedEntryCount int           `json:"FailedEntryCount"`
	Entries          []resultEntry `json:"Entries"`
}

// Event is the envelope EventBridge delivers to targets, its fields in
// EventBridge's order.
type Event struct {
	Version    string          `json:"version"`
	ID         string          `json:"id"`
	DetailType string          `json:"detail-type"`
	Source     string          `json:"source"`
	Account    string          `json:"account"`
	Time       string          `json:"time"`
	Region     string          `json:"region"`
	Resources  []string        `json:"resources"`
	Detail     json.RawMessage `json:"detail"`
}

func (a *API) serve(w http.ResponseWriter, r *http.Request) (any, error) {
	op, _ := strings.CutPrefix(r.Header.Get("X-Amz-Target"), TargetPrefix)
	if op != "PutEvents" {
		return nil, &apiError{http.StatusBadRequest, "UnknownOperationException", fmt.Sprintf("operation %q is not supported: this endpoint serves PutEvents", op)}
	}
	// The body holds the entries and their JSON: allow for the encoding
	// beyond the entries' own limit.
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 4*MaxRequestBytes))
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return nil, &apiError{http.StatusRequestEntityTooLarge, "ValidationException", "Total size of the entries in the request is over the limit."}
	}
	if err != nil {
		return nil, &apiError{http.StatusBadRequest, "SerializationException", "reading the request: " + err.Error()}
	}
	var in putEventsInput
	if err := json.Unmarshal(body, &in); err != nil {
		return nil, &apiError{http.StatusBadRequest, "SerializationException", "Start of structure or map found where not expected: " + err.Error()}
	}
	switch {
	case len(in.Entries) == 0:
		return nil, &apiError{http.StatusBadRequest, "ValidationException", "1 validation error detected: Value null at 'entries' failed to satisfy constraint: Member must not be null"}
	case len(in.Entries) > MaxEntries:
		return nil, &apiError{http.StatusBadRequest, "ValidationException", fmt.Sprintf("1 validation error detected: Value at 'entries' failed to satisfy constraint: Member must have length less than or equal to %d", MaxEntries)}
	}
	total := 0
	for _, e := range in.Entries {
		total += e.size()
	}
	if total > MaxRequestBytes {
		return nil, &apiError{http.StatusBadRequest, "ValidationException", "Total size of the entries in the request is over the limit."}
	}
	out := putEventsOutput{Entries: make([]resultEntry, len(in.Entries))}
	for i, e := range in.Entries {
		res := a.put(e)
		if res.ErrorCode != "" {
			out.FailedEntryCount++
			a.opts.Metrics.Refuse(res.ErrorCode)
		}
		out.Entries[i] = res
	}
	return out, nil
}

// size counts an entry as AWS does: its time (14 bytes), source, detail
// type, detail and resources, in UTF-8 bytes.
func (e entry) size() int {
	n := 0
	if len(e.Time) > 0 && string(e.Time) != "null" {
		n += 14
	}
	for _, s := range []*string{e.Source, e.DetailType, e.Detail} {
		if s != nil {
			n += len(*s)
		}
	}
	for _, r := range e.Resources {
		n += len(r)
	}
	return n
}

func invalid(name string) resultEntry {
	return resultEntry{ErrorCode: "InvalidArgument", ErrorMessage: fmt.Sprintf("Parameter %s is not valid. Reason: %s is a required argument.", name, name)}
}

// put checks one entry and hands it to the router.
func (a *API) put(e entry) resultEntry {
	switch {
	case e.Source == nil || *e.Source == "":
		return invalid("Source")
	case e.DetailType == nil || *e.DetailType == "":
		return invalid("DetailType")
	case e.Detail == nil || *e.Detail == "":
		return invalid("Detail")
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal([]byte(*e.Detail), &obj); err != nil || obj == nil {
		return resultEntry{ErrorCode: "MalformedDetail", ErrorMessage: "Detail is malformed."}
	}
	var compact bytes.Buffer // the detail as sent, without its white space
	if err := json.Compact(&compact, []byte(*e.Detail)); err != nil {
		return resultEntry{ErrorCode: "MalformedDetail", ErrorMessage: "Detail is malformed."}
	}
	detail := compact.Bytes()
	bus := busName(e.EventBusName)
	if !a.opts.Router.HasBus(bus) {
		return resultEntry{ErrorCode: "NotFoundException", ErrorMessage: "Event bus " + bus + " does not exist."}
	}
	t := a.opts.Now()
	if len(e.Time) > 0 && string(e.Time) != "null" {
		var secs float64
		if err := json.Unmarshal(e.Time, &secs); err != nil {
			return resultEntry{ErrorCode: "InvalidArgument", ErrorMessage: "Parameter Time is not valid. Reason: want epoch seconds."}
		}
		t = time.UnixMilli(int64(secs * 1000))
	}
	resources := e.Resources
	if resources == nil {
		resources = []string{}
	}
	ev := Event{Version: "0", ID: apigw.NewUUID(), DetailType: *e.DetailType, Source: *e.Source, Account: a.opts.Account,
		Time: t.UTC().Format("2006-01-02T15:04:05Z"), Region: a.opts.Region, Resources: resources, Detail: detail}
	raw, err := json.Marshal(ev)
	if err != nil { // the detail was checked: unreachable
		return resultEntry{ErrorCode: "InternalFailure", ErrorMessage: err.Error()}
	}
	if err := a.opts.Router.Route(bus, raw); err != nil {
		if errors.Is(err, ErrThrottled) {
			return resultEntry{ErrorCode: "ThrottlingException", ErrorMessage: "Too many deliveries are pending; retry later."}
		}
		return resultEntry{ErrorCode: "InternalFailure", ErrorMessage: err.Error()}
	}
	a.opts.Metrics.Accept(bus)
	return resultEntry{EventID: ev.ID}
}

// busName reads an EventBusName: empty, a name, or an ARN
// (arn:aws:events:region:account:event-bus/name).
func busName(s string) string {
	if s == "" {
		return DefaultBus
	}
	if strings.HasPrefix(s, "arn:") {
		if _, name, ok := strings.Cut(s, ":event-bus/"); ok {
			return name
		}
	}
	return s
}
