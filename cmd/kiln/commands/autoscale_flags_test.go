package commands_test

import (
	"strings"
	"testing"

	v1 "github.com/kiln-serving/kiln/api/serving/v1"
)

// kn's --scale-* flags set the KPA annotations on the revision template.
func TestServiceScaleFlags(t *testing.T) {
	e := newEnv(t)
	e.mustRun("service", "create", "hello", "--image", "img", "--scale-init", "2", "--scale-target", "50",
		"--scale-utilization", "80", "--scale-window", "30s", "--scale-activation", "3", "--scale-metric", "rps")
	want := map[string]string{
		v1.AutoscalingInitialScale:     "2",
		v1.AutoscalingTargetAnnotation: "50",
		v1.AutoscalingUtilization:      "80",
		v1.AutoscalingWindow:           "30s",
		v1.AutoscalingActivationScale:  "3",
		v1.AutoscalingMetricAnnotation: "rps",
	}
	s := e.service("hello")
	for k, v := range want {
		if got := s.Spec.Template.Metadata.Annotations[k]; got != v {
			t.Errorf("template annotation %s = %q, want %q", k, got, v)
		}
		if _, ok := s.Metadata.Annotations[k]; ok {
			t.Errorf("service metadata carries %s; kn puts it on the template only", k)
		}
	}

	e.mustRun("service", "update", "hello", "--scale-window", "1m", "--scale-target", "10")
	s = e.service("hello")
	if a := s.Spec.Template.Metadata.Annotations; a[v1.AutoscalingWindow] != "1m" || a[v1.AutoscalingTargetAnnotation] != "10" ||
		a[v1.AutoscalingInitialScale] != "2" {
		t.Errorf("after update: %v", a)
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--scale-utilization", "0"}, v1.AutoscalingUtilization},
		{[]string{"--scale-window", "2s"}, v1.AutoscalingWindow},
		{[]string{"--scale-activation", "0"}, v1.AutoscalingActivationScale},
		{[]string{"--scale-metric", "cpu"}, v1.AutoscalingMetricAnnotation},
	} {
		_, errOut, code := e.run(append([]string{"service", "update", "hello"}, tc.args...)...)
		if code == 0 || !strings.Contains(errOut, tc.want) {
			t.Errorf("update %v: exit %d, stderr %q; want an error naming %s", tc.args, code, errOut, tc.want)
		}
	}
}
