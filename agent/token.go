package agent

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// Projected service account tokens are JWTs (RFC 7519) signed ES256 with
// the agent's own key: STATE-DIR/serviceaccount/signing-key.pem, created
// on first start (P-256, 0600) beside its public half signing-key.pub.pem,
// whose SHA-256 (of the DER SubjectPublicKeyInfo, base64url) is every
// token's "kid". A service verifies a token with that public key (e.g.
// go-jose, or any JWT library given the PEM); its claims are Kubernetes':
// iss "kiln", sub system:serviceaccount:<namespace>:<name>, aud, iat, nbf,
// exp and "kubernetes.io": {namespace, serviceaccount.name}. Tokens are
// written once when the instance starts, not refreshed.

// tokenIssuer is the tokens' "iss".
const tokenIssuer = "kiln"

// defaultTokenAudience stands for the API's audience when a projection
// names none (Kubernetes uses the apiserver's --api-audiences).
const defaultTokenAudience = "kiln"

// defaultTokenSeconds is Kubernetes' default expirationSeconds.
const defaultTokenSeconds = 3600

// tokenSigner signs an agent's service account tokens.
type tokenSigner struct {
	key *ecdsa.PrivateKey
	kid string
}

// loadTokenSigner reads the signing key in dir, creating it (and its
// public half) when missing.
func loadTokenSigner(dir string) (*tokenSigner, error) {
	path := filepath.Join(dir, "signing-key.pem")
	b, err := os.ReadFile(path)
	var key *ecdsa.PrivateKey
	switch {
	case errors.Is(err, os.ErrNotExist):
		if key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
			return nil, err
		}
		der, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			return nil, err
		}
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, err
		}
		if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), 0o600); err != nil {
			return nil, err
		}
	case err != nil:
		return nil, err
	default:
		blk, _ := pem.Decode(b)
		if blk == nil {
			return nil, fmt.Errorf("%s: no PEM block", path)
		}
		if key, err = x509.ParseECPrivateKey(blk.Bytes); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
	}
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return nil, err
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub})
	if err := os.WriteFile(filepath.Join(dir, "signing-key.pub.pem"), pubPEM, 0o644); err != nil {
		return nil, err
	}
	sum := sha256.Sum256(pub)
	return &tokenSigner{key: key, kid: base64.RawURLEncoding.EncodeToString(sum[:])}, nil
}

// tokenClaims are a Kubernetes service account token's claims.
type tokenClaims struct {
	Issuer     string     `json:"iss"`
	Subject    string     `json:"sub"`
	Audience   []string   `json:"aud"`
	IssuedAt   int64      `json:"iat"`
	NotBefore  int64      `json:"nbf"`
	Expiry     int64      `json:"exp"`
	Kubernetes tokenScope `json:"kubernetes.io"`
}

type tokenScope struct {
	Namespace      string `json:"namespace"`
	ServiceAccount struct {
		Name string `json:"name"`
	} `json:"serviceaccount"`
}

// token returns a signed JWT for service account sa ("" = default) of ns.
func (s *tokenSigner) token(ns, sa, audience string, expSeconds int64, now time.Time) (string, error) {
	if s == nil {
		return "", errNoTokens
	}
	if sa == "" {
		sa = "default"
	}
	if audience == "" {
		audience = defaultTokenAudience
	}
	if expSeconds <= 0 {
		expSeconds = defaultTokenSeconds
	}
	c := tokenClaims{
		Issuer: tokenIssuer, Subject: "system:serviceaccount:" + ns + ":" + sa, Audience: []string{audience},
		IssuedAt: now.Unix(), NotBefore: now.Unix(), Expiry: now.Unix() + expSeconds,
	}
	c.Kubernetes.Namespace, c.Kubernetes.ServiceAccount.Name = ns, sa
	header, err := json.Marshal(map[string]string{"alg": "ES256", "typ": "JWT", "kid": s.kid})
	if err != nil {
		return "", err
	}
	claims, err := json.Marshal(c)
	if err != nil {
		return "", err
	}
	enc := base64.RawURLEncoding
	signed := enc.EncodeToString(header) + "." + enc.EncodeToString(claims)
	sum := sha256.Sum256([]byte(signed))
	r, sg, err := ecdsa.Sign(rand.Reader, s.key, sum[:])
	if err != nil {
		return "", err
	}
	// JWS ES256 is r || s, each 32 bytes big-endian (RFC 7518 3.4).
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	sg.FillBytes(sig[32:])
	return signed + "." + enc.EncodeToString(sig), nil
}
