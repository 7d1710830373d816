// Package network gives each instance its own network namespace on the
// node's bridge through CNI (bridge + host-local IPAM plugins from the
// containernetworking-plugins package). It owns the netns bind mounts and
// the IPAM state under the agent's state directory, and must never touch
// containers or the host's other interfaces beyond the bridge it creates.
package network
