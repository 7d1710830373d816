// Package runtime runs instances as containerd containers (runc): it pulls
// images, creates and starts containers with the instance's environment,
// network namespace and log file, stops and removes them, and lists what is
// running so the agent can re-adopt it after a restart. All its containers
// live in one containerd namespace. Every container is hardened
// (security.go): containerd's RuntimeDefault seccomp profile, Docker's
// default capability set, no_new_privs, a pids limit and cgroup cpu and
// memory limits, with a securityContext applied on top. It must never
// decide what should run: that is the agent's job, from placements.
package runtime
