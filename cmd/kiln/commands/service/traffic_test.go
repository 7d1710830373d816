package service

import (
	"fmt"
	"strings"
	"testing"

	metav1 "github.com/kiln-serving/kiln/api/meta/v1"
	v1 "github.com/kiln-serving/kiln/api/serving/v1"
)

// tt builds a target from "rev=pct" / "@latest=pct", with "#tag" appended
// for a tag: "echo-v1=50#stable".
func tt(spec string) v1.TrafficTarget {
	ref, rest, _ := strings.Cut(spec, "=")
	pctS, tag, _ := strings.Cut(rest, "#")
	var pct int64
	fmt.Sscan(pctS, &pct)
	return newTarget(tag, strings.TrimPrefix(ref, latestRef), pct, ref == latestRef)
}

func render(ts []v1.TrafficTarget) string {
	var parts []string
	for _, t := range ts {
		ref := t.RevisionName
		if isLatest(t) {
			ref = latestRef
		}
		s := fmt.Sprintf("%s=%d", ref, *t.Percent)
		if t.Tag != "" {
			s += "#" + t.Tag
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, " ")
}

func TestComputeTraffic(t *testing.T) {
	svc := func(latestReady string, spec ...string) *v1.Service {
		s := &v1.Service{Metadata: metav1.ObjectMeta{Name: "echo"}}
		for _, sp := range spec {
			tgt := tt(sp)
			s.Spec.Traffic = append(s.Spec.Traffic, tgt)
			st := tgt
			if isLatest(st) {
				st.RevisionName = latestReady
			}
			s.Status.Traffic = append(s.Status.Traffic, st)
		}
		s.Status.LatestReadyRevisionName = latestReady
		return s
	}
	tests := []struct {
		name      string
		svc       *v1.Service
		flags     TrafficFlags
		setPct    bool
		mutation  bool
		want, err string
	}{
		{name: "bare percent means @latest", svc: svc("echo-v2", "echo-v1=100"),
			flags: TrafficFlags{Percentages: []string{"50", "echo-v1=50"}}, setPct: true,
			want: "echo-v1=50 @latest=50"},
		{name: "split by revision names", svc: svc("echo-v2", "@latest=100"),
			flags: TrafficFlags{Percentages: []string{"echo-v1=20", "echo-v2=80"}}, setPct: true,
			want: "echo-v1=20 echo-v2=80"},
		{name: "tag latest then route by tag", svc: svc("echo-v2", "@latest=100"),
			flags: TrafficFlags{Tags: []string{"@latest=current", "echo-v1=old"}, Percentages: []string{"current=90", "old=10"}}, setPct: true,
			want: "@latest=90#current echo-v1=10#old"},
		{name: "remainder to the one revision left out", svc: svc("echo-v3", "@latest=30", "echo-v1=30", "echo-v2=40"),
			flags: TrafficFlags{Percentages: []string{"@latest=10", "echo-v1=60"}}, setPct: true,
			want: "@latest=10 echo-v1=60 echo-v2=30"},
		{name: "remainder to @latest when a revision is created", svc: svc("echo-v1", "echo-v1=100"),
			flags: TrafficFlags{Percentages: []string{"echo-v1=70"}}, setPct: true, mutation: true,
			want: "echo-v1=70 @latest=30"},
		{name: "remainder needs exactly one missing", svc: svc("echo-v3", "@latest=30", "echo-v1=30", "echo-v2=40"),
			flags: TrafficFlags{Percentages: []string{"echo-v1=60"}}, setPct: true,
			err: "unable to allocate the remaining traffic: 40%. Reason: incorrect number of revisions specified. Only 1 revision should be missing"},
		{name: "sum above 100", svc: svc("echo-v1", "@latest=100"),
			flags: TrafficFlags{Percentages: []string{"@latest=60", "echo-v1=50"}}, setPct: true,
			err: "given traffic percents sum to 110, want <=100"},
		{name: "not an integer", svc: svc("echo-v1", "@latest=100"),
			flags: TrafficFlags{Percentages: []string{"@latest=half"}}, setPct: true,
			err: "error converting given half to integer value for traffic distribution"},
		{name: "percent above 100", svc: svc("echo-v1", "@latest=100"),
			flags: TrafficFlags{Percentages: []string{"@latest=101"}}, setPct: true,
			err: "invalid value for traffic percent 101, expected 0 <= percent <= 100"},
		{name: "repeated @latest in --traffic", svc: svc("echo-v1", "@latest=100"),
			flags: TrafficFlags{Percentages: []string{"@latest=50", "50"}}, setPct: true,
			err: "repetition of identifier @latest is not allowed, use only once with --traffic flag"},
		{name: "repeated revision in --traffic", svc: svc("echo-v1", "@latest=100"),
			flags: TrafficFlags{Percentages: []string{"echo-v1=50", "echo-v1=50"}}, setPct: true,
			err: "repetition of revision reference echo-v1 is not allowed, use only once with --traffic flag"},
		{name: "repeated @latest in --tag", svc: svc("echo-v1", "@latest=100"),
			flags: TrafficFlags{Tags: []string{"@latest=a", "@latest=b"}},
			err:   "repetition of identifier @latest is not allowed, use only once with --tag flag"},
		{name: "malformed pair", svc: svc("echo-v1", "@latest=100"),
			flags: TrafficFlags{Tags: []string{"a=b=c"}},
			err:   "expecting the value format in value1=value2, given a=b=c"},
		{name: "tag an unrouted revision at 0%", svc: svc("echo-v2", "@latest=100"),
			flags: TrafficFlags{Tags: []string{"echo-v1=v1"}},
			want:  "@latest=100 echo-v1=0#v1"},
		{name: "tag already used elsewhere", svc: svc("echo-v2", "@latest=100#v1"),
			flags: TrafficFlags{Tags: []string{"echo-v1=v1"}},
			err:   "refusing to overwrite existing tag in service, add flag '--untag v1' in command to untag it"},
		{name: "latest already tagged", svc: svc("echo-v2", "@latest=100#current"),
			flags: TrafficFlags{Tags: []string{"@latest=next"}},
			err:   "tag 'current' exists on latest ready revision of service, refusing to overwrite existing tag with 'next', add flag '--untag current' in command to untag it"},
		{name: "untag before tag lets a tag move", svc: svc("echo-v2", "@latest=100#current", "echo-v1=0#old"),
			flags: TrafficFlags{Untags: []string{"current"}, Tags: []string{"@latest=next"}},
			want:  "@latest=100#next echo-v1=0#old"},
		{name: "untag drops a 0% target", svc: svc("echo-v2", "@latest=100", "echo-v1=0#old"),
			flags: TrafficFlags{Untags: []string{"old"}},
			want:  "@latest=100"},
		{name: "untag unknown", svc: svc("echo-v2", "@latest=100"),
			flags: TrafficFlags{Untags: []string{"x", "y"}},
			err:   "tag(s) x, y not present for any revisions of service echo"},
		{name: "same tag again is a no-op", svc: svc("echo-v2", "@latest=100", "echo-v1=0#old"),
			flags: TrafficFlags{Tags: []string{"echo-v1=old"}},
			want:  "@latest=100 echo-v1=0#old"},
		{name: "second tag on a tagged revision adds a target", svc: svc("echo-v2", "@latest=100", "echo-v1=0#old"),
			flags: TrafficFlags{Tags: []string{"echo-v1=older"}},
			want:  "@latest=100 echo-v1=0#old echo-v1=0#older"},
		{name: "blue/green: tag v2 at 0% then 50/50 then all to v2", svc: svc("echo-v2", "echo-v1=100"),
			flags: TrafficFlags{Tags: []string{"echo-v2=v2"}, Percentages: []string{"echo-v1=50", "v2=50"}}, setPct: true,
			want: "echo-v1=50 echo-v2=50#v2"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := tc.flags
			got, err := ComputeTraffic(tc.svc, &f, tc.setPct, tc.mutation)
			if tc.err != "" {
				if err == nil || err.Error() != tc.err {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if r := render(got); r != tc.want {
				t.Fatalf("traffic = %q, want %q", r, tc.want)
			}
		})
	}
}

func TestSplitFlag(t *testing.T) {
	if got := strings.Join(splitFlag([]string{"@latest=20,stable=80", " x=1 "}), "|"); got != "@latest=20|stable=80|x=1" {
		t.Fatal(got)
	}
}
