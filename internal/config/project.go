package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Kind is what a file holds.
type Kind int

// The kinds of file serve runs.
const (
	// KindConfig is Switchboard's own YAML configuration.
	KindConfig Kind = iota
	// KindServerless is a Serverless Framework project.
	KindServerless
	// KindTemplate is a SAM or CloudFormation template.
	KindTemplate
)

func (k Kind) String() string {
	switch k {
	case KindServerless:
		return "a Serverless Framework project"
	case KindTemplate:
		return "a SAM/CloudFormation template"
	}
	return "a Switchboard configuration"
}

// ProjectFiles are the names FindProject looks for, in this order.
var ProjectFiles = []string{
	"serverless.yml", "serverless.yaml", "serverless.json", "serverless.ts", "serverless.js",
	"template.yaml", "template.yml", "template.json",
}

// ErrAmbiguous is returned by FindProject when a folder holds more than one project.
var ErrAmbiguous = errors.New("config: more than one project")

// FindProject returns the project file in dir: a serverless.yml (.yaml,
// .json, .ts, .js) or a template.yaml (.yml, .json) that is a SAM or
// CloudFormation template. It returns "" when there is none, and an error
// wrapping ErrAmbiguous, naming them, when there are several.
func FindProject(dir string) (string, error) {
	var found []string
	for _, name := range ProjectFiles {
		p := filepath.Join(dir, name)
		fi, err := os.Stat(p)
		if err != nil || !fi.Mode().IsRegular() {
			continue
		}
		if DetectKind(p) == KindConfig {
			continue // a template.yaml that is not a template
		}
		found = append(found, p)
	}
	switch len(found) {
	case 0:
		return "", nil
	case 1:
		return found[0], nil
	}
	where := "in " + dir
	if dir == "." {
		where = "in this folder"
	}
	return "", fmt.Errorf("%w %s: %s; name one with --project", ErrAmbiguous, where, strings.Join(found, " and "))
}

// DetectKind tells what the file at path holds: serverless.* files are
// Serverless Framework projects; a YAML or JSON file with
// AWSTemplateFormatVersion, the SAM transform, or Resources of AWS::* types
// is a template; anything else (a file that cannot be read too) is taken as
// Switchboard's configuration.
func DetectKind(path string) Kind {
	base := strings.ToLower(filepath.Base(path))
	if ext := filepath.Ext(base); strings.TrimSuffix(base, ext) == "serverless" {
		return KindServerless
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return KindConfig
	}
	var doc yaml.Node
	if yaml.Unmarshal(raw, &doc) != nil || len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return KindConfig
	}
	top := doc.Content[0].Content
	for i := 0; i+1 < len(top); i += 2 {
		k, v := top[i].Value, top[i+1]
		switch {
		case k == "AWSTemplateFormatVersion":
			return KindTemplate
		case k == "Transform" && strings.Contains(v.Value+fmt.Sprint(nodeValues(v)), samTransform):
			return KindTemplate
		case k == "Resources" && v.Kind == yaml.MappingNode:
			for j := 1; j < len(v.Content); j += 2 {
				r := v.Content[j]
				for n := 0; r.Kind == yaml.MappingNode && n+1 < len(r.Content); n += 2 {
					if r.Content[n].Value == "Type" && strings.HasPrefix(r.Content[n+1].Value, "AWS::") {
						return KindTemplate
					}
				}
			}
		}
	}
	return KindConfig
}

func nodeValues(n *yaml.Node) []string {
	var out []string
	for _, c := range n.Content {
		out = append(out, c.Value)
	}
	return out
}

// LoadProject loads the project at path, a Serverless Framework project or
// a template, as DetectKind tells.
func LoadProject(path string, getenv func(string) string, flags Overrides) (*Config, error) {
	switch DetectKind(path) {
	case KindServerless:
		return LoadServerless(path, getenv, flags)
	case KindTemplate:
		return LoadTemplate(path, getenv, flags)
	}
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return nil, fmt.Errorf("%s: %w: not a project: want a serverless.yml (.yaml, .json, .ts, .js) or a SAM/CloudFormation template (AWSTemplateFormatVersion, Transform: %s, or Resources of AWS::* types); run Switchboard's own configuration with --config", path, ErrInvalid, samTransform)
}
