package admin

import "github.com/urfave/cli/v2"

// Command is `kiln admin`. Each subcommand lives in its own file.
var Command = &cli.Command{
	Name:  "admin",
	Usage: "administer the cluster: API tokens (cluster-admin, through the API), kubeconfigs for kubectl and kn, and the kiln CA and role certificates (local files)",
	Subcommands: []*cli.Command{
		tokenCommand,
		tlsCommand,
		kubeconfigCommand,
	},
}
