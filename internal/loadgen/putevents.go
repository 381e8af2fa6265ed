package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
)

// eventsPublisher sends fanout's messages as EventBridge events, one
// PutEvents call of one entry each, to the listener that serves PutEvents
// (AWS JSON 1.1, as the AWS SDKs send it): the entry's detail is
// {"topic":T,"data":PAYLOAD}, for a rule whose target takes the topic and
// the data from it.
type eventsPublisher struct {
	url, token string
	client     *http.Client
	prefix     []byte // the body up to the payload
	suffix     []byte // the body after it
	body       []byte
}

// eventsMaxAnswer bounds the answer read: one entry's is under 200 bytes.
const eventsMaxAnswer = 64 << 10

func newEventsPublisher(mgmtURL, token, source, topic string) *eventsPublisher {
	// The detail is a JSON string holding JSON: the topic is encoded twice.
	// The payload needs no escaping in either (digits, '~', hex and 'x').
	t, _ := json.Marshal(topic)
	detailPrefix, _ := json.Marshal(`{"topic":` + string(t) + `,"data":"`)
	src, _ := json.Marshal(source)
	return &eventsPublisher{
		url: mgmtURL + "/", token: token,
		client: &http.Client{Transport: &http.Transport{DisableCompression: true}},
		prefix: []byte(`{"Entries":[{"Source":` + string(src) + `,"DetailType":"switchboard bench","Detail":` +
			string(detailPrefix[:len(detailPrefix)-1])),
		suffix: []byte(`\"}"}]}`),
	}
}

func (p *eventsPublisher) publish(ctx context.Context, payload []byte) error {
	p.body = append(append(append(p.body[:0], p.prefix...), payload...), p.suffix...)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.url, bytes.NewReader(p.body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	req.Header.Set("X-Amz-Target", "AWSEvents.PutEvents")
	if p.token != "" {
		req.Header.Set("Authorization", "Bearer "+p.token)
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, eventsMaxAnswer))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return &statusError{Status: resp.StatusCode, Body: string(answer)}
	}
	var out struct {
		FailedEntryCount int
		Entries          []struct{ ErrorCode, ErrorMessage string }
	}
	if err := json.Unmarshal(answer, &out); err != nil {
		return &statusError{Status: resp.StatusCode, Body: string(answer)}
	}
	if out.FailedEntryCount > 0 || len(out.Entries) != 1 {
		return &statusError{Status: resp.StatusCode, Body: "PutEvents entry failed: " + string(answer)}
	}
	return nil
}

// fatal: a refused event (an error answer, a failed entry) is counted and
// publishing goes on; a transport error ends it.
func (p *eventsPublisher) fatal(err error) bool {
	var se *statusError
	return !errors.As(err, &se)
}

func (p *eventsPublisher) close() { p.client.CloseIdleConnections() }
