package client

import (
	"context"
	"net/http"
	"net/url"

	"github.com/kiln-serving/kiln/api/config"
)

// Config is one cluster config as the apiserver returns it: the stored
// data (only the keys that are set) and its resourceVersion ("0" when
// nothing is stored).
type Config = config.Config

func configPath(name string) string {
	if name == "" {
		return config.Path
	}
	return config.Path + "/" + url.PathEscape(name)
}

// ListConfigs returns every known config, stored or not.
func (c *Client) ListConfigs(ctx context.Context) ([]Config, error) {
	var l struct {
		Items []Config `json:"items"`
	}
	if err := c.call(ctx, http.MethodGet, configPath(""), nil, nil, &l); err != nil {
		return nil, err
	}
	return l.Items, nil
}

// GetConfig returns config name. Errors wrap errdefs.ErrNotFound for an
// unknown name (the message lists the known ones).
func (c *Client) GetConfig(ctx context.Context, name string) (*Config, error) {
	var out Config
	if err := c.call(ctx, http.MethodGet, configPath(name), nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// PatchConfig sets keys and removes the unset ones in one merge patch; the
// server validates the result and writes nothing when it is invalid.
func (c *Client) PatchConfig(ctx context.Context, name string, set map[string]string, unset []string) (*Config, error) {
	data := map[string]*string{}
	for k, v := range set {
		data[k] = &v
	}
	for _, k := range unset {
		data[k] = nil // JSON null: remove the key
	}
	var out Config
	if err := c.call(ctx, http.MethodPatch, configPath(name), nil, map[string]any{"data": data}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// PutConfig replaces config name's data. A non-empty resourceVersion makes
// it a compare-and-swap ("0": only if nothing is stored).
func (c *Client) PutConfig(ctx context.Context, name, resourceVersion string, data map[string]string) (*Config, error) {
	in := Config{APIVersion: config.APIVersion, Kind: "Config", Metadata: config.ConfigMeta{Name: name, ResourceVersion: resourceVersion}, Data: data}
	var out Config
	if err := c.call(ctx, http.MethodPut, configPath(name), nil, in, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ResetConfig removes config name's stored data: every key is back at its
// default.
func (c *Client) ResetConfig(ctx context.Context, name string) error {
	return c.call(ctx, http.MethodDelete, configPath(name), nil, nil, nil)
}
