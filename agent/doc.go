// Package agent is kiln's node agent (`kilnd agent`): it registers the node
// on a lease, watches the placements the scheduler writes for this node,
// runs one instance per placement under containerd (pull, network, create,
// start, probe), puts a queue-proxy in front of each, reports every phase
// change under instances/<node>/ on its lease, stops instances whose
// placement goes away, and re-adopts running containers after a restart.
//
// The node lease (Config.LeaseTTL, default 5s) is the node's claim on its
// instances. A graceful stop leaves them running and the lease to run out,
// so edges keep routing to them and an agent restarted within the TTL
// takes them over, rewriting each ready record unchanged on its own lease
// (handoff.go). A lost lease fences the node: the cluster has dropped its
// records and re-places its instances, so every instance is stopped at
// once before the node registers again and runs what is placed on it then.
//
// One goroutine, Run's, owns the node's view: a store.Cache of
// placements/<node>/ fed through a store.Mirror. After every feed it asks
// plan (plan.go, pure: placements, live workers and the containers found
// at start in, what to adopt, start, stop and remove out) and acts on the
// answer; each instance then has a worker goroutine of its own
// (instance.go). containerd and CNI are reached through the small
// interfaces of deps.go, so the unit tests run the agent on an in-memory
// fake without root; the root tests run it on a private containerd. Run
// returns only once every goroutine it started has ended.
//
// An instance is a pod (pod.go, volumes.go): init containers run in order to
// completion, then the serving container and its sidecars start in one
// network namespace, sharing emptyDir volumes (removed with the instance)
// and claim directories under the volume root (kept).
//
// ConfigMaps and Secrets reach an instance as a kubelet gives them
// (sources.go, env.go, keyvolumes.go): placements name them, and the agent
// reads configmaps/<ns>/ and secrets/<ns>/ (opened with the encryption key
// file) read-only when it creates the instance: envFrom and env
// valueFrom, and secret, configMap and projected volumes written once on a
// per-instance tmpfs and mounted read-only. A projected service account
// token is a JWT signed with the agent's own key (token.go). A missing
// object or key that is not optional fails the instance with
// CreateContainerConfigError before any container starts; the incarnation
// retry picks the object up once it exists.
//
// Each instance's queue-proxy (queueproxy.go) is, with Config.QueueCommand,
// a kilnd queue process of its own in its own session, handed its port
// from the agent's pool as an inherited listener and called over
// STATE/queue/<instance>.sock every second (its fencing heartbeat). It
// outlives the agent: a restarted agent adopts a live queue-proxy serving
// the same target as it is, keeping the instance in rotation, and stops
// those whose instance has no container. Without QueueCommand (unit
// tests) the queue-proxy runs inside the agent.
//
// It trusts no placement (validate.go): names, image references, paths,
// ports and capabilities are checked before anything is created, and a bad
// placement fails its own instance with reason InvalidPlacement. A subPath
// is resolved inside its volume without following symlinks and bound
// through a pinned descriptor (subpath.go), so a container of the instance
// cannot redirect it to a host path. Containers get the cgroup limits of
// resources.limits (requests only place), the agent's --pids-limit and
// their securityContext (security.go); runAsNonRoot over an image that runs
// as root fails with reason CreateContainerConfigError.
//
// For autoscaling it streams every queue-proxy's per-second figures to the
// autoscaler leader (metrics.go), and it pins the image a revision resolved
// on this node (imagepin.go), so a wake-up from zero does not ask the
// registry again: about 20-30ms off every cold start.
//
// Not done yet: a warm spare per revision at zero. Measured with
// `go test -run '^$' -bench BenchmarkAutoscaling -benchtime 1x ./test/e2e/`
// (2 shared cores, two activators): cold start p50 118ms / p99 134ms, of
// which request -> scale written 0.8ms, scale -> placed 3.5ms, placed ->
// instance ready 109ms (containerd create + start, CNI bridge/host-local
// setup, first readiness probe) and ready -> first byte 5ms. Keeping, per
// revision that scaled to zero, one container created but not started with
// its network namespace set up would leave only the task start and the
// probe on that path. It was not done because it changes who owns a
// stopped instance's resources (spare lifetime, IP leases held while at
// zero, garbage collection of spares whose revision went away, node
// capacity accounting in the scheduler) and needs a placement to claim a
// spare by revision rather than by instance name; that wants its own change
// with tests, not a rushed one.
//
// A placement is immutable: an instance runs the spec it was placed with,
// and the scheduler replaces an instance by deleting its placement and
// creating another under a new name.
//
// It writes only nodes/<self> and instances/<self>/...; it never writes
// placements (the scheduler's), never writes configmaps/ or secrets/, and
// never reads the Knative registry: a placement carries everything needed
// to run an instance but the values of the objects it names.
package agent
