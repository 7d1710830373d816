package v1

import metav1 "github.com/kiln-serving/kiln/api/meta/v1"

// Revision is an immutable snapshot of code and configuration.
type Revision struct {
	metav1.TypeMeta `json:",inline"`
	Metadata        metav1.ObjectMeta `json:"metadata"`
	Spec            RevisionSpec      `json:"spec"`
	Status          RevisionStatus    `json:"status,omitempty"`
}

// RevisionTemplateSpec is the template a Configuration stamps Revisions from.
type RevisionTemplateSpec struct {
	Metadata metav1.ObjectMeta `json:"metadata,omitzero"`
	Spec     RevisionSpec      `json:"spec,omitempty"`
}

// RevisionSpec is the PodSpec subset Knative allows plus Knative's own fields.
type RevisionSpec struct {
	Containers         []Container            `json:"containers,omitempty"`
	Volumes            []Volume               `json:"volumes,omitempty"`
	InitContainers     []Container            `json:"initContainers,omitempty"`
	ServiceAccountName string                 `json:"serviceAccountName,omitempty"`
	ImagePullSecrets   []LocalObjectReference `json:"imagePullSecrets,omitempty"`
	EnableServiceLinks *bool                  `json:"enableServiceLinks,omitempty"`
	// SecurityContext is the pod-level security context. Knative allows
	// only seccompProfile unless kubernetes.podspec-securitycontext is
	// enabled (container_security_validation.go).
	SecurityContext *PodSecurityContext `json:"securityContext,omitempty"`

	// ContainerConcurrency is the hard limit of concurrent requests per
	// instance; 0 means unlimited. Optional, defaults from config.
	ContainerConcurrency *int64 `json:"containerConcurrency,omitempty"`
	// TimeoutSeconds bounds a request's duration. Optional, default 300.
	TimeoutSeconds *int64 `json:"timeoutSeconds,omitempty"`
	// ResponseStartTimeoutSeconds bounds the time to the first byte.
	ResponseStartTimeoutSeconds *int64 `json:"responseStartTimeoutSeconds,omitempty"`
	// IdleTimeoutSeconds bounds the time between bytes.
	IdleTimeoutSeconds *int64 `json:"idleTimeoutSeconds,omitempty"`
}

// LocalObjectReference names an object in the same namespace.
type LocalObjectReference struct {
	Name string `json:"name,omitempty"`
}

// Container is the Kubernetes container shape, restricted as Knative does.
type Container struct {
	Name                     string               `json:"name"`
	Image                    string               `json:"image,omitempty"`
	Command                  []string             `json:"command,omitempty"`
	Args                     []string             `json:"args,omitempty"`
	WorkingDir               string               `json:"workingDir,omitempty"`
	Ports                    []ContainerPort      `json:"ports,omitempty"`
	Env                      []EnvVar             `json:"env,omitempty"`
	EnvFrom                  []EnvFromSource      `json:"envFrom,omitempty"`
	Resources                ResourceRequirements `json:"resources"`
	VolumeMounts             []VolumeMount        `json:"volumeMounts,omitempty"`
	ReadinessProbe           *Probe               `json:"readinessProbe,omitempty"`
	LivenessProbe            *Probe               `json:"livenessProbe,omitempty"`
	ImagePullPolicy          string               `json:"imagePullPolicy,omitempty"`
	SecurityContext          *SecurityContext     `json:"securityContext,omitempty"`
	TerminationMessagePath   string               `json:"terminationMessagePath,omitempty"`
	TerminationMessagePolicy string               `json:"terminationMessagePolicy,omitempty"`
}

// ContainerPort declares the port the container listens on.
type ContainerPort struct {
	Name          string `json:"name,omitempty"`
	ContainerPort int32  `json:"containerPort"`
	Protocol      string `json:"protocol,omitempty"`
}

// EnvVar is one environment variable.
type EnvVar struct {
	Name      string        `json:"name"`
	Value     string        `json:"value,omitempty"`
	ValueFrom *EnvVarSource `json:"valueFrom,omitempty"`
}

// EnvVarSource references a value held elsewhere.
type EnvVarSource struct {
	SecretKeyRef    *KeySelector `json:"secretKeyRef,omitempty"`
	ConfigMapKeyRef *KeySelector `json:"configMapKeyRef,omitempty"`
}

// KeySelector selects a key of a Secret or ConfigMap.
type KeySelector struct {
	Name     string `json:"name"`
	Key      string `json:"key"`
	Optional *bool  `json:"optional,omitempty"`
}

// EnvFromSource imports a whole Secret or ConfigMap; exactly one of
// SecretRef and ConfigMapRef is set.
type EnvFromSource struct {
	// Prefix is prepended to every imported key. Optional.
	Prefix       string        `json:"prefix,omitempty"`
	SecretRef    *EnvSourceRef `json:"secretRef,omitempty"`
	ConfigMapRef *EnvSourceRef `json:"configMapRef,omitempty"`
}

// EnvSourceRef names the Secret or ConfigMap an EnvFromSource imports
// (Kubernetes' SecretEnvSource and ConfigMapEnvSource).
type EnvSourceRef struct {
	Name string `json:"name,omitempty"`
	// Optional lets the container start when the object is missing.
	Optional *bool `json:"optional,omitempty"`
}

// ResourceRequirements holds limits and requests as Kubernetes quantities.
type ResourceRequirements struct {
	Limits   map[string]string `json:"limits,omitempty"`
	Requests map[string]string `json:"requests,omitempty"`
}

// VolumeMount mounts a volume into a container.
type VolumeMount struct {
	Name      string `json:"name"`
	MountPath string `json:"mountPath"`
	ReadOnly  bool   `json:"readOnly,omitempty"`
	SubPath   string `json:"subPath,omitempty"`
}

// Volume is a named volume source.
type Volume struct {
	Name                  string                 `json:"name"`
	EmptyDir              *EmptyDirVolumeSource  `json:"emptyDir,omitempty"`
	Secret                *SecretVolumeSource    `json:"secret,omitempty"`
	ConfigMap             *ConfigMapVolumeSource `json:"configMap,omitempty"`
	Projected             *ProjectedVolumeSource `json:"projected,omitempty"`
	PersistentVolumeClaim *PVCVolumeSource       `json:"persistentVolumeClaim,omitempty"`
}

// EmptyDirVolumeSource is a scratch directory living as long as the instance.
type EmptyDirVolumeSource struct {
	Medium    string `json:"medium,omitempty"`
	SizeLimit string `json:"sizeLimit,omitempty"`
}

// SecretVolumeSource mounts a Secret's keys as files.
type SecretVolumeSource struct {
	SecretName string `json:"secretName,omitempty"`
	// Items picks keys and names their files; empty means every key, each
	// in a file of its name. Optional.
	Items []KeyToPath `json:"items,omitempty"`
	// DefaultMode is the files' mode (default 0644). Optional.
	DefaultMode *int32 `json:"defaultMode,omitempty"`
	// Optional lets the container start when the Secret (or a key of
	// Items) is missing.
	Optional *bool `json:"optional,omitempty"`
}

// ConfigMapVolumeSource mounts a ConfigMap's keys as files; fields as in
// SecretVolumeSource.
type ConfigMapVolumeSource struct {
	Name        string      `json:"name,omitempty"`
	Items       []KeyToPath `json:"items,omitempty"`
	DefaultMode *int32      `json:"defaultMode,omitempty"`
	Optional    *bool       `json:"optional,omitempty"`
}

// KeyToPath puts one key in the file at Path (relative to the volume).
type KeyToPath struct {
	Key  string `json:"key"`
	Path string `json:"path"`
	// Mode is the file's mode; default the volume's defaultMode. Optional.
	Mode *int32 `json:"mode,omitempty"`
}

// ProjectedVolumeSource merges several sources into one directory; a path
// given by two sources holds the later one's file.
type ProjectedVolumeSource struct {
	Sources     []VolumeProjection `json:"sources"`
	DefaultMode *int32             `json:"defaultMode,omitempty"`
}

// VolumeProjection is one source of a projected volume; exactly one field
// is set.
type VolumeProjection struct {
	Secret              *ProjectionSource              `json:"secret,omitempty"`
	ConfigMap           *ProjectionSource              `json:"configMap,omitempty"`
	ServiceAccountToken *ServiceAccountTokenProjection `json:"serviceAccountToken,omitempty"`
}

// ProjectionSource is a Secret or ConfigMap in a projected volume
// (Kubernetes' SecretProjection and ConfigMapProjection).
type ProjectionSource struct {
	Name     string      `json:"name,omitempty"`
	Items    []KeyToPath `json:"items,omitempty"`
	Optional *bool       `json:"optional,omitempty"`
}

// ServiceAccountTokenProjection writes a signed token naming the
// revision's service account into Path.
type ServiceAccountTokenProjection struct {
	// Audience is the token's aud claim. Optional.
	Audience string `json:"audience,omitempty"`
	// ExpirationSeconds is the token's lifetime (default 3600). Optional.
	ExpirationSeconds *int64 `json:"expirationSeconds,omitempty"`
	Path              string `json:"path"`
}

// PVCVolumeSource references a persistent volume claim.
type PVCVolumeSource struct {
	ClaimName string `json:"claimName"`
	ReadOnly  bool   `json:"readOnly,omitempty"`
}

// Probe describes a readiness or liveness check.
type Probe struct {
	HTTPGet             *HTTPGetAction   `json:"httpGet,omitempty"`
	TCPSocket           *TCPSocketAction `json:"tcpSocket,omitempty"`
	Exec                *ExecAction      `json:"exec,omitempty"`
	GRPC                *GRPCAction      `json:"grpc,omitempty"`
	InitialDelaySeconds int32            `json:"initialDelaySeconds,omitempty"`
	TimeoutSeconds      int32            `json:"timeoutSeconds,omitempty"`
	PeriodSeconds       int32            `json:"periodSeconds,omitempty"`
	SuccessThreshold    int32            `json:"successThreshold,omitempty"`
	FailureThreshold    int32            `json:"failureThreshold,omitempty"`
}

// HTTPGetAction probes with an HTTP GET.
type HTTPGetAction struct {
	Path        string       `json:"path,omitempty"`
	Port        *intOrString `json:"port,omitempty"`
	Host        string       `json:"host,omitempty"`
	Scheme      string       `json:"scheme,omitempty"`
	HTTPHeaders []HTTPHeader `json:"httpHeaders,omitempty"`
}

// HTTPHeader is a header sent by an HTTP probe.
type HTTPHeader struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// TCPSocketAction probes by opening a TCP connection.
type TCPSocketAction struct {
	Port *intOrString `json:"port,omitempty"`
	Host string       `json:"host,omitempty"`
}

// GRPCAction probes with the gRPC health checking protocol.
type GRPCAction struct {
	Port    int32   `json:"port"`
	Service *string `json:"service,omitempty"`
}

// ExecAction probes by running a command in the container.
type ExecAction struct {
	Command []string `json:"command,omitempty"`
}

// SecurityContext is a container's security settings: the fields Knative
// allows, plus the ones it refuses (Privileged, SELinuxOptions, ProcMount)
// so a manifest setting them is refused with its path rather than as an
// unknown field.
type SecurityContext struct {
	Privileged               *bool           `json:"privileged,omitempty"`
	SELinuxOptions           *SELinuxOptions `json:"seLinuxOptions,omitempty"`
	ProcMount                *string         `json:"procMount,omitempty"`
	RunAsUser                *int64          `json:"runAsUser,omitempty"`
	RunAsGroup               *int64          `json:"runAsGroup,omitempty"`
	RunAsNonRoot             *bool           `json:"runAsNonRoot,omitempty"`
	ReadOnlyRootFilesystem   *bool           `json:"readOnlyRootFilesystem,omitempty"`
	AllowPrivilegeEscalation *bool           `json:"allowPrivilegeEscalation,omitempty"`
	Capabilities             *Capabilities   `json:"capabilities,omitempty"`
	SeccompProfile           *SeccompProfile `json:"seccompProfile,omitempty"`
}

// PodSecurityContext is the pod-level security context.
type PodSecurityContext struct {
	RunAsUser          *int64          `json:"runAsUser,omitempty"`
	RunAsGroup         *int64          `json:"runAsGroup,omitempty"`
	RunAsNonRoot       *bool           `json:"runAsNonRoot,omitempty"`
	FSGroup            *int64          `json:"fsGroup,omitempty"`
	SupplementalGroups []int64         `json:"supplementalGroups,omitempty"`
	SeccompProfile     *SeccompProfile `json:"seccompProfile,omitempty"`
	// Refused by Knative whatever the feature flags say.
	SELinuxOptions *SELinuxOptions `json:"seLinuxOptions,omitempty"`
	Sysctls        []Sysctl        `json:"sysctls,omitempty"`
}

// SELinuxOptions is Kubernetes' SELinux label; kiln refuses it.
type SELinuxOptions struct {
	User  string `json:"user,omitempty"`
	Role  string `json:"role,omitempty"`
	Type  string `json:"type,omitempty"`
	Level string `json:"level,omitempty"`
}

// Sysctl is one namespaced kernel parameter; kiln refuses them.
type Sysctl struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Capabilities adds or drops Linux capabilities.
type Capabilities struct {
	Add  []string `json:"add,omitempty"`
	Drop []string `json:"drop,omitempty"`
}

// SeccompProfile selects a seccomp profile.
type SeccompProfile struct {
	Type             string  `json:"type"`
	LocalhostProfile *string `json:"localhostProfile,omitempty"`
}

// RevisionStatus is the observed state of a Revision.
type RevisionStatus struct {
	metav1.Status     `json:",inline"`
	LogURL            string            `json:"logUrl,omitempty"`
	ContainerStatuses []ContainerStatus `json:"containerStatuses,omitempty"`
	// InitContainerStatuses is the same for the init containers.
	InitContainerStatuses []ContainerStatus `json:"initContainerStatuses,omitempty"`
	ActualReplicas        *int32            `json:"actualReplicas,omitempty"`
	DesiredReplicas       *int32            `json:"desiredReplicas,omitempty"`
}

// ContainerStatus records the digest an image tag resolved to.
type ContainerStatus struct {
	Name        string `json:"name,omitempty"`
	ImageDigest string `json:"imageDigest,omitempty"`
}

// Revision condition types.
const (
	RevisionConditionReady              = "Ready"
	RevisionConditionResourcesAvailable = "ResourcesAvailable"
	RevisionConditionContainerHealthy   = "ContainerHealthy"
	RevisionConditionActive             = "Active"
)
