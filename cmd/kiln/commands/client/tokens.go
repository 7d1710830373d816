package client

import (
	"context"
	"net/http"
	"net/url"

	"github.com/kiln-serving/kiln/api/auth"
)

// CreateToken issues a token for spec; the returned Status.Token is the
// secret, which the server never shows again.
func (c *Client) CreateToken(ctx context.Context, spec auth.TokenSpec) (*auth.Token, error) {
	in := auth.Token{APIVersion: auth.APIVersion, Kind: "Token", Spec: spec}
	var out auth.Token
	if err := c.call(ctx, http.MethodPost, auth.TokensPath, nil, in, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ListTokens returns every token, without secrets.
func (c *Client) ListTokens(ctx context.Context) ([]auth.Token, error) {
	var l auth.TokenList
	if err := c.call(ctx, http.MethodGet, auth.TokensPath, nil, nil, &l); err != nil {
		return nil, err
	}
	return l.Items, nil
}

// RevokeToken deletes token id. Errors wrap errdefs.ErrNotFound for an
// unknown id.
func (c *Client) RevokeToken(ctx context.Context, id string) error {
	return c.call(ctx, http.MethodDelete, auth.TokensPath+"/"+url.PathEscape(id), nil, nil, nil)
}
