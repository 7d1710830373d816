package v1

import (
	"context"
	"strings"
	"testing"
)

// TestInputValidation covers the rules that keep hostile or absurd input
// out of the store: env names, quantity bounds and non-finite numbers.
func TestInputValidation(t *testing.T) {
	env := func(names ...string) svcOpt {
		return withContainer(func(c *Container) {
			for _, n := range names {
				c.Env = append(c.Env, EnvVar{Name: n, Value: "x"})
			}
		})
	}
	res := func(kind, name, q string) svcOpt {
		return withContainer(func(c *Container) {
			m := map[string]string{name: q}
			if kind == "limits" {
				c.Resources.Limits = m
			} else {
				c.Resources.Requests = m
			}
		})
	}
	const c0 = "spec.template.spec.containers[0]."
	tests := []struct {
		name      string
		svc       *Service
		wantField string // "" = valid
		wantMsg   string
	}{
		{"env C identifier", svc("a", env("MY_VAR", "_x", "a1")), "", ""},
		{"env with =", svc("a", env("A=B")), c0 + "env[0].name", "a valid C identifier"},
		{"env with dash", svc("a", env("ok", "my-var")), c0 + "env[1].name", "regex used for validation is '[A-Za-z_][A-Za-z0-9_]*'"},
		{"env leading digit", svc("a", env("1A")), c0 + "env[0].name", "a valid C identifier"},
		{"env PORT", svc("a", env("PORT")), c0 + "env[0].name", `"PORT" is a reserved environment variable`},
		{"env K_SERVICE", svc("a", env("K_SERVICE")), c0 + "env[0].name", `"K_SERVICE" is a reserved environment variable`},
		{"env K_CONFIGURATION", svc("a", env("K_CONFIGURATION")), c0 + "env[0].name", `"K_CONFIGURATION" is a reserved environment variable`},
		{"env K_REVISION", svc("a", env("K_REVISION")), c0 + "env[0].name", `"K_REVISION" is a reserved environment variable`},
		{"cpu 9E", svc("a", res("limits", "cpu", "9E")), c0 + "resources.limits.cpu", "must be less than or equal to 9223372036854775"},
		{"cpu 1e18", svc("a", res("requests", "cpu", "1e18")), c0 + "resources.requests.cpu", "must be less than or equal to"},
		{"memory 8Ei", svc("a", res("limits", "memory", "8Ei")), c0 + "resources.limits.memory", "must be less than or equal to"},
		{"huge exponent", svc("a", res("limits", "cpu", "1e999999999")), c0 + "resources.limits.cpu", "quantities must match"},
		{"sane quantities", svc("a", res("limits", "memory", "64Gi")), "", ""},
		{"cpu 1000 cores", svc("a", res("limits", "cpu", "1000")), "", ""},
		{"target NaN", svc("a", withTemplateAnnotations(AutoscalingTargetAnnotation, "NaN")), "spec.template.metadata.annotations." + AutoscalingTargetAnnotation, "must be a number >= 0.01"},
		{"target +Inf", svc("a", withTemplateAnnotations(AutoscalingTargetAnnotation, "+Inf")), "spec.template.metadata.annotations." + AutoscalingTargetAnnotation, "must be a number >= 0.01"},
		{"utilization NaN", svc("a", withTemplateAnnotations(AutoscalingUtilization, "nan")), "spec.template.metadata.annotations." + AutoscalingUtilization, "between 1 and 100"},
		{"burst Inf", svc("a", withTemplateAnnotations(AutoscalingTargetBurstCapacity, "Inf")), "spec.template.metadata.annotations." + AutoscalingTargetBurstCapacity, "must be -1 or a number >= 0"},
		{"burst -1", svc("a", withTemplateAnnotations(AutoscalingTargetBurstCapacity, "-1")), "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			tc.svc.SetDefaults(ctx)
			fe := tc.svc.Validate(ctx)
			if tc.wantField == "" {
				if fe != nil {
					t.Fatalf("Validate = %v, want valid", fe)
				}
				return
			}
			for _, c := range fe.Causes() {
				if c.Field == tc.wantField && strings.Contains(c.Message+"\n"+c.Details, tc.wantMsg) {
					return
				}
			}
			t.Fatalf("Validate = %v (causes %+v), want %q at %s", fe, fe.Causes(), tc.wantMsg, tc.wantField)
		})
	}
}

func TestEmptyDirSizeLimitBound(t *testing.T) {
	if q := parseQuantity("9E"); q == nil || q.Cmp(maxQuantity) <= 0 {
		t.Fatalf("9E = %v, want above maxQuantity", q)
	}
	if q := parseQuantity("1Ti"); q == nil || q.Cmp(maxQuantity) > 0 {
		t.Fatalf("1Ti = %v, want within maxQuantity", q)
	}
}
