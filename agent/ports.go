package agent

import (
	"errors"
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
)

// portPool hands out ports from the configured range. It holds a port from
// the moment it is handed out until released, so two instances never race
// for one even before their listeners or apps are up.
type portPool struct {
	mu       sync.Mutex
	min, max int
	used     map[int]bool
}

func newPortPool(min, max int) *portPool {
	return &portPool{min: min, max: max, used: map[int]bool{}}
}

var errNoPorts = errors.New("no free port in range")

// listen binds host:port for some free port in the range.
func (p *portPool) listen(host string) (net.Listener, int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := p.max - p.min + 1
	start := rand.IntN(n)
	for i := range n {
		port := p.min + (start+i)%n
		if p.used[port] {
			continue
		}
		ln, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
		if err != nil {
			continue
		}
		p.used[port] = true
		return ln, port, nil
	}
	return nil, 0, errNoPorts
}

// listenOn binds a specific port (re-adoption keeps an instance's port).
func (p *portPool) listenOn(host string, port int) (net.Listener, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.used[port] {
		return nil, errors.New("port " + strconv.Itoa(port) + " already in use by another instance")
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
	if err != nil {
		return nil, err
	}
	p.used[port] = true
	return ln, nil
}

// reserve picks a port free on all interfaces and holds it, for an app
// that will bind it itself (host network).
func (p *portPool) reserve() (int, error) {
	ln, port, err := p.listen("")
	if err != nil {
		return 0, err
	}
	ln.Close()
	return port, nil
}

// hold marks a port as taken without binding it (an adopted app's port).
func (p *portPool) hold(port int) {
	p.mu.Lock()
	p.used[port] = true
	p.mu.Unlock()
}

func (p *portPool) release(port int) {
	if port == 0 {
		return
	}
	p.mu.Lock()
	delete(p.used, port)
	p.mu.Unlock()
}
