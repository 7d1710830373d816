package config

// APIVersion is the group/version of kiln's own objects: the cluster configs
// (Knative's config-* maps) are not serving.knative.dev objects.
const APIVersion = "kiln.dev/v1"

// Path is where the API server serves the cluster configs.
const Path = "/apis/" + APIVersion + "/configs"

// Config is the wire shape of one cluster config: Knative ConfigMap data
// under a name such as "autoscaler" (config-autoscaler). The API server
// returns only the keys that are set; every other key is at its default.
type Config struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Metadata   ConfigMeta        `json:"metadata"`
	Data       map[string]string `json:"data"`
}

// ConfigMeta names a config. ResourceVersion is the etcd mod revision of
// the stored document, "0" when nothing is stored (every key at its
// default). On PUT and PATCH a non-empty value is a precondition: "0" means
// "only if nothing is stored yet".
type ConfigMeta struct {
	Name            string `json:"name"`
	ResourceVersion string `json:"resourceVersion,omitempty"`
}

// ConfigList is the wire shape of GET Path: every known config, stored or
// not.
type ConfigList struct {
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Items      []Config `json:"items"`
}
