package config

import (
	"math"
	"reflect"
	"testing"
)

// FuzzParse feeds arbitrary keys and values to every config's parser, as
// `kiln config set` and the configs API do. Parsing must never panic, must
// be deterministic, and an accepted config must hold only finite numbers
// (NaN and Inf would reach the autoscaler's arithmetic).
func FuzzParse(f *testing.F) {
	for _, name := range Names() {
		f.Add(name, "", "")
	}
	for _, s := range [][3]string{
		{"autoscaler", "container-concurrency-target-default", "NaN"},
		{"autoscaler", "target-burst-capacity", "-1"},
		{"autoscaler", "max-scale-up-rate", "+Inf"},
		{"autoscaler", "stable-window", "60s"},
		{"defaults", "revision-timeout-seconds", "300"},
		{"network", "http-protocol", "redirected"},
		{"domain", "example.com", ""},
		{"features", "kubernetes.podspec-emptydir", "enabled"},
		{"gc", "max-non-active-revisions", "-1"},
		{"deployment", "progress-deadline", "600s"},
	} {
		f.Add(s[0], s[1], s[2])
	}
	f.Fuzz(func(t *testing.T, name, key, value string) {
		data := map[string]string{key: value}
		v, err := Parse(name, data)
		v2, err2 := Parse(name, data)
		if (err == nil) != (err2 == nil) || !reflect.DeepEqual(v, v2) {
			t.Fatalf("Parse is not deterministic: %v %v / %v %v", v, err, v2, err2)
		}
		if err != nil {
			return
		}
		finite(t, reflect.ValueOf(v), name)
	})
}

// finite fails t for any NaN or infinite float reachable from v.
func finite(t *testing.T, v reflect.Value, path string) {
	t.Helper()
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			finite(t, v.Elem(), path)
		}
	case reflect.Struct:
		for i := range v.NumField() {
			finite(t, v.Field(i), path+"."+v.Type().Field(i).Name)
		}
	case reflect.Float32, reflect.Float64:
		if f := v.Float(); math.IsNaN(f) || math.IsInf(f, 0) {
			t.Fatalf("%s = %v accepted", path, f)
		}
	}
}
