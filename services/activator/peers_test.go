package activator

import "testing"

func TestShare(t *testing.T) {
	tests := []struct {
		name          string
		cc, n, pods   int
		want          [][]int // [activator][pod]
		wantNoShareOf []int   // activators left without any slot
	}{
		{name: "one activator holds it all", cc: 10, n: 1, pods: 2, want: [][]int{{10, 10}}},
		{name: "even split", cc: 10, n: 2, pods: 2, want: [][]int{{5, 5}, {5, 5}}},
		{name: "remainder rotates over instances", cc: 10, n: 3, pods: 3,
			want: [][]int{{4, 3, 3}, {3, 4, 3}, {3, 3, 4}}},
		{name: "cc 1, two activators, two instances: one each", cc: 1, n: 2, pods: 2,
			want: [][]int{{1, 0}, {0, 1}}},
		{name: "cc 1, two activators, one instance", cc: 1, n: 2, pods: 1,
			want: [][]int{{1}, {0}}, wantNoShareOf: []int{1}},
		{name: "cc 2, three activators, one instance", cc: 2, n: 3, pods: 1,
			want: [][]int{{1}, {1}, {0}}, wantNoShareOf: []int{2}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for pod := range tc.pods {
				sum := 0
				for self := range tc.n {
					got := share(tc.cc, tc.n, self, pod)
					if got != tc.want[self][pod] {
						t.Errorf("share(cc=%d, n=%d, self=%d, pod=%d) = %d, want %d", tc.cc, tc.n, self, pod, got, tc.want[self][pod])
					}
					sum += got
				}
				// Together the activators never exceed the hard limit.
				if sum != tc.cc {
					t.Errorf("pod %d: shares add up to %d, want containerConcurrency %d", pod, sum, tc.cc)
				}
			}
			for self := range tc.n {
				r := &revision{cc: int64(tc.cc), peers: &peers{n: tc.n, self: self}, pods: make([]*pod, tc.pods)}
				want := false
				for _, a := range tc.wantNoShareOf {
					want = want || a == self
				}
				if got := r.noShare(); got != want {
					t.Errorf("activator %d: noShare = %v, want %v", self, got, want)
				}
				if want {
					// Knative's minimum of one slot, on one instance.
					total := 0
					for i := range tc.pods {
						total += max(0, r.capacity(i, true))
					}
					if total != 1 {
						t.Errorf("activator %d without a share gets %d slots, want 1", self, total)
					}
				}
			}
		})
	}
}

func TestCapacityUnlimited(t *testing.T) {
	r := &revision{cc: 0, peers: &peers{n: 3, self: 1}, pods: make([]*pod, 2)}
	if c := r.capacity(0, r.noShare()); c != -1 {
		t.Fatalf("containerConcurrency 0: capacity %d, want -1 (unlimited)", c)
	}
}
