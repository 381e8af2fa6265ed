package main

import (
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/switchboard-gateway/switchboard/internal/config"
)

// Exit codes of `switchboard config validate`: 0 when the file is valid,
// exitInvalid when it is not, exitUsage for a command used wrongly (and
// every other error).
const (
	exitInvalid = 1
	exitUsage   = 2
)

// exitError ends the process with code; its message, when err is not nil,
// is printed first.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}

func (e *exitError) Unwrap() error { return e.err }

// exitCode is the process's exit code for run's error.
func exitCode(err error) int {
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return exitUsage
}

const configUsage = `Usage: switchboard config <command>

Commands:
  validate FILE   check a config file (or a serverless.yml or SAM template): prints
                  "FILE: ok" and exits 0, or one line per problem and exits 1
  defaults        print the default configuration as commented YAML

Every key is described in docs/config.md.
`

// configCommand runs `switchboard config ...`.
func configCommand(args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, configUsage)
		return errors.New("config: no command given")
	}
	switch args[0] {
	case "validate":
		fs := flag.NewFlagSet("config validate", flag.ContinueOnError)
		fs.SetOutput(stderr)
		fs.Usage = func() { fmt.Fprint(stderr, configUsage) }
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		if fs.NArg() != 1 {
			return errors.New("config validate: want one FILE")
		}
		path := fs.Arg(0)
		var err error
		if kind := config.DetectKind(path); kind == config.KindConfig {
			_, err = config.Load(path, getenv, config.Overrides{})
		} else {
			_, err = config.LoadProject(path, getenv, config.Overrides{})
		}
		if err != nil {
			fmt.Fprintln(stderr, err)
			return &exitError{code: exitInvalid}
		}
		fmt.Fprintf(stdout, "%s: ok\n", path)
		return nil
	case "defaults":
		if len(args) > 1 {
			return fmt.Errorf("config defaults: unexpected argument %q", args[1])
		}
		fmt.Fprint(stdout, config.DefaultsYAML())
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, configUsage)
		return nil
	}
	fmt.Fprint(stderr, configUsage)
	return fmt.Errorf("config: unknown command %q%s", args[0], suggestion(args[0], []string{"validate", "defaults"}))
}

// suggestion is "; did you mean X?" when a command is near word.
func suggestion(word string, commands []string) string {
	if s := config.Suggest(word, commands); s != "" {
		return fmt.Sprintf("; did you mean %s?", s)
	}
	return ""
}
