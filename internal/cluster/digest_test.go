package cluster

import "testing"

func TestDigestReference(t *testing.T) {
	const d = "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
	for _, tc := range []struct {
		name, image, digest, want string
		wantErr                   bool
	}{
		{name: "registry with port", image: "127.0.0.1:5000/samples/hello:latest", digest: d, want: "127.0.0.1:5000/samples/hello@" + d},
		{name: "untagged", image: "127.0.0.1:5000/samples/hello", digest: d, want: "127.0.0.1:5000/samples/hello@" + d},
		{name: "docker hub short name", image: "nginx:1.27", digest: d, want: "docker.io/library/nginx@" + d},
		{name: "docker hub full name", image: "docker.io/library/nginx:1.27", digest: d, want: "docker.io/library/nginx@" + d},
		{name: "already by digest", image: "ghcr.io/x/y@" + d, digest: "sha256:0000000000000000000000000000000000000000000000000000000000000000", want: "ghcr.io/x/y@" + d},
		{name: "digest already pinned", image: "ghcr.io/x/y:v1", digest: "ghcr.io/x/y@" + d, want: "ghcr.io/x/y@" + d},
		{name: "bad digest", image: "ghcr.io/x/y:v1", digest: "sha256:nothex", wantErr: true},
		{name: "bad image", image: "samples/Hello", digest: d, wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := DigestReference(tc.image, tc.digest)
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Errorf("DigestReference(%q, %q) = %q, %v; want %q (error %v)", tc.image, tc.digest, got, err, tc.want, tc.wantErr)
			}
		})
	}
}
