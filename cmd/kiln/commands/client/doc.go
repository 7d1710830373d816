// Package client is the kiln CLI's REST client for the serving.knative.dev/v1
// API: typed get/list/create/update/delete and a watch stream, with the
// server's Kubernetes-style Status errors mapped back to internal/errdefs
// sentinels. It also resolves the global connection flags (--server,
// --token, --token-file, --namespace).
//
// It must never import server-side packages (registry, store, etcd): the
// kiln binary stays a thin HTTP client.
package client
