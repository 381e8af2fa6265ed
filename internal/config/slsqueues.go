package config

import (
	"fmt"
	"slices"

	"go.yaml.in/yaml/v3"
)

// slsResources reads a Serverless project's resources: the
// AWS::SQS::Queue resources of resources.Resources become queues; every
// other resource and section is listed in the warnings. The evaluator it
// returns resolves the functions' sqs events (an arn may be Fn::GetAtt).
func slsResources(node yaml.Node, region string, warn func(string)) (*cfnEval, []Queue, error) {
	e := &cfnEval{
		pseudo: map[string]any{"AWS::Region": region, "AWS::AccountId": TemplateAccountID, "AWS::Partition": "aws",
			"AWS::URLSuffix": "amazonaws.com"},
		conds: map[string]bool{}, condBusy: map[string]bool{},
		physical: map[string]string{}, resources: map[string]cfnResource{}, params: map[string]any{},
		warn: warn,
	}
	if node.IsZero() {
		return e, nil, nil
	}
	budget := cfnMaxNodes
	v, err := cfnValue(&node, 0, &budget)
	if err != nil {
		return nil, nil, fmt.Errorf("resources: %w: %v", ErrInvalid, err)
	}
	top, ok := v.(map[string]any)
	if !ok {
		return nil, nil, fmt.Errorf("resources: %w: want a map with Resources", ErrInvalid)
	}
	for _, k := range sortedKeys(top) {
		if k != "Resources" {
			warn(fmt.Sprintf("resources.%s is not read", k))
		}
	}
	res, _ := top["Resources"].(map[string]any)
	for _, id := range sortedKeys(res) {
		m, _ := res[id].(map[string]any)
		typ, _ := m["Type"].(string)
		r := cfnResource{Type: typ}
		r.Properties, _ = m["Properties"].(map[string]any)
		if name, ok := r.Properties["QueueName"].(string); ok && typ == "AWS::SQS::Queue" && name != "" {
			e.physical[id] = name
		}
		e.resources[id] = r
	}
	var queues []Queue
	for _, id := range sortedKeys(e.resources) {
		r := e.resources[id]
		if r.Type != "AWS::SQS::Queue" {
			warn(fmt.Sprintf("resources.Resources.%s (%s) is not run locally", id, r.Type))
			continue
		}
		at := "resources.Resources." + id + ".Properties"
		pv, err := e.resolve(map[string]any(r.Properties), at)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: %v", ErrInvalid, err)
		}
		p, _ := pv.(map[string]any)
		for _, k := range sortedKeys(p) {
			if !slices.Contains(samProperties["AWS::SQS::Queue"], k) {
				warn(fmt.Sprintf("%s.%s is not applied locally", at, k))
			}
		}
		q, err := cfnQueue(id, p, at, warn)
		if err != nil {
			return nil, nil, err
		}
		queues = append(queues, q)
	}
	return e, queues, nil
}

// slsSQS reads a function's sqs event: an ARN, or {arn, batchSize,
// maximumBatchingWindow, functionResponseType, maximumConcurrency,
// enabled}.
func slsSQS(node yaml.Node, e *cfnEval, at, fn string, warn func(string)) (sqsEvent, error) {
	budget := cfnMaxNodes
	v, err := cfnValue(&node, 0, &budget)
	if err != nil {
		return sqsEvent{}, fmt.Errorf("%s: %w: %v", at, ErrInvalid, err)
	}
	if v, err = e.resolve(v, at); err != nil {
		return sqsEvent{}, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	props := map[string]any{}
	switch t := v.(type) {
	case string:
		props["Queue"] = t
	case map[string]any:
		for k, x := range t {
			switch k {
			case "arn":
				props["Queue"] = x
			case "batchSize":
				props["BatchSize"] = x
			case "maximumBatchingWindow":
				props["MaximumBatchingWindowInSeconds"] = x
			case "functionResponseType":
				props["FunctionResponseTypes"] = []any{x}
			case "maximumConcurrency":
				props["ScalingConfig"] = map[string]any{"MaximumConcurrency": x}
			case "enabled":
				props["Enabled"] = x
			default:
				props[k] = x // listed as not applied
			}
		}
	default:
		return sqsEvent{}, fmt.Errorf("%s: %w: want a queue's ARN or a map with arn", at, ErrInvalid)
	}
	return sqsTrigger(fn, props, at, warn)
}
