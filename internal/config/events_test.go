package config_test

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-gateway/switchboard/internal/config"
)

// TestTemplateEventRules: an AWS::Events::Rule becomes a rule whose
// function targets are the template's functions, by GetAtt or by name; a
// target of another kind is named in a warning.
func TestTemplateEventRules(t *testing.T) {
	t.Parallel()
	cfg, err := loadTemplate(t, tmplWith("", "x")+`
  Bus:
    Type: AWS::Events::EventBus
    Properties: {Name: orders-bus}
  Rule:
    Type: AWS::Events::Rule
    Properties:
      EventBusName: !Ref Bus
      EventPattern:
        source: [shop.orders]
        detail: {total: [{numeric: [">", 0]}]}
      Targets:
        - {Arn: !GetAtt F.Arn, Id: push, RetryPolicy: {MaximumRetryAttempts: 2, MaximumEventAgeInSeconds: 60}}
        - {Arn: !GetAtt Named.Arn, Id: named}
        - {Arn: "arn:aws:sqs:us-east-1:123456789012:q", Id: queue}
  Off:
    Type: AWS::Events::Rule
    Properties:
      State: DISABLED
      EventPattern: '{"source": ["a"]}'
      Targets: [{Arn: !GetAtt F.Arn, Id: f}]
`, nil, config.Overrides{})
	if err != nil {
		t.Fatal(err)
	}
	want := []config.EventRule{
		{Name: "Off", Pattern: map[string]any{"source": []any{"a"}}, Disabled: true, Targets: []config.EventTarget{{ID: "f", Function: "F"}}},
		{Name: "Rule", Bus: "orders-bus", Pattern: map[string]any{"source": []any{"shop.orders"}, "detail": map[string]any{"total": []any{map[string]any{"numeric": []any{">", 0}}}}},
			Targets: []config.EventTarget{{ID: "push", Function: "F", MaxAttempts: 3, MaxAge: config.Duration(time.Minute)}, {ID: "named", Function: "Named"}}},
	}
	if !reflect.DeepEqual(cfg.Events.Rules, want) {
		t.Errorf("rules = %#v\nwant %#v", cfg.Events.Rules, want)
	}
	if !reflect.DeepEqual(cfg.Events.Buses, []string{"orders-bus"}) {
		t.Errorf("buses = %v, want [orders-bus]", cfg.Events.Buses)
	}
	if w := strings.Join(cfg.Warnings, "\n"); !strings.Contains(w, "target queue (arn:aws:sqs:us-east-1:123456789012:q) is not run") {
		t.Errorf("warnings lack the queue target:\n%s", w)
	}
}

// TestServerlessEventBridge: a function's eventBridge event becomes a rule
// that invokes it.
func TestServerlessEventBridge(t *testing.T) {
	t.Parallel()
	cfg, err := config.LoadServerless(writeServerless(t, `
service: shop
provider: {name: aws, runtime: nodejs20.x}
functions:
  push:
    handler: handler.push
    events:
      - eventBridge:
          eventBus: arn:aws:events:us-east-1:123456789012:event-bus/orders
          pattern:
            source: [shop.orders]
          retryPolicy: {maximumRetryAttempts: 0}
      - eventBridge:
          schedule: rate(1 minute)
`), func(string) string { return "" }, config.Overrides{})
	if err != nil {
		t.Fatal(err)
	}
	want := []config.EventRule{{Name: "functions.push.events[0].eventBridge", Bus: "orders",
		Pattern: map[string]any{"source": []any{"shop.orders"}}, Targets: []config.EventTarget{{ID: "push", Function: "push", MaxAttempts: 1}}}}
	if !reflect.DeepEqual(cfg.Events.Rules, want) {
		t.Errorf("rules = %#v\nwant %#v", cfg.Events.Rules, want)
	}
	if w := strings.Join(cfg.Warnings, "\n"); !strings.Contains(w, "functions.push.events[1].eventBridge is not run: it has no pattern") {
		t.Errorf("warnings lack the schedule:\n%s", w)
	}
}

// TestEventRulesValidate: a rule's name and targets are checked when the
// configuration is loaded.
func TestEventRulesValidate(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ yaml, want string }{
		{"events: {rules: [{pattern: {a: [b]}, targets: [{topic: t}]}]}", "events.rules[0].name: is required"},
		{"events: {rules: [{name: r, targets: [{topic: t}]}]}", "events.rules[0].pattern: is required"},
		{"events: {rules: [{name: r, pattern: {a: [b]}}]}", "no targets"},
		{"events: {rules: [{name: r, pattern: {a: [b]}, targets: [{topic: t, function: f}]}]}", "exactly one of function, queue or topic"},
		{"events: {rules: [{name: r, pattern: {a: [b]}, targets: [{function: nope}]}]}", `function "nope" is not defined`},
		{"events: {rules: [{name: r, pattern: {a: [b]}, targets: [{topic: t}]}, {name: r, pattern: {a: [b]}, targets: [{topic: t}]}]}", "declared twice"},
	} {
		_, err := config.Parse(strings.NewReader(tt.yaml))
		if err == nil {
			cfg, _ := config.Parse(strings.NewReader(tt.yaml))
			err = cfg.Validate()
		}
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: err = %v, want %q", tt.yaml, err, tt.want)
		}
	}
}
