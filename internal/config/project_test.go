package config_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/switchboard-gateway/switchboard/internal/config"
)

func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

const (
	samMinimal = "Transform: AWS::Serverless-2016-10-31\nResources: {}\n"
	cfnMinimal = "AWSTemplateFormatVersion: '2010-09-09'\nResources: {}\n"
	resOnly    = "Resources:\n  Api: {Type: AWS::ApiGatewayV2::Api}\n"
	notATmpl   = "listen: 127.0.0.1:3001\nroutes: {}\n"
)

func TestFindProject(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		files map[string]string
		want  string // a file name, or an error's text
		err   bool
	}{
		{"nothing", map[string]string{"README.md": "x"}, "", false},
		{"serverless.yml", map[string]string{"serverless.yml": "service: x\n"}, "serverless.yml", false},
		{"serverless.ts", map[string]string{"serverless.ts": "export default {}\n"}, "serverless.ts", false},
		{"serverless.json", map[string]string{"serverless.json": "{}"}, "serverless.json", false},
		{"SAM template.yaml", map[string]string{"template.yaml": samMinimal}, "template.yaml", false},
		{"CloudFormation template.yml", map[string]string{"template.yml": cfnMinimal}, "template.yml", false},
		{"Resources only, JSON", map[string]string{"template.json": `{"Resources": {"A": {"Type": "AWS::SQS::Queue"}}}`}, "template.json", false},
		{"template.yaml that is not a template", map[string]string{"template.yaml": notATmpl}, "", false},
		{"Switchboard config beside a project", map[string]string{"switchboard.yaml": notATmpl, "serverless.yml": "service: x\n"}, "serverless.yml", false},
		{"two projects", map[string]string{"serverless.yml": "service: x\n", "template.yaml": samMinimal}, "serverless.yml and", true},
		{"two templates", map[string]string{"template.yaml": samMinimal, "template.json": `{"AWSTemplateFormatVersion": "2010-09-09"}`}, "--project", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := writeFiles(t, tt.files)
			got, err := config.FindProject(dir)
			if tt.err {
				if !errors.Is(err, config.ErrAmbiguous) || !strings.Contains(err.Error(), tt.want) {
					t.Fatalf("FindProject = %q, %v; want ErrAmbiguous mentioning %q", got, err, tt.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := ""
			if tt.want != "" {
				want = filepath.Join(dir, tt.want)
			}
			if got != want {
				t.Errorf("FindProject = %q, want %q", got, want)
			}
		})
	}
}

func TestDetectKind(t *testing.T) {
	t.Parallel()
	dir := writeFiles(t, map[string]string{
		"serverless.yml": "service: x\n", "sam.yaml": samMinimal, "cfn.yaml": cfnMinimal, "res.yaml": resOnly,
		"switchboard.yaml": notATmpl, "list.yaml": "Transform: [AWS::Serverless-2016-10-31]\n", "bad.yaml": "a: [",
	})
	for name, want := range map[string]config.Kind{
		"serverless.yml": config.KindServerless, "sam.yaml": config.KindTemplate, "cfn.yaml": config.KindTemplate,
		"res.yaml": config.KindTemplate, "list.yaml": config.KindTemplate, "switchboard.yaml": config.KindConfig,
		"bad.yaml": config.KindConfig, "missing.yaml": config.KindConfig,
	} {
		if got := config.DetectKind(filepath.Join(dir, name)); got != want {
			t.Errorf("DetectKind(%s) = %v, want %v", name, got, want)
		}
	}
}

func TestLoadProjectRefusesAConfiguration(t *testing.T) {
	t.Parallel()
	dir := writeFiles(t, map[string]string{"switchboard.yaml": notATmpl})
	_, err := config.LoadProject(filepath.Join(dir, "switchboard.yaml"), func(string) string { return "" }, config.Overrides{})
	if !errors.Is(err, config.ErrInvalid) || !strings.Contains(err.Error(), "--config") {
		t.Errorf("LoadProject(a Switchboard configuration) = %v, want ErrInvalid naming --config", err)
	}
}
