package config

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/kiln-serving/kiln/internal/errdefs"
	"github.com/kiln-serving/kiln/internal/store"
	"github.com/kiln-serving/kiln/internal/store/memstore"
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

func TestWatcherAppliesChanges(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st := memstore.New()
	w := NewWatcher(st, slog.New(slog.NewTextHandler(io.Discard, nil)))
	go w.Run(ctx)
	<-w.Synced()
	if w.Current().Autoscaler().StableWindow != 60*time.Second {
		t.Fatal("default not applied")
	}
	changed := w.Changed()
	b, _ := json.Marshal(Document{Data: map[string]string{"stable-window": "30s"}})
	st.Put(ctx, store.ConfigKey(NameAutoscaler), b)
	select {
	case <-changed:
	case <-ctx.Done():
		t.Fatal("no change notification")
	}
	if got := w.Current().Autoscaler().StableWindow; got != 30*time.Second {
		t.Fatalf("stable window = %v", got)
	}
}
