// Package runtime runs instances as containerd containers (runc): it pulls
// images, creates and starts containers with the instance's environment,
// network namespace and log file, stops and removes them, and lists what is
// running so the agent can re-adopt it after a restart. All its containers
// live in one containerd namespace. It must never decide what should run:
// that is the agent's job, from placements.
package runtime
