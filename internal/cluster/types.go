package cluster

import "time"

// Node is written by the agent under nodes/<name>, on the agent's lease.
type Node struct {
	Name string `json:"name"`
	// Address is the host address the node's queue-proxies listen on.
	Address string `json:"address"`
	// APIAddress is host:port of the agent's node API (container logs),
	// which the apiserver calls; optional: empty when the agent serves
	// none.
	APIAddress string `json:"apiAddress,omitempty"`
	// CapacityMilliCPU and CapacityMemoryMiB are what the node offers to
	// instances. Instances counts the slots (max instances) the node runs.
	CapacityMilliCPU  int64             `json:"capacityMilliCPU"`
	CapacityMemoryMiB int64             `json:"capacityMemoryMiB"`
	MaxInstances      int               `json:"maxInstances"`
	Labels            map[string]string `json:"labels,omitempty"`
	StartedAt         time.Time         `json:"startedAt"`
}

// Activator is written by each activator under activators/<identity>, on
// its own lease, so a dead activator's record vanishes.
type Activator struct {
	Identity string `json:"identity"`
	// Address is host:port edges send requests to.
	Address   string    `json:"address"`
	StartedAt time.Time `json:"startedAt"`
}

// Scale is written by the autoscaler under scale/<namespace>/<revision>.
type Scale struct {
	Namespace string    `json:"namespace"`
	Revision  string    `json:"revision"`
	Desired   int       `json:"desired"`
	UpdatedAt time.Time `json:"updatedAt"`
	// ActivatorInPath tells the xds server to route the revision through
	// the activator (Knative's proxy mode) instead of straight to its
	// instances (serve mode): at zero, or when excess burst capacity is
	// negative.
	ActivatorInPath bool `json:"activatorInPath,omitempty"`
	// ExcessBurstCapacity is the autoscaler's last EBC figure (informational).
	ExcessBurstCapacity float64 `json:"excessBurstCapacity,omitempty"`
	// Panic is true while the autoscaler is in panic mode (informational).
	Panic bool `json:"panic,omitempty"`
}

// InstanceSpec is everything an agent needs to run one instance of a
// revision. The scheduler copies it from the Revision so the agent never
// reads the registry.
type InstanceSpec struct {
	Namespace     string            `json:"namespace"`
	Service       string            `json:"service,omitempty"`
	Configuration string            `json:"configuration,omitempty"`
	Revision      string            `json:"revision"`
	Image         string            `json:"image"`
	Command       []string          `json:"command,omitempty"`
	Args          []string          `json:"args,omitempty"`
	WorkingDir    string            `json:"workingDir,omitempty"`
	Env           map[string]string `json:"env,omitempty"`
	// EnvOrder keeps the user's order of Env keys.
	EnvOrder []string `json:"envOrder,omitempty"`
	// Port is the container port the app listens on (default 8080).
	Port int32 `json:"port"`
	// ContainerConcurrency is the hard per-instance limit (0 = unlimited).
	ContainerConcurrency int64 `json:"containerConcurrency"`
	// PortName is the serving port's name; "h2c" makes the queue-proxy
	// speak HTTP/2 cleartext to the app. Optional.
	PortName string `json:"portName,omitempty"`
	// TimeoutSeconds bounds requests and the drain on stop.
	TimeoutSeconds int64 `json:"timeoutSeconds"`
	// ResponseStartTimeoutSeconds bounds the time to a response's first
	// byte; IdleTimeoutSeconds the time between its writes. 0 means none.
	ResponseStartTimeoutSeconds int64 `json:"responseStartTimeoutSeconds,omitempty"`
	IdleTimeoutSeconds          int64 `json:"idleTimeoutSeconds,omitempty"`
	// ReadinessPath, when set and Readiness is nil, is probed with HTTP
	// GET; otherwise readiness is a TCP connect to Port. Records written
	// before Readiness existed carry only this.
	ReadinessPath string `json:"readinessPath,omitempty"`
	// Readiness and Liveness are the serving container's probes; nil
	// Readiness is a TCP connect to Port, nil Liveness none. Optional.
	Readiness *Probe `json:"readiness,omitempty"`
	Liveness  *Probe `json:"liveness,omitempty"`
	// MilliCPU and MemoryMiB are the requests: placement only.
	MilliCPU  int64 `json:"milliCPU,omitempty"`
	MemoryMiB int64 `json:"memoryMiB,omitempty"`
	// LimitMilliCPU and LimitMemoryMiB are the limits: the container's
	// cgroup. 0 means none.
	LimitMilliCPU  int64 `json:"limitMilliCPU,omitempty"`
	LimitMemoryMiB int64 `json:"limitMemoryMiB,omitempty"`
	// Security is the serving container's securityContext (pod-level
	// fields folded in); nil means the agent's hardened defaults.
	Security *Security `json:"security,omitempty"`

	// The fields below carry Knative's pod-spec extensions (feature flags
	// multi-container, emptyDir, persistent volume claims, init
	// containers); all are empty for a plain one-container revision, so
	// records written before they existed still mean the same.

	// ContainerName names the serving container (default user-container).
	ContainerName string `json:"containerName,omitempty"`
	// Mounts are the serving container's volume mounts.
	Mounts []VolumeMount `json:"mounts,omitempty"`
	// Sidecars are the revision's other containers: they start with the
	// serving container, share its network namespace (localhost) and
	// volumes, and live as long as the instance.
	Sidecars []ContainerSpec `json:"sidecars,omitempty"`
	// InitContainers run one at a time, in order, each to a successful
	// exit, before the serving container and sidecars start.
	InitContainers []ContainerSpec `json:"initContainers,omitempty"`
	// Volumes are what the mounts refer to.
	Volumes []Volume `json:"volumes,omitempty"`

	// EnvFrom and EnvRefs are the serving container's env sources (see
	// ContainerSpec). ServiceAccountName names the identity of projected
	// service account tokens ("" = default). All optional.
	EnvFrom            []EnvFromSource      `json:"envFrom,omitempty"`
	EnvRefs            map[string]EnvKeyRef `json:"envRefs,omitempty"`
	ServiceAccountName string               `json:"serviceAccountName,omitempty"`
}

// EnvFromSource imports every key of a ConfigMap or Secret (exactly one of
// the two is named) as a variable, Prefix prepended. Only references
// travel in placements: the agent reads the values when it starts the
// container, as a kubelet does.
type EnvFromSource struct {
	Prefix    string `json:"prefix,omitempty"`
	ConfigMap string `json:"configMap,omitempty"`
	Secret    string `json:"secret,omitempty"`
	// Optional starts the container even when the object is missing.
	Optional bool `json:"optional,omitempty"`
}

// EnvKeyRef is a variable's value held in one key of a ConfigMap or Secret
// (exactly one is named).
type EnvKeyRef struct {
	ConfigMap string `json:"configMap,omitempty"`
	Secret    string `json:"secret,omitempty"`
	Key       string `json:"key"`
	// Optional leaves the variable unset when the object or key is missing.
	Optional bool `json:"optional,omitempty"`
}

// Probe is one readiness or liveness check of the serving container, as a
// Kubernetes probe: exactly one of HTTPGet, TCPSocket, Exec and GRPC.
// The durations are in seconds; 0 takes the Kubernetes default (timeout 1,
// success 1, failure 3; period 10, but see the agent for readiness with
// period 0, Knative's aggressive startup probing).
type Probe struct {
	HTTPGet   *HTTPGetProbe `json:"httpGet,omitempty"`
	TCPSocket bool          `json:"tcpSocket,omitempty"`
	// Exec is a command run inside the serving container; exit 0 passes.
	Exec []string   `json:"exec,omitempty"`
	GRPC *GRPCProbe `json:"grpc,omitempty"`
	// Port is the container port probed by HTTPGet, TCPSocket and GRPC;
	// 0 means the serving port.
	Port                int32 `json:"port,omitempty"`
	InitialDelaySeconds int32 `json:"initialDelaySeconds,omitempty"`
	TimeoutSeconds      int32 `json:"timeoutSeconds,omitempty"`
	PeriodSeconds       int32 `json:"periodSeconds,omitempty"`
	SuccessThreshold    int32 `json:"successThreshold,omitempty"`
	FailureThreshold    int32 `json:"failureThreshold,omitempty"`
}

// HTTPGetProbe passes when a GET of Path answers 2xx or 3xx.
type HTTPGetProbe struct {
	Path string `json:"path,omitempty"`
	// Scheme is HTTP (default) or HTTPS (certificates not verified, as the
	// kubelet does).
	Scheme  string       `json:"scheme,omitempty"`
	Headers []HTTPHeader `json:"headers,omitempty"`
}

// HTTPHeader is one header an HTTP probe sends.
type HTTPHeader struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// GRPCProbe passes when the gRPC health service answers SERVING.
type GRPCProbe struct {
	Service string `json:"service,omitempty"`
}

// ContainerSpec is a sidecar or init container of an instance.
type ContainerSpec struct {
	Name       string            `json:"name"`
	Image      string            `json:"image"`
	Command    []string          `json:"command,omitempty"`
	Args       []string          `json:"args,omitempty"`
	WorkingDir string            `json:"workingDir,omitempty"`
	Env        map[string]string `json:"env,omitempty"`
	EnvOrder   []string          `json:"envOrder,omitempty"`
	// EnvFrom is imported first; then the variables of EnvOrder, each from
	// Env or EnvRefs, override it (Kubernetes' precedence).
	EnvFrom   []EnvFromSource      `json:"envFrom,omitempty"`
	EnvRefs   map[string]EnvKeyRef `json:"envRefs,omitempty"`
	Mounts    []VolumeMount        `json:"mounts,omitempty"`
	MilliCPU  int64                `json:"milliCPU,omitempty"`
	MemoryMiB int64                `json:"memoryMiB,omitempty"`
	// Limits and Security as on InstanceSpec.
	LimitMilliCPU  int64     `json:"limitMilliCPU,omitempty"`
	LimitMemoryMiB int64     `json:"limitMemoryMiB,omitempty"`
	Security       *Security `json:"security,omitempty"`
}

// Security is what a revision's securityContext asks of one container, as
// the agent applies it on top of its defaults (seccomp RuntimeDefault,
// containerd's default capability set, no_new_privs, a pids limit).
type Security struct {
	// RunAsUser and RunAsGroup replace the image's user; nil keeps it.
	RunAsUser  *int64 `json:"runAsUser,omitempty"`
	RunAsGroup *int64 `json:"runAsGroup,omitempty"`
	// SupplementalGroups are added to the process's groups.
	SupplementalGroups []int64 `json:"supplementalGroups,omitempty"`
	// RunAsNonRoot refuses to start the container if it would run as uid 0.
	RunAsNonRoot           bool `json:"runAsNonRoot,omitempty"`
	ReadOnlyRootFilesystem bool `json:"readOnlyRootFilesystem,omitempty"`
	// AllowPrivilegeEscalation clears no_new_privs, set by default.
	AllowPrivilegeEscalation bool `json:"allowPrivilegeEscalation,omitempty"`
	// CapAdd and CapDrop are capability names without the CAP_ prefix;
	// CapDrop may hold ALL.
	CapAdd  []string `json:"capAdd,omitempty"`
	CapDrop []string `json:"capDrop,omitempty"`
	// SeccompUnconfined runs without the default seccomp profile.
	SeccompUnconfined bool `json:"seccompUnconfined,omitempty"`
}

// VolumeMount mounts volume Volume at Path inside a container.
type VolumeMount struct {
	Volume   string `json:"volume"`
	Path     string `json:"path"`
	ReadOnly bool   `json:"readOnly,omitempty"`
	// SubPath mounts a sub-directory of the volume instead of its root.
	SubPath string `json:"subPath,omitempty"`
}

// Volume is one volume of an instance; exactly one source is set.
type Volume struct {
	Name string `json:"name"`
	// EmptyDir is scratch space created with the instance and removed with
	// it, shared by its containers.
	EmptyDir *EmptyDirVolume `json:"emptyDir,omitempty"`
	// PersistentVolumeClaim is a directory on the node that outlives
	// instances (see the agent's --volume-root).
	PersistentVolumeClaim *ClaimVolume `json:"persistentVolumeClaim,omitempty"`
	// Secret and ConfigMap write an object's keys as files; Projected
	// merges several sources into one directory. The agent writes them
	// when the instance starts (not again when the object changes) on a
	// tmpfs removed with the instance; containers see them read-only.
	Secret    *KeysVolume      `json:"secret,omitempty"`
	ConfigMap *KeysVolume      `json:"configMap,omitempty"`
	Projected *ProjectedVolume `json:"projected,omitempty"`
}

// KeysVolume is the keys of the ConfigMap or Secret Name as files.
type KeysVolume struct {
	Name string `json:"name"`
	// Items picks keys and their paths; empty means every key under its
	// own name.
	Items []KeyToPath `json:"items,omitempty"`
	// DefaultMode is the files' mode; nil means 0644 (a projected
	// volume's own DefaultMode applies to its sources).
	DefaultMode *int32 `json:"defaultMode,omitempty"`
	// Optional starts the instance even when the object, or a key of
	// Items, is missing.
	Optional bool `json:"optional,omitempty"`
}

// KeyToPath puts one key in the file Path (relative) of the volume.
type KeyToPath struct {
	Key  string `json:"key"`
	Path string `json:"path"`
	Mode *int32 `json:"mode,omitempty"`
}

// ProjectedVolume merges Sources, in order, into one directory.
type ProjectedVolume struct {
	Sources     []Projection `json:"sources"`
	DefaultMode *int32       `json:"defaultMode,omitempty"`
}

// Projection is one source of a projected volume; exactly one is set.
type Projection struct {
	Secret              *KeysVolume      `json:"secret,omitempty"`
	ConfigMap           *KeysVolume      `json:"configMap,omitempty"`
	ServiceAccountToken *TokenProjection `json:"serviceAccountToken,omitempty"`
}

// TokenProjection is a signed JWT naming the instance's service account.
type TokenProjection struct {
	Audience          string `json:"audience,omitempty"`
	ExpirationSeconds int64  `json:"expirationSeconds,omitempty"`
	Path              string `json:"path"`
}

// EmptyDirVolume is Kubernetes' emptyDir.
type EmptyDirVolume struct {
	// Medium "Memory" backs the directory with tmpfs; "" uses the node's disk.
	Medium string `json:"medium,omitempty"`
	// SizeLimitMiB bounds a Memory volume (0: the tmpfs default, half of RAM).
	SizeLimitMiB int64 `json:"sizeLimitMiB,omitempty"`
}

// ClaimVolume is Kubernetes' persistentVolumeClaim volume source.
type ClaimVolume struct {
	ClaimName string `json:"claimName"`
	ReadOnly  bool   `json:"readOnly,omitempty"`
}

// Placement is written by the scheduler under placements/<node>/<instance>.
type Placement struct {
	Instance string       `json:"instance"`
	Node     string       `json:"node"`
	Spec     InstanceSpec `json:"spec"`
	PlacedAt time.Time    `json:"placedAt"`
}

// Instance phases.
const (
	PhasePending  = "Pending"
	PhasePulling  = "Pulling"
	PhaseStarting = "Starting"
	PhaseRunning  = "Running"
	PhaseStopping = "Stopping"
	PhaseFailed   = "Failed"
)

// Instance is written by the agent under instances/<node>/<instance>, on the
// agent's lease, so a dead node's instances vanish.
type Instance struct {
	Instance  string `json:"instance"`
	Node      string `json:"node"`
	Namespace string `json:"namespace"`
	Revision  string `json:"revision"`
	Phase     string `json:"phase"`
	Ready     bool   `json:"ready"`
	// Endpoint is host:port of the instance's queue-proxy.
	Endpoint string `json:"endpoint,omitempty"`
	// ContainerIP is the instance's own address (CNI) or empty (host network).
	ContainerIP string `json:"containerIP,omitempty"`
	// ImageDigest is the serving container's image pinned to what it
	// resolved to (REPO@sha256:…, see DigestReference); records of older
	// agents hold the bare digest.
	ImageDigest string `json:"imageDigest,omitempty"`
	// ContainerDigests is the same for every container of the instance
	// (serving, sidecars, init containers), by container name; optional.
	ContainerDigests map[string]string `json:"containerDigests,omitempty"`
	Message          string            `json:"message,omitempty"`
	Reason           string            `json:"reason,omitempty"`
	// ExitCode is set (optional) when Reason is ContainerExited: the code the
	// container that ended the incarnation exited with.
	ExitCode *int32 `json:"exitCode,omitempty"`
	// TerminationMessage goes with ExitCode (optional): the last lines the
	// container logged, as Kubernetes's FallbackToLogsOnError reports them.
	TerminationMessage string `json:"terminationMessage,omitempty"`
	// RestartCount is how many times the agent restarted the instance's
	// serving container in place (a failing liveness probe, or an exit
	// after being ready); optional (0).
	RestartCount int32     `json:"restartCount,omitempty"`
	UpdatedAt    time.Time `json:"updatedAt"`
}

// PodRequests is what one instance of s reserves on a node: the serving
// container plus its sidecars, or the largest init container when that is
// more (init containers run before, never beside, the others), as
// Kubernetes computes a pod's effective request.
func (s InstanceSpec) PodRequests() (milliCPU, memoryMiB int64) {
	milliCPU, memoryMiB = s.MilliCPU, s.MemoryMiB
	for _, c := range s.Sidecars {
		milliCPU += c.MilliCPU
		memoryMiB += c.MemoryMiB
	}
	for _, c := range s.InitContainers {
		milliCPU = max(milliCPU, c.MilliCPU)
		memoryMiB = max(memoryMiB, c.MemoryMiB)
	}
	return milliCPU, memoryMiB
}
