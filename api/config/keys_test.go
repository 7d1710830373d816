package config

import (
	"reflect"
	"testing"
)

// The documented defaults must mean exactly what the parsers default to,
// or `kiln config get` would show values that do not apply.
func TestDefaultDataMatchesParsers(t *testing.T) {
	for _, name := range Names() {
		d := DefaultData(name)
		if d == nil {
			t.Errorf("%s: no default data", name)
			continue
		}
		fromDefaults, err := Parse(name, d)
		if err != nil {
			t.Errorf("%s: defaults do not parse: %v", name, err)
			continue
		}
		empty, _ := Parse(name, nil)
		if !reflect.DeepEqual(fromDefaults, empty) {
			t.Errorf("%s: parsed defaults %+v differ from the parser's %+v", name, fromDefaults, empty)
		}
	}
}

func TestEffectiveData(t *testing.T) {
	got := EffectiveData(NameAutoscaler, map[string]string{"stable-window": "90s"})
	var sw, s2z Effective
	for _, e := range got {
		switch e.Key {
		case "stable-window":
			sw = e
		case "enable-scale-to-zero":
			s2z = e
		}
	}
	if sw != (Effective{"stable-window", "90s", true}) || s2z != (Effective{"enable-scale-to-zero", "true", false}) {
		t.Fatalf("stable-window %+v, enable-scale-to-zero %+v", sw, s2z)
	}
	if len(got) != len(DefaultData(NameAutoscaler)) {
		t.Fatalf("%d keys, want %d", len(got), len(DefaultData(NameAutoscaler)))
	}
	dom := EffectiveData(NameDomain, map[string]string{"kiln.example": ""})
	if len(dom) != 1 || dom[0].Key != "kiln.example" || !dom[0].Set {
		t.Fatalf("domain: %+v", dom)
	}
}
