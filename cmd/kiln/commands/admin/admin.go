package admin

import "github.com/urfave/cli/v2"

// Command is `kiln admin`. Each subcommand lives in its own file.
var Command = &cli.Command{
	Name:  "admin",
	Usage: "administer the cluster (cluster-admin only)",
	Subcommands: []*cli.Command{
		tokenCommand,
	},
}
