package lambdaauth

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// policyDocument is the IAM policy an authorizer returns. Member names are
// IAM's (Version, Statement, Effect, ...); encoding/json matches them in any
// case, as aws-lambda-go's untagged struct produces them.
type policyDocument struct {
	Version   string     `json:"Version"`
	Statement statements `json:"Statement"`
}

// statements is a Statement member: one statement or a list of them.
type statements []statement

func (s *statements) UnmarshalJSON(b []byte) error {
	if t := strings.TrimSpace(string(b)); strings.HasPrefix(t, "{") {
		var one statement
		if err := json.Unmarshal(b, &one); err != nil {
			return err
		}
		*s = statements{one}
		return nil
	}
	var list []statement
	if err := json.Unmarshal(b, &list); err != nil {
		return err
	}
	*s = list
	return nil
}

type statement struct {
	Effect      string          `json:"Effect"`
	Action      stringList      `json:"Action"`
	NotAction   stringList      `json:"NotAction"`
	Resource    stringList      `json:"Resource"`
	NotResource stringList      `json:"NotResource"`
	Condition   json.RawMessage `json:"Condition"`
}

// stringList is a member that is one string or a list of strings; nil when
// absent.
type stringList []string

func (l *stringList) UnmarshalJSON(b []byte) error {
	if strings.TrimSpace(string(b)) == "null" {
		return errors.New("want a string or a list of strings, not null")
	}
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*l = stringList{one}
		return nil
	}
	var list []string
	if err := json.Unmarshal(b, &list); err != nil {
		return errors.New("want a string or a list of strings")
	}
	if list == nil {
		list = []string{}
	}
	*l = list
	return nil
}

// allows evaluates the policy for one action on one resource: true when an
// Allow statement matches and no Deny does.
func (p *policyDocument) allows(action, resource string) (bool, error) {
	allowed := false
	for i, s := range p.Statement {
		var deny bool
		switch {
		case strings.EqualFold(s.Effect, "Allow"):
		case strings.EqualFold(s.Effect, "Deny"):
			deny = true
		default:
			return false, fmt.Errorf("statement %d: Effect %q, want Allow or Deny", i, s.Effect)
		}
		am, err := s.matches(s.Action, s.NotAction, "Action", action, true)
		if err != nil {
			return false, fmt.Errorf("statement %d: %w", i, err)
		}
		rm, err := s.matches(s.Resource, s.NotResource, "Resource", resource, false)
		if err != nil {
			return false, fmt.Errorf("statement %d: %w", i, err)
		}
		conditional := len(s.Condition) > 0 && string(s.Condition) != "null" && string(s.Condition) != "{}"
		switch {
		case deny && am && rm:
			return false, nil // an explicit Deny wins
		case !deny && am && rm && !conditional:
			allowed = true
		}
	}
	return allowed, nil
}

// matches evaluates an element pair such as Action/NotAction: exactly one
// must be present.
func (s *statement) matches(in, notIn stringList, name, v string, fold bool) (bool, error) {
	switch {
	case in != nil && notIn != nil:
		return false, fmt.Errorf("both %s and Not%s", name, name)
	case in != nil:
		return anyMatch(in, v, fold), nil
	case notIn != nil:
		return !anyMatch(notIn, v, fold), nil
	}
	return false, fmt.Errorf("no %s or Not%s", name, name)
}

func anyMatch(patterns []string, v string, fold bool) bool {
	for _, p := range patterns {
		if fold {
			p, v = strings.ToLower(p), strings.ToLower(v)
		}
		if wildcardMatch(p, v) {
			return true
		}
	}
	return false
}

// wildcardMatch matches s against an IAM pattern: "*" is any run of
// characters (including none and "/"), "?" is one character. It runs in
// O(len(p)·len(s)) at worst, so hostile patterns cannot stall it.
func wildcardMatch(p, s string) bool {
	pi, si := 0, 0
	star, mark := -1, 0
	for si < len(s) {
		switch {
		case pi < len(p) && (p[pi] == '?' || p[pi] == s[si]):
			pi++
			si++
		case pi < len(p) && p[pi] == '*':
			star, mark = pi, si
			pi++
		case star >= 0:
			pi = star + 1
			mark++
			si = mark
		default:
			return false
		}
	}
	for pi < len(p) && p[pi] == '*' {
		pi++
	}
	return pi == len(p)
}
