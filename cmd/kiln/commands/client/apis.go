package client

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
)

// API roots besides serving.knative.dev/v1.
const (
	// DomainMappingAPI serves serving.knative.dev/v1beta1 DomainMappings.
	DomainMappingAPI = "/apis/serving.knative.dev/v1beta1"
	// CoreAPI serves TLS secrets, as Kubernetes' core v1 API does.
	CoreAPI = "/api/v1"
)

// API is a client bound to another API root (DomainMappingAPI, CoreAPI).
type API struct {
	c    *Client
	root string
}

// At returns the client for the API under root.
func (c *Client) At(root string) *API { return &API{c: c, root: root} }

func (a *API) path(resource, ns, name string) string {
	p := a.root
	if ns != "" {
		p += "/namespaces/" + url.PathEscape(ns)
	}
	p += "/" + resource
	if name != "" {
		p += "/" + url.PathEscape(name)
	}
	return p
}

// Get reads one object into out.
func (a *API) Get(ctx context.Context, resource, ns, name string, out any) error {
	return a.c.call(ctx, http.MethodGet, a.path(resource, ns, name), nil, nil, out)
}

// List reads every object of resource in ns ("" = all) into items.
func (a *API) List(ctx context.Context, resource, ns string, items any) error {
	var l struct {
		Items json.RawMessage `json:"items"`
	}
	if err := a.c.call(ctx, http.MethodGet, a.path(resource, ns, ""), nil, nil, &l); err != nil {
		return err
	}
	if len(l.Items) == 0 || string(l.Items) == "null" {
		return nil
	}
	if err := json.Unmarshal(l.Items, items); err != nil {
		return fmt.Errorf("decode list: %w", err)
	}
	return nil
}

// Create posts obj; the stored copy is decoded into out.
func (a *API) Create(ctx context.Context, resource, ns string, obj any, dryRun bool, out any) error {
	return a.c.call(ctx, http.MethodPost, a.path(resource, ns, ""), dry(dryRun), obj, out)
}

// Update puts obj; a stale metadata.resourceVersion fails with ErrConflict.
func (a *API) Update(ctx context.Context, resource, ns, name string, obj any, dryRun bool, out any) error {
	return a.c.call(ctx, http.MethodPut, a.path(resource, ns, name), dry(dryRun), obj, out)
}

// Delete removes one object.
func (a *API) Delete(ctx context.Context, resource, ns, name string) error {
	return a.c.call(ctx, http.MethodDelete, a.path(resource, ns, name), nil, nil, nil)
}
