package server

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/switchboard-gateway/switchboard/internal/eventbridge"
	"github.com/switchboard-gateway/switchboard/internal/sqs"
)

// awsJSONTarget reports whether r is a call of an AWS JSON API served on
// the listener's root (POST / with X-Amz-Target), such as PutEvents.
func awsJSONTarget(r *http.Request) bool {
	return r.Method == http.MethodPost && r.URL.Path == "/" && r.Header.Get("X-Amz-Target") != ""
}

// eventRouter compiles the configured rules: a pattern or a template that is
// not understood fails the build, naming the rule and the reason.
func (b *builder) eventRouter(s *Server) (*eventbridge.Router, error) {
	ec := b.cfg.Events
	var rules []eventbridge.Rule
	for _, rc := range ec.Rules {
		if rc.Disabled {
			continue
		}
		raw, err := json.Marshal(rc.Pattern)
		if err != nil {
			return nil, fmt.Errorf("events rule %q: pattern: %w", rc.Name, err)
		}
		p, err := eventbridge.ParsePattern(raw)
		if err != nil {
			return nil, fmt.Errorf("events rule %q: %w", rc.Name, err)
		}
		rule := eventbridge.Rule{Name: rc.Name, Bus: rc.Bus, Pattern: p}
		for i, tc := range rc.Targets {
			t := eventbridge.RuleTarget{ID: tc.ID, MaxAttempts: tc.MaxAttempts, MaxAge: time.Duration(tc.MaxAge)}
			switch {
			case tc.Queue != "":
				t.Kind, t.Target = "queue", eventbridge.QueueTarget{Store: s.queues, Queue: tc.Queue}
				if t.ID == "" {
					t.ID = tc.Queue
				}
			case tc.Function != "":
				f, err := b.function(tc.Function)
				if err != nil {
					return nil, fmt.Errorf("events rule %q: %w", rc.Name, err)
				}
				t.Kind, t.Target = "function", eventbridge.FunctionTarget{Invoke: f.InvokeRaw}
				if t.ID == "" {
					t.ID = tc.Function
				}
			default:
				topic, err := eventbridge.ParseTemplate(tc.Topic)
				if err != nil {
					return nil, fmt.Errorf("events rule %q: targets[%d].topic: %w", rc.Name, i, err)
				}
				tt := eventbridge.TopicTarget{Hub: b.hub, Topic: topic}
				if tc.Data != "" {
					if tt.Data, err = eventbridge.ParseTemplate(tc.Data); err != nil {
						return nil, fmt.Errorf("events rule %q: targets[%d].data: %w", rc.Name, i, err)
					}
				}
				t.Kind, t.Target = "topic", tt
				if t.ID == "" {
					t.ID = "topic" + strconv.Itoa(i)
				}
			}
			rule.Targets = append(rule.Targets, t)
		}
		rules = append(rules, rule)
	}
	r := eventbridge.NewRouter(eventbridge.Options{Rules: rules, Buses: ec.Buses, Metrics: s.events, Logger: b.opts.Logger})
	b.closers = append(b.closers, r)
	return r, nil
}

// eventsAPI serves PutEvents into b's rules.
func (b *builder) eventsAPI(s *Server) *eventbridge.API {
	return eventbridge.NewAPI(eventbridge.APIOptions{Router: b.events, Region: b.cfg.Environment["AWS_REGION"], Metrics: s.events})
}

// awsJSON dispatches the AWS JSON APIs of the listener's root by their
// X-Amz-Target; any other request for the root is not found.
func awsJSON(events, sqsAPI http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !awsJSONTarget(r) {
			http.NotFound(w, r)
			return
		}
		if strings.HasPrefix(r.Header.Get("X-Amz-Target"), eventbridge.TargetPrefix) {
			events.ServeHTTP(w, r)
			return
		}
		if strings.HasPrefix(r.Header.Get("X-Amz-Target"), sqs.TargetPrefix) {
			sqsAPI.ServeHTTP(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprintf(w, "{\"__type\":\"UnknownOperationException\",\"message\":%q}\n", "unknown X-Amz-Target "+r.Header.Get("X-Amz-Target"))
	})
}
