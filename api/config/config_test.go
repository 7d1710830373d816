package config

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/kiln-serving/kiln/api/errdefs"
)

func TestAutoscalerDefaults(t *testing.T) {
	a, err := ParseAutoscaler(nil)
	if err != nil {
		t.Fatal(err)
	}
	if !a.EnableScaleToZero || a.ContainerConcurrencyTargetFraction != 0.7 || a.ContainerConcurrencyTargetDefault != 100 ||
		a.TargetBurstCapacity != 211 || a.StableWindow != 60*time.Second || a.PanicWindowPercentage != 10 ||
		a.PanicThresholdPercentage != 200 || a.MaxScaleUpRate != 1000 || a.MaxScaleDownRate != 2 ||
		a.ScaleToZeroGracePeriod != 30*time.Second || a.InitialScale != 1 || a.RPSTargetDefault != 200 {
		t.Fatalf("defaults = %+v", a)
	}
}

func TestAutoscalerInvalid(t *testing.T) {
	cases := map[string]map[string]string{
		"stable-window":                           {"stable-window": "2s"},
		"max-scale-down-rate":                     {"max-scale-down-rate": "1"},
		"container-concurrency-target-percentage": {"container-concurrency-target-percentage": "0"},
		"enable-scale-to-zero":                    {"enable-scale-to-zero": "maybe"},
		"initial-scale":                           {"initial-scale": "0"},
		"min-scale":                               {"min-scale": "5", "max-scale": "2"},
		"unknown key(s) stabel-window":            {"stabel-window": "60s"},
	}
	for want, data := range cases {
		_, err := Parse(NameAutoscaler, data)
		if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), want) {
			t.Errorf("%v: err = %v, want it to name %q", data, err, want)
		}
	}
	if _, err := Parse("nope", nil); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("unknown config: %v", err)
	}
}

func TestServingConfigs(t *testing.T) {
	snap := DefaultSnapshot()
	if snap.Defaults().RevisionTimeoutSeconds != 300 || snap.Defaults().MaxRevisionTimeoutSeconds != 600 {
		t.Errorf("defaults: %+v", snap.Defaults())
	}
	if g := snap.GC(); g.RetainSinceCreateTime != 48*time.Hour || g.MinNonActiveRevisions != 20 || g.MaxNonActiveRevisions != 1000 {
		t.Errorf("gc: %+v", g)
	}
	if d := snap.Domain().DomainFor(nil); d != "example.com" {
		t.Errorf("default domain %q", d)
	}
	if n := snap.Network(); n.DefaultExternalScheme != "http" || n.HTTPProtocol != HTTPEnabled || n.TagTemplate != "{{.Tag}}-{{.Name}}" {
		t.Errorf("network: %+v", n)
	}
	if f := snap.Features(); !f.Enabled(FeatureMultiContainer) || f.Enabled(FeatureInitContainers) {
		t.Errorf("features: %+v", f)
	}
	if d := snap.Deployment(); d.ProgressDeadline != 600*time.Second {
		t.Errorf("deployment: %+v", d)
	}

	dom, err := ParseDomain(map[string]string{"example.org": "", "internal.example.org": "selector:\n  app: secret\n"})
	if err != nil {
		t.Fatal(err)
	}
	if got := dom.DomainFor(map[string]string{"app": "secret"}); got != "internal.example.org" {
		t.Errorf("selector domain %q", got)
	}
	if got := dom.DomainFor(map[string]string{"app": "other"}); got != "example.org" {
		t.Errorf("default domain %q", got)
	}
	gc, err := ParseGC(map[string]string{"retain-since-create-time": "disabled", "max-non-active-revisions": "disabled"})
	if err != nil || gc.RetainSinceCreateTime != Disabled || gc.MaxNonActiveRevisions != Disabled {
		t.Errorf("gc disabled: %+v %v", gc, err)
	}

	bad := []struct {
		name, key string
		data      map[string]string
	}{
		{NameNetwork, "default-external-scheme", map[string]string{"default-external-scheme": "ftp"}},
		{NameNetwork, "http-protocol", map[string]string{"http-protocol": "sometimes"}},
		{NameNetwork, "domain-template", map[string]string{"domain-template": "{{.Name}}.{{.Domain}}"}},
		{NameDefaults, "revision-timeout-seconds", map[string]string{"revision-timeout-seconds": "900"}},
		{NameFeatures, FeatureInitContainers, map[string]string{FeatureInitContainers: "yes"}},
		{NameGC, "min-non-active-revisions", map[string]string{"min-non-active-revisions": "50", "max-non-active-revisions": "10"}},
		{NameDomain, "Not_A_Domain", map[string]string{"Not_A_Domain": ""}},
	}
	for _, tc := range bad {
		_, err := Parse(tc.name, tc.data)
		if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), tc.key) {
			t.Errorf("%s %v: err = %v, want it to name %q", tc.name, tc.data, err, tc.key)
		}
	}
}

func TestNamespaceInternalTraffic(t *testing.T) {
	for _, tc := range []struct {
		value   string
		want    []string
		wantErr string
	}{
		{value: "", want: nil},
		{value: "team-a, team-b", want: []string{"team-a", "team-b"}},
		{value: "team-a,Team_B", wantErr: `namespace-internal-traffic: invalid value "Team_B"`},
		{value: "a.b", wantErr: `invalid value "a.b"`},
	} {
		n, err := ParseNetwork(map[string]string{"namespace-internal-traffic": tc.value})
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%q: err = %v, want %q", tc.value, err, tc.wantErr)
			}
			continue
		}
		if err != nil || fmt.Sprint(n.NamespaceInternalTraffic) != fmt.Sprint(tc.want) {
			t.Errorf("%q: %v, %v; want %v", tc.value, n, err, tc.want)
		}
	}
}

// TestParseRefusesNonFinite: NaN and ±Inf parse as floats but would reach
// the autoscaler's arithmetic; every float key refuses them.
func TestParseRefusesNonFinite(t *testing.T) {
	for _, v := range []string{"NaN", "nan", "Inf", "+Inf", "-Inf", "infinity"} {
		for _, key := range []string{"container-concurrency-target-default", "target-burst-capacity", "max-scale-up-rate", "panic-threshold-percentage"} {
			if _, err := ParseAutoscaler(map[string]string{key: v}); err == nil {
				t.Errorf("%s=%s: accepted, want refused", key, v)
			}
		}
	}
}

// Knative networking still reads config-network's pre-kebab-case keys
// (kn's e2e suite patches autocreateClusterDomainClaims); kiln accepts them
// as aliases, and the current key wins when both are set.
func TestNetworkLegacyKeys(t *testing.T) {
	for _, tc := range []struct {
		name    string
		data    map[string]string
		check   func(*Network) bool
		wantErr string
	}{{
		name:  "autocreateClusterDomainClaims alone",
		data:  map[string]string{"autocreateClusterDomainClaims": "true"},
		check: func(n *Network) bool { return n.AutocreateClusterDomainClaims },
	}, {
		name:  "kebab key wins",
		data:  map[string]string{"autocreateClusterDomainClaims": "true", "autocreate-cluster-domain-claims": "false"},
		check: func(n *Network) bool { return !n.AutocreateClusterDomainClaims },
	}, {
		name:  "domainTemplate",
		data:  map[string]string{"domainTemplate": "{{.Name}}-{{.Namespace}}.{{.Domain}}"},
		check: func(n *Network) bool { return n.DomainTemplate == "{{.Name}}-{{.Namespace}}.{{.Domain}}" },
	}, {
		name:  "tagTemplate",
		data:  map[string]string{"tagTemplate": "{{.Name}}-{{.Tag}}"},
		check: func(n *Network) bool { return n.TagTemplate == "{{.Name}}-{{.Tag}}" },
	}, {
		name:  "defaultExternalScheme",
		data:  map[string]string{"defaultExternalScheme": "HTTPS"},
		check: func(n *Network) bool { return n.DefaultExternalScheme == "https" },
	}, {
		name:  "httpProtocol, kebab key wins",
		data:  map[string]string{"httpProtocol": "Redirected", "http-protocol": "disabled"},
		check: func(n *Network) bool { return n.HTTPProtocol == HTTPDisabled },
	}, {
		name:  "ingress.class",
		data:  map[string]string{"ingress.class": "other"},
		check: func(n *Network) bool { return n.IngressClass == "other" },
	}, {
		name:  "autoTLS and rolloutDuration are accepted",
		data:  map[string]string{"autoTLS": "Disabled", "rolloutDuration": "0"},
		check: func(n *Network) bool { return n.HTTPProtocol == HTTPEnabled },
	}, {
		name:    "legacy value still validated",
		data:    map[string]string{"autocreateClusterDomainClaims": "maybe"},
		wantErr: `invalid value "maybe"`,
	}, {
		name:    "other camelCase keys stay unknown",
		data:    map[string]string{"enableMeshPodAddressability": "true"},
		wantErr: "unknown key(s) enableMeshPodAddressability",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			n, err := ParseNetwork(tc.data)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !tc.check(n) {
				t.Errorf("parsed %+v", n)
			}
		})
	}
}
