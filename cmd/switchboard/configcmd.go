package main

import (
	"flag"
	"fmt"
	"io"

	"github.com/switchboard-gateway/switchboard/internal/cli"
	"github.com/switchboard-gateway/switchboard/internal/config"
)

// reported is a failure the command has explained on stderr already: the
// process exits with code and prints nothing more.
type reported struct{ code int }

func (r *reported) Error() string { return fmt.Sprintf("exit status %d", r.code) }

// configHelp is the help text of `switchboard config`.
var configHelp = &cli.Help{
	Usage: []string{"switchboard config validate FILE | defaults"},
	Text: `validate checks a config file, a serverless.yml or a SAM template without
serving it: it prints "FILE: ok" and exits 0, or one line per problem
(FILE:LINE: key.path: what is wrong) and exits 1.
defaults prints the default configuration as commented YAML.

Every key is described in docs/config.md.`,
	Examples: []string{
		`switchboard config defaults > switchboard.yaml && switchboard config validate switchboard.yaml`,
	},
}

// configCommand runs `switchboard config ...`.
func configCommand(args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return cli.Usagef("config: no command given (validate or defaults)")
	}
	if args[0] != "validate" && cli.WantsHelp(args) {
		configHelp.Write(stdout, nil)
		return flag.ErrHelp
	}
	switch args[0] {
	case "validate":
		fs := cli.NewFlagSet("config validate")
		if err := cli.ParseFlags(fs, args[1:], configHelp, stdout); err != nil {
			return err
		}
		if fs.NArg() != 1 {
			return cli.Usagef("config validate: want one FILE")
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
			return &reported{code: cli.ExitFailure}
		}
		fmt.Fprintf(stdout, "%s: ok\n", path)
		return nil
	case "defaults":
		if len(args) > 1 {
			return cli.Usagef("config defaults: unexpected argument %q", args[1])
		}
		fmt.Fprint(stdout, config.DefaultsYAML())
		return nil
	case "help":
		configHelp.Write(stdout, nil)
		return nil
	}
	return cli.Usagef("config: unknown command %q%s", args[0], suggestion(args[0], []string{"validate", "defaults"}))
}

// suggestion is "; did you mean X?" when a command is near word.
func suggestion(word string, commands []string) string {
	if s := config.Suggest(word, commands); s != "" {
		return fmt.Sprintf("; did you mean %s?", s)
	}
	return ""
}
