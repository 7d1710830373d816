package commands

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/kiln-serving/kiln/cmd/kiln/commands/admin"
	"github.com/kiln-serving/kiln/cmd/kiln/commands/apply"
	"github.com/kiln-serving/kiln/cmd/kiln/commands/client"
	kconfig "github.com/kiln-serving/kiln/cmd/kiln/commands/config"
	"github.com/kiln-serving/kiln/cmd/kiln/commands/domain"
	"github.com/kiln-serving/kiln/cmd/kiln/commands/revision"
	"github.com/kiln-serving/kiln/cmd/kiln/commands/route"
	"github.com/kiln-serving/kiln/cmd/kiln/commands/secret"
	"github.com/kiln-serving/kiln/cmd/kiln/commands/service"
)

// NewApp returns the kiln command tree. It never calls os.Exit; use Run
// for kn-style error printing and exit codes.
func NewApp() *cli.App {
	return &cli.App{
		Name:                      "kiln",
		Usage:                     "manage Knative Serving workloads on a kiln cluster",
		HideVersion:               true,
		DisableSliceFlagSeparator: true, // --env A=x,y is one value, as in kn
		Flags: []cli.Flag{
			&cli.StringFlag{Name: client.FlagServer, EnvVars: []string{"KILN_SERVER"}, Value: client.DefaultServer,
				Usage: "kiln API server URL, or several apiservers of one cluster separated by commas: a request that cannot reach one goes to the next"},
			&cli.StringFlag{Name: client.FlagTokenFile, EnvVars: []string{"KILN_TOKEN_FILE"}, Value: client.DefaultTokenFile(),
				Usage: "file holding the API bearer token"},
			&cli.StringFlag{Name: client.FlagToken, EnvVars: []string{"KILN_TOKEN"},
				Usage: "API bearer token (overrides --token-file)"},
			&cli.StringFlag{Name: client.FlagCAFile, EnvVars: []string{"KILN_CA_FILE"}, Value: client.DefaultCAFile(),
				Usage: "CA certificate that signs the API server's certificate (default: ~/.kiln/ca.crt or kilnd dev's CA when present, else the system's)"},
			&cli.StringFlag{Name: client.FlagClientCert, EnvVars: []string{"KILN_CLIENT_CERTIFICATE"},
				Usage: "client certificate (PEM) to authenticate with, instead of a token"},
			&cli.StringFlag{Name: client.FlagClientKey, EnvVars: []string{"KILN_CLIENT_KEY"},
				Usage: "private key of --client-certificate"},
			&cli.StringFlag{Name: client.FlagNamespace, Aliases: []string{"n"}, EnvVars: []string{"KILN_NAMESPACE"}, Value: "default",
				Usage: "namespace to work in"},
		},
		Commands: []*cli.Command{service.Command, revision.Command, route.Command, apply.Command, kconfig.Command, domain.Command, secret.Command, admin.Command},
		// Errors are printed once by Run, in kn's "Error: ..." form.
		ExitErrHandler: func(*cli.Context, error) {},
	}
}

// Run executes args (args[0] is the program name), printing output to
// stdout and "Error: <message>" to stderr. It returns the exit code.
func Run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	app := NewApp()
	app.Reader, app.Writer, app.ErrWriter = stdin, stdout, stderr
	if err := app.RunContext(ctx, Interspersed(app, args)); err != nil {
		fmt.Fprintf(stderr, "Error: %s\n", strings.TrimSpace(err.Error()))
		if ec, ok := err.(cli.ExitCoder); ok && ec.ExitCode() != 0 {
			return ec.ExitCode()
		}
		return 1
	}
	return 0
}

// Main is what cmd/kiln calls with os.Args; it returns the exit code.
func Main(args []string) int { return Run(context.Background(), args, os.Stdin, os.Stdout, os.Stderr) }

// Interspersed moves a leaf command's positional arguments after its
// flags, so `kiln service create hello --image x` parses like kn: urfave/cli
// v2 stops reading flags at the first positional argument.
func Interspersed(app *cli.App, args []string) []string {
	if len(args) < 2 {
		return args
	}
	out := []string{args[0]}
	rest := args[1:]
	flags := app.Flags
	cmds := app.Commands
	// Walk global flags and the command path.
	for len(rest) > 0 {
		a := rest[0]
		if strings.HasPrefix(a, "-") && a != "-" {
			n := flagArity(flags, a)
			if n > len(rest) {
				n = len(rest)
			}
			out = append(out, rest[:n]...)
			rest = rest[n:]
			continue
		}
		cmd := findCommand(cmds, a)
		if cmd == nil {
			break
		}
		out = append(out, a)
		rest = rest[1:]
		flags, cmds = cmd.Flags, cmd.Subcommands
		if len(cmds) == 0 {
			break
		}
	}
	var fl, pos, globals []string
	for len(rest) > 0 {
		a := rest[0]
		switch {
		case a == "--":
			pos = append(pos, rest[1:]...)
			rest = nil
		case strings.HasPrefix(a, "-") && a != "-" && !hasFlag(flags, a) && hasFlag(app.Flags, a):
			// kn accepts --namespace (and the other globals) after the
			// command; urfave/cli wants them before it.
			n := flagArity(app.Flags, a)
			if n > len(rest) {
				n = len(rest)
			}
			globals = append(globals, rest[:n]...)
			rest = rest[n:]
		case strings.HasPrefix(a, "-") && a != "-":
			n := flagArity(flags, a)
			if n > len(rest) {
				n = len(rest)
			}
			fl = append(fl, rest[:n]...)
			rest = rest[n:]
		default:
			pos = append(pos, a)
			rest = rest[1:]
		}
	}
	if len(globals) > 0 {
		out = append(append([]string{out[0]}, globals...), out[1:]...)
	}
	out = append(out, fl...)
	if len(pos) > 0 {
		out = append(out, "--")
		out = append(out, pos...)
	}
	return out
}

// hasFlag reports whether tok (-x, --name or --name=value) names one of flags.
func hasFlag(flags []cli.Flag, tok string) bool {
	name, _, _ := strings.Cut(strings.TrimLeft(tok, "-"), "=")
	for _, f := range flags {
		for _, n := range f.Names() {
			if n == name {
				return true
			}
		}
	}
	return false
}

// flagArity is how many tokens a flag occupies: 1 for booleans and
// --name=value, 2 for a value flag given as "--name value".
func flagArity(flags []cli.Flag, tok string) int {
	name := strings.TrimLeft(tok, "-")
	if strings.Contains(name, "=") {
		return 1
	}
	for _, f := range flags {
		for _, n := range f.Names() {
			if n != name {
				continue
			}
			if _, ok := f.(*cli.BoolFlag); ok {
				return 1
			}
			return 2
		}
	}
	if name == "help" || name == "h" {
		return 1
	}
	return 1 // unknown: let urfave/cli report it
}

func findCommand(cmds []*cli.Command, name string) *cli.Command {
	for _, c := range cmds {
		if c.Name == name {
			return c
		}
		for _, a := range c.Aliases {
			if a == name {
				return c
			}
		}
	}
	return nil
}
