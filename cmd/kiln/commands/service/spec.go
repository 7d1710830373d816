package service

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"

	v1 "github.com/kiln-serving/kiln/api/serving/v1"
)

// specFlags are the flags create and update share; they edit the Service
// the way kn's do.
func specFlags(create bool) []cli.Flag {
	envUsage := "environment variable to set (NAME=value); repeatable"
	kvUsage := "to set (KEY=value); repeatable"
	if !create {
		envUsage = "environment variable to set (NAME=value) or remove (NAME-); repeatable"
		kvUsage = "to set (KEY=value) or remove (KEY-); repeatable"
	}
	flags := []cli.Flag{
		&cli.StringFlag{Name: "image", Usage: "image to run"},
		&cli.StringSliceFlag{Name: "env", Aliases: []string{"e"}, Usage: envUsage},
		&cli.IntFlag{Name: "port", Aliases: []string{"p"}, Usage: "the port the container listens on (default 8080)"},
		&cli.StringSliceFlag{Name: "annotation", Aliases: []string{"a"}, Usage: "Service and Revision annotation " + kvUsage},
		&cli.StringSliceFlag{Name: "label", Aliases: []string{"l"}, Usage: "Service and Revision label " + kvUsage},
		&cli.IntFlag{Name: "scale-min", Usage: "minimum number of instances (autoscaling.knative.dev/min-scale)"},
		&cli.IntFlag{Name: "scale-max", Usage: "maximum number of instances (autoscaling.knative.dev/max-scale)"},
		&cli.IntFlag{Name: "concurrency-limit", Usage: "hard limit of concurrent requests per instance (containerConcurrency)"},
		&cli.IntFlag{Name: "concurrency-target", Usage: "soft target of concurrent requests per instance (autoscaling.knative.dev/target)"},
		&cli.IntFlag{Name: "scale-init", Usage: "initial number of instances a revision starts with; 0 needs allow-zero-initial-scale (autoscaling.knative.dev/initial-scale)"},
		&cli.IntFlag{Name: "scale-target", Usage: "target of concurrent requests (or requests per second with --scale-metric rps) per instance (autoscaling.knative.dev/target)"},
		&cli.IntFlag{Name: "scale-utilization", Usage: "percentage of the target an instance runs at before scaling up, 1-100 (autoscaling.knative.dev/target-utilization-percentage)"},
		&cli.StringFlag{Name: "scale-window", Usage: "stable window the autoscaler averages over, 6s-1h, e.g. 10s (autoscaling.knative.dev/window)"},
		&cli.IntFlag{Name: "scale-activation", Usage: "minimum instances when scaling up from zero (autoscaling.knative.dev/activation-scale)"},
		&cli.StringFlag{Name: "scale-metric", Usage: "metric to scale on: concurrency or rps (autoscaling.knative.dev/metric)"},
		&cli.StringFlag{Name: "revision-name", Usage: "name of the revision this change creates; prefixed with the service name and '-' when it lacks it; {{.Service}}, {{.Generation}} and {{.Random N}} are expanded"},
		&cli.StringSliceFlag{Name: "tag", Usage: "tag a revision: REVISION=TAG or @latest=TAG (the latest ready revision); repeatable, comma-separated values allowed"},
		&cli.BoolFlag{Name: "cluster-local", Usage: "make the service private: reachable only on the cluster-local address NAME.NAMESPACE.svc.cluster.local (networking.knative.dev/visibility=cluster-local); --cluster-local=false makes it public again"},
		&cli.BoolFlag{Name: "no-wait", Usage: "do not wait for the service to become ready"},
		&cli.IntFlag{Name: "wait-timeout", Value: 600, Usage: "seconds to wait for the service to become ready"},
	}
	if !create {
		flags = append(flags,
			&cli.StringSliceFlag{Name: "traffic", Usage: "traffic split: REVISION=PERCENT, TAG=PERCENT, @latest=PERCENT or PERCENT (for @latest); repeatable, comma-separated values allowed; the one revision left out gets the remainder"},
			&cli.StringSliceFlag{Name: "untag", Usage: "remove a tag (TAG); repeatable, comma-separated values allowed"},
		)
	}
	return flags
}

// parseKV splits KEY=value; with allowRemove, "KEY-" means remove.
func parseKV(flag, s string, allowRemove bool) (key, value string, remove bool, err error) {
	if k, v, ok := strings.Cut(s, "="); ok && k != "" {
		return k, v, false, nil
	}
	if allowRemove && strings.HasSuffix(s, "-") && len(s) > 1 && !strings.Contains(s, "=") {
		return strings.TrimSuffix(s, "-"), "", true, nil
	}
	want := "KEY=value"
	if allowRemove {
		want += " or KEY-"
	}
	return "", "", false, fmt.Errorf("invalid --%s %q: expected %s", flag, s, want)
}

func setMap(m *map[string]string, k, v string, remove bool) {
	if remove {
		delete(*m, k)
		return
	}
	if *m == nil {
		*m = map[string]string{}
	}
	(*m)[k] = v
}

// applyFlags edits s from the flags that were set. On create, s holds a
// single empty container.
func applyFlags(c *cli.Context, s *v1.Service, create bool) error {
	tmpl := &s.Spec.Template
	if len(tmpl.Spec.Containers) == 0 {
		tmpl.Spec.Containers = []v1.Container{{}}
	}
	ctr := &tmpl.Spec.Containers[0]
	if c.IsSet("image") {
		ctr.Image = c.String("image")
		setMap(&tmpl.Metadata.Annotations, v1.UserImageAnnotation, ctr.Image, false)
	}
	for _, e := range c.StringSlice("env") {
		k, v, rm, err := parseKV("env", e, !create)
		if err != nil {
			return err
		}
		ctr.Env = setEnv(ctr.Env, k, v, rm)
	}
	if c.IsSet("port") {
		p := c.Int("port")
		if p < 1 || p > 65535 {
			return fmt.Errorf("invalid --port %d: expected 1..65535", p)
		}
		if len(ctr.Ports) == 0 {
			ctr.Ports = []v1.ContainerPort{{}}
		}
		ctr.Ports[0].ContainerPort = int32(p)
	}
	for _, flag := range []string{"annotation", "label"} {
		for _, a := range c.StringSlice(flag) {
			k, v, rm, err := parseKV(flag, a, !create)
			if err != nil {
				return err
			}
			if flag == "annotation" {
				// As kn: autoscaling annotations only work (and are only
				// valid) on the revision template.
				if !strings.HasPrefix(k, "autoscaling.knative.dev/") {
					setMap(&s.Metadata.Annotations, k, v, rm)
				}
				setMap(&tmpl.Metadata.Annotations, k, v, rm)
			} else {
				setMap(&s.Metadata.Labels, k, v, rm)
				setMap(&tmpl.Metadata.Labels, k, v, rm)
			}
		}
	}
	if c.IsSet("cluster-local") {
		// As kn: the label goes on the Service, which propagates it to its Route.
		setMap(&s.Metadata.Labels, v1.VisibilityLabelKey, v1.VisibilityClusterLocal, !c.Bool("cluster-local"))
	}
	for flag, ann := range map[string]string{
		"scale-min":          v1.AutoscalingMinScaleAnnotation,
		"scale-max":          v1.AutoscalingMaxScaleAnnotation,
		"concurrency-target": v1.AutoscalingTargetAnnotation,
		"scale-init":         v1.AutoscalingInitialScale,
		"scale-target":       v1.AutoscalingTargetAnnotation,
		"scale-utilization":  v1.AutoscalingUtilization,
		"scale-activation":   v1.AutoscalingActivationScale,
	} {
		if c.IsSet(flag) {
			setMap(&tmpl.Metadata.Annotations, ann, strconv.Itoa(c.Int(flag)), false)
		}
	}
	for flag, ann := range map[string]string{
		"scale-window": v1.AutoscalingWindow,
		"scale-metric": v1.AutoscalingMetricAnnotation,
	} {
		if c.IsSet(flag) {
			setMap(&tmpl.Metadata.Annotations, ann, c.String(flag), false)
		}
	}
	if c.IsSet("concurrency-limit") {
		v := int64(c.Int("concurrency-limit"))
		tmpl.Spec.ContainerConcurrency = &v
	}
	return nil
}

// setEnv sets or removes one variable, keeping the user's order.
func setEnv(env []v1.EnvVar, k, v string, remove bool) []v1.EnvVar {
	for i := range env {
		if env[i].Name != k {
			continue
		}
		if remove {
			return append(env[:i], env[i+1:]...)
		}
		env[i].Value, env[i].ValueFrom = v, nil
		return env
	}
	if remove {
		return env
	}
	return append(env, v1.EnvVar{Name: k, Value: v})
}
