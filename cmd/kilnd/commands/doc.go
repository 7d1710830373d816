// Package commands builds the `kilnd` command: one subcommand per server role
// (apiserver, controller, scheduler, autoscaler, activator, xds, gateway,
// agent) and `dev`, which runs every role in one process on an embedded
// etcd. It is wiring only: flags in, constructors called, errors out. Role
// logic lives in the role's own package.
package commands
