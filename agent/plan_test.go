package agent

import (
	"reflect"
	"testing"

	"github.com/kiln-serving/kiln/agent/runtime"
)

// ctr is a serving container as an earlier agent left it.
func ctr(id string) runtime.Container {
	return runtime.Container{ID: id, Running: true, Labels: map[string]string{labelInstance: id, labelRevision: "r-1"}}
}

// labelled is a serving container whose ID is not its instance's name.
func labelled(id, instance string) runtime.Container {
	return runtime.Container{ID: id, Running: true, Labels: map[string]string{labelInstance: instance, labelRevision: "r-1"}}
}

// podCtr is a sidecar or init container of instance.
func podCtr(id, instance string) runtime.Container {
	return runtime.Container{ID: id, Running: true, Labels: map[string]string{labelPod: instance}}
}

func TestPlan(t *testing.T) {
	tests := []struct {
		name   string
		placed []string
		live   []string
		found  []runtime.Container
		want   actions
	}{
		{
			name: "nothing anywhere",
		},
		{
			name:   "fresh node starts every placement",
			placed: []string{"b", "a"},
			want:   actions{Start: []string{"a", "b"}},
		},
		{
			name:   "steady state does nothing",
			placed: []string{"a", "b"},
			live:   []string{"b", "a"},
		},
		{
			name:   "placement removed stops its worker",
			placed: []string{"a"},
			live:   []string{"a", "b"},
			want:   actions{Stop: []string{"b"}},
		},
		{
			name:   "placement added while others run",
			placed: []string{"a", "c"},
			live:   []string{"a"},
			want:   actions{Start: []string{"c"}},
		},
		{
			name:   "restart adopts placed containers and starts the rest",
			placed: []string{"keep", "new"},
			found:  []runtime.Container{ctr("keep")},
			want:   actions{Adopt: []runtime.Container{ctr("keep")}, Start: []string{"new"}},
		},
		{
			name:   "restart adopts a container with a hashed ID by its instance label",
			placed: []string{"a--b"},
			found:  []runtime.Container{labelled(containerID("a--b"), "a--b")},
			want:   actions{Adopt: []runtime.Container{labelled(containerID("a--b"), "a--b")}},
		},
		{
			name:  "restart removes a hashed-ID container whose placement went away",
			live:  []string{"a--b"},
			found: []runtime.Container{labelled(containerID("a--c"), "a--c")},
			want:  actions{Remove: []runtime.Container{labelled(containerID("a--c"), "a--c")}, Stop: []string{"a--b"}},
		},
		{
			name:   "restart removes containers whose placement went away",
			placed: []string{"keep"},
			found:  []runtime.Container{ctr("drop"), ctr("keep"), ctr("alien")},
			want: actions{
				Remove: []runtime.Container{ctr("alien"), ctr("drop")},
				Adopt:  []runtime.Container{ctr("keep")},
			},
		},
		{
			name:   "a stopped container is still handed to its worker",
			placed: []string{"keep"},
			found:  []runtime.Container{{ID: "keep", Labels: map[string]string{labelInstance: "keep"}}},
			want:   actions{Adopt: []runtime.Container{{ID: "keep", Labels: map[string]string{labelInstance: "keep"}}}},
		},
		{
			name:   "sidecars follow their instance",
			placed: []string{"keep"},
			found: []runtime.Container{
				ctr("keep"), podCtr("keep.log", "keep"), podCtr("keep.init.setup", "keep"),
				ctr("drop"), podCtr("drop.log", "drop"),
			},
			want: actions{
				Remove: []runtime.Container{ctr("drop"), podCtr("drop.log", "drop")},
				Adopt:  []runtime.Container{ctr("keep")},
			},
		},
		{
			name:   "a sidecar left without its serving container waits for its instance's worker",
			placed: []string{"half"},
			found:  []runtime.Container{podCtr("half.log", "half")},
			want:   actions{Start: []string{"half"}},
		},
		{
			name:   "containers of live workers are theirs, placed or not",
			placed: []string{"a"},
			live:   []string{"a", "going"},
			found:  []runtime.Container{ctr("a"), podCtr("a.log", "a"), ctr("going"), podCtr("going.log", "going")},
			want:   actions{Stop: []string{"going"}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := plan(tc.placed, tc.live, tc.found)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("plan(%v, %v, %d containers)\n got %+v\nwant %+v", tc.placed, tc.live, len(tc.found), got, tc.want)
			}
		})
	}
}

// Acting on a plan and planning again asks for nothing more: what was
// started or adopted is live, what was stopped is gone, and the containers
// are listed only once.
func TestPlanConverges(t *testing.T) {
	placed := []string{"a", "b", "c"}
	live := []string{"c", "d"}
	found := []runtime.Container{ctr("a"), ctr("e"), podCtr("e.log", "e")}
	do := plan(placed, live, found)
	next := map[string]bool{}
	for _, n := range live {
		next[n] = true
	}
	for _, c := range do.Adopt {
		next[c.ID] = true
	}
	for _, n := range do.Start {
		next[n] = true
	}
	for _, n := range do.Stop {
		delete(next, n)
	}
	var after []string
	for n := range next {
		after = append(after, n)
	}
	if again := plan(placed, after, nil); !reflect.DeepEqual(again, actions{}) {
		t.Errorf("second plan = %+v, want nothing to do", again)
	}
}
