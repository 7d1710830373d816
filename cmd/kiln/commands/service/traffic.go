package service

import (
	"fmt"
	"strconv"
	"strings"

	v1 "github.com/kiln-serving/kiln/api/serving/v1"
)

// latestRef names the latest ready revision in --traffic and --tag.
const latestRef = "@latest"

// TrafficFlags are the values of --traffic, --tag and --untag, each already
// split at commas.
type TrafficFlags struct {
	Percentages []string // REVISION=N, TAG=N, @latest=N or bare N (@latest)
	Tags        []string // REVISION=TAG or @latest=TAG
	Untags      []string // TAG
}

// Changed reports whether any traffic flag was given.
func (f *TrafficFlags) Changed() bool {
	return len(f.Percentages)+len(f.Tags)+len(f.Untags) > 0
}

// splitFlag splits comma-separated values of repeated flags.
func splitFlag(vals []string) []string {
	var out []string
	for _, v := range vals {
		for _, p := range strings.Split(v, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
	}
	return out
}

// splitByEqualSign parses "ref=value"; a bare "value" refers to @latest.
func splitByEqualSign(pair string) (string, string, error) {
	parts := strings.Split(pair, "=")
	if len(parts) == 1 {
		return latestRef, parts[0], nil
	}
	if len(parts) != 2 || parts[0] == "" || parts[1] == "" {
		return "", "", fmt.Errorf("expecting the value format in value1=value2, given %s", pair)
	}
	return parts[0], strings.TrimSuffix(parts[1], "%"), nil
}

func isLatest(t v1.TrafficTarget) bool { return t.LatestRevision != nil && *t.LatestRevision }

func newTarget(tag, revision string, percent int64, latest bool) v1.TrafficTarget {
	t := v1.TrafficTarget{Tag: tag, Percent: &percent}
	l := latest
	t.LatestRevision = &l
	if !latest {
		t.RevisionName = revision
	}
	return t
}

func repeatErr(flag, name string) error {
	if name == latestRef {
		name = "identifier " + latestRef
	} else {
		name = "revision reference " + name
	}
	return fmt.Errorf("repetition of %s is not allowed, use only once with %s flag", name, flag)
}

func remainderErr(sum int, notFound bool) error {
	reason := "incorrect number of revisions specified. Only 1 revision should be missing"
	if notFound {
		reason = "cannot determine the missing revision"
	}
	return fmt.Errorf("unable to allocate the remaining traffic: %d%%. Reason: %s", 100-sum, reason)
}

// verifyInput checks the flags as kn does and, when the percentages sum
// to less than 100 and exactly one routed revision is left out, gives it
// the remainder (to @latest when the update creates a new revision).
func verifyInput(f *TrafficFlags, svc *v1.Service, mutation bool) error {
	latestTagged := false
	for _, each := range f.Tags {
		rev, _, err := splitByEqualSign(each)
		if err != nil {
			return err
		}
		if rev == latestRef {
			if latestTagged {
				return repeatErr("--tag", latestRef)
			}
			latestTagged = true
		}
	}
	refs := map[string]bool{}
	sum := 0
	for _, each := range f.Percentages {
		ref, pct, err := splitByEqualSign(each)
		if err != nil {
			return err
		}
		if refs[ref] {
			return repeatErr("--traffic", ref)
		}
		refs[ref] = true
		n, err := strconv.Atoi(pct)
		if err != nil {
			return fmt.Errorf("error converting given %s to integer value for traffic distribution", pct)
		}
		if n < 0 || n > 100 {
			return fmt.Errorf("invalid value for traffic percent %d, expected 0 <= percent <= 100", n)
		}
		sum += n
	}
	switch {
	case sum == 100:
		return nil
	case sum > 100:
		return fmt.Errorf("given traffic percents sum to %d, want <=100", sum)
	case len(f.Percentages) == 0:
		return nil
	}
	routed := svc.Status.Traffic
	given := len(f.Percentages)
	if given < len(routed)-1 {
		return remainderErr(sum, false)
	}
	if mutation {
		if given != len(routed) {
			return remainderErr(sum, false)
		}
		if !refs[latestRef] {
			f.Percentages = append(f.Percentages, fmt.Sprintf("%s=%d", latestRef, 100-sum))
			return nil
		}
	} else {
		if given != len(routed)-1 {
			return remainderErr(sum, false)
		}
		if refs[latestRef] {
			refs[svc.Status.LatestReadyRevisionName] = true
		}
	}
	for _, t := range routed {
		if t.RevisionName == "" {
			break
		}
		if !refs[t.RevisionName] && (t.Tag == "" || !refs[t.Tag]) {
			f.Percentages = append(f.Percentages, fmt.Sprintf("%s=%d", t.RevisionName, 100-sum))
			return nil
		}
	}
	return remainderErr(sum, true)
}

// ComputeTraffic applies the flags to svc's traffic block with kn's
// precedence: untag first, then tag, then traffic; targets left with no tag
// and 0% are dropped. setTraffic is true when --traffic was given (or, on
// create, when tags were): the percentages on the command line then are
// the whole desired split. mutation says the update also creates a new
// revision, so a remainder goes to @latest.
func ComputeTraffic(svc *v1.Service, f *TrafficFlags, setTraffic, mutation bool) ([]v1.TrafficTarget, error) {
	if err := verifyInput(f, svc, mutation); err != nil {
		return nil, err
	}
	traffic := append([]v1.TrafficTarget(nil), svc.Spec.Traffic...)
	for i := range traffic {
		if traffic[i].LatestRevision == nil {
			l := traffic[i].RevisionName == ""
			traffic[i].LatestRevision = &l
		}
		if traffic[i].Percent == nil {
			traffic[i].Percent = new(int64)
		}
	}
	tagPresent := func(tag string) bool {
		for _, t := range traffic {
			if t.Tag == tag {
				return true
			}
		}
		return false
	}
	var missing []string
	for _, tag := range f.Untags {
		found := false
		for i := range traffic {
			if traffic[i].Tag == tag {
				traffic[i].Tag = ""
				found = true
				break
			}
		}
		if !found {
			missing = append(missing, tag)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("tag(s) %s not present for any revisions of service %s", strings.Join(missing, ", "), svc.Metadata.Name)
	}
	for _, each := range f.Tags {
		rev, tag, _ := splitByEqualSign(each)
		if rev == latestRef {
			existing := ""
			for _, t := range traffic {
				if isLatest(t) {
					existing = t.Tag
					break
				}
			}
			switch {
			case existing == tag:
			case tagPresent(tag):
				return nil, overwriteErr(tag)
			case existing != "":
				return nil, fmt.Errorf("tag '%s' exists on latest ready revision of service, refusing to overwrite existing tag with '%s', add flag '--untag %s' in command to untag it", existing, tag, existing)
			default:
				traffic = tagLatest(traffic, tag)
			}
			continue
		}
		onRev := false
		for _, t := range traffic {
			if t.Tag == tag && t.RevisionName == rev {
				onRev = true
			}
		}
		if onRev {
			continue
		}
		if tagPresent(tag) {
			return nil, overwriteErr(tag)
		}
		traffic = tagRevision(traffic, tag, rev)
	}
	if setTraffic {
		for i := range traffic {
			traffic[i].Percent = new(int64)
		}
		for _, each := range f.Percentages {
			ref, pct, _ := splitByEqualSign(each)
			n, _ := strconv.ParseInt(pct, 10, 64)
			traffic = setPercent(traffic, ref, n)
		}
	}
	var out []v1.TrafficTarget
	for _, t := range traffic {
		if t.Tag != "" || *t.Percent != 0 {
			out = append(out, t)
		}
	}
	return out, nil
}

func overwriteErr(tag string) error {
	return fmt.Errorf("refusing to overwrite existing tag in service, add flag '--untag %s' in command to untag it", tag)
}

func tagLatest(traffic []v1.TrafficTarget, tag string) []v1.TrafficTarget {
	for i := range traffic {
		if isLatest(traffic[i]) {
			traffic[i].Tag = tag
			return traffic
		}
	}
	return append(traffic, newTarget(tag, "", 0, true))
}

// tagRevision tags the revision's untagged target, or adds a 0% target
// when the revision is not routed or already carries another tag.
func tagRevision(traffic []v1.TrafficTarget, tag, rev string) []v1.TrafficTarget {
	for i := range traffic {
		if traffic[i].RevisionName == rev {
			if traffic[i].Tag != "" {
				break
			}
			traffic[i].Tag = tag
			return traffic
		}
	}
	return append(traffic, newTarget(tag, rev, 0, false))
}

// setPercent routes n% to ref: @latest, else a tag, else a revision name
// (tags win, being unique); an unknown revision gets a new target.
func setPercent(traffic []v1.TrafficTarget, ref string, n int64) []v1.TrafficTarget {
	set := func(match func(v1.TrafficTarget) bool) bool {
		for i := range traffic {
			if match(traffic[i]) {
				traffic[i].Percent = &n
				return true
			}
		}
		return false
	}
	switch {
	case ref == latestRef:
		if !set(isLatest) {
			traffic = append(traffic, newTarget("", "", n, true))
		}
	case set(func(t v1.TrafficTarget) bool { return t.Tag == ref }):
	case set(func(t v1.TrafficTarget) bool { return t.RevisionName == ref }):
	default:
		traffic = append(traffic, newTarget("", ref, n, false))
	}
	return traffic
}
