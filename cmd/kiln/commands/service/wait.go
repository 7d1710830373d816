package service

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	metav1 "github.com/kiln-serving/kiln/api/meta/v1"
	v1 "github.com/kiln-serving/kiln/api/serving/v1"
	"github.com/kiln-serving/kiln/cmd/kiln/commands/client"
)

// progress prints kn-style "  0.058s message" lines, one per new message.
type progress struct {
	w     io.Writer
	start time.Time
	last  string
}

func (p *progress) say(msg string) {
	if msg == "" || msg == p.last {
		return
	}
	p.last = msg
	fmt.Fprintf(p.w, "%7.3fs %s\n", time.Since(p.start).Seconds(), msg)
}

// errNotReady is returned when Ready turned False.
type errNotReady struct{ reason, message string }

func (e *errNotReady) Error() string {
	if e.reason == "" {
		return e.message
	}
	return e.reason + ": " + e.message
}

// check reports whether s (at generation gen or later) is ready or failed,
// printing Ready's message on the way.
func check(s *v1.Service, gen int64, p *progress) (done bool, err error) {
	if s.Status.ObservedGeneration < gen || s.Status.ObservedGeneration != s.Metadata.Generation {
		return false, nil
	}
	c := s.Status.GetCondition(v1.ServiceConditionReady)
	if c == nil {
		return false, nil
	}
	switch c.Status {
	case metav1.ConditionTrue:
		p.say("Ready to serve.")
		return true, nil
	case metav1.ConditionFalse:
		return true, &errNotReady{reason: c.Reason, message: c.Message}
	}
	p.say(c.Message)
	return false, nil
}

// waitReady follows the Service through the watch endpoint (never polling)
// from the version the caller just wrote until the controller reports the
// new generation Ready, or Ready False, or timeout.
func waitReady(ctx context.Context, cl *client.Client, s *v1.Service, timeout time.Duration, p *progress) (*v1.Service, error) {
	gen := s.Metadata.Generation
	if done, err := check(s, gen, p); done {
		return s, err
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	w, err := cl.Watch(ctx, v1.ResourceServices, s.Metadata.Namespace, s.Metadata.Name, s.Metadata.ResourceVersion)
	if err != nil {
		return nil, err
	}
	defer w.Close()
	for {
		ev, err := w.Next()
		if err != nil {
			if ctx.Err() != nil {
				return nil, fmt.Errorf("timeout: service '%s' not ready after %d seconds", s.Metadata.Name, int(timeout.Seconds()))
			}
			if errors.Is(err, io.EOF) {
				return nil, fmt.Errorf("watch of service '%s' ended before it became ready", s.Metadata.Name)
			}
			return nil, err
		}
		if ev.Type == "DELETED" {
			return nil, fmt.Errorf("service '%s' was deleted while waiting for it to become ready", s.Metadata.Name)
		}
		var cur v1.Service
		if err := json.Unmarshal(ev.Object, &cur); err != nil {
			return nil, fmt.Errorf("decode watch event: %w", err)
		}
		if done, err := check(&cur, gen, p); done {
			return &cur, err
		}
	}
}
