package coordinator

import (
	"sync"

	"github.com/unipruning/unipruning/transport"
)

// liveness tracks which shard processes are alive from their heartbeats,
// and which incarnation each is (a restarted process lost its state).
type liveness struct {
	mu       sync.Mutex
	alive    map[string]bool
	incarn   map[string]string
	watchers map[int]*watcher
	next     int
}

type watcher struct {
	ids    map[string]string // id → incarnation when the watch started
	onLost func(id string)
	fired  bool
}

func newLiveness() *liveness {
	return &liveness{alive: map[string]bool{}, incarn: map[string]string{}, watchers: map[int]*watcher{}}
}

func (l *liveness) onEvent(ev transport.HeartbeatEvent) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.alive[ev.ID] = ev.Alive
	if ev.Incarnation != "" {
		l.incarn[ev.ID] = ev.Incarnation
	}
	for _, w := range l.watchers {
		inc, watched := w.ids[ev.ID]
		lost := !ev.Alive || (inc != "" && ev.Incarnation != "" && ev.Incarnation != inc)
		if watched && lost && !w.fired {
			w.fired = true
			go w.onLost(ev.ID)
		}
	}
}

func (l *liveness) isAlive(id string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.alive[id]
}

// aliveCount is the number of processes currently alive.
func (l *liveness) aliveCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, a := range l.alive {
		if a {
			n++
		}
	}
	return n
}

// watch calls onLost (once) when one of ids dies or restarts.
func (l *liveness) watch(ids []string, onLost func(id string)) (stop func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	w := &watcher{ids: map[string]string{}, onLost: onLost}
	for _, id := range ids {
		w.ids[id] = l.incarn[id]
		if !l.alive[id] && !w.fired {
			w.fired = true
			go onLost(id)
		}
	}
	key := l.next
	l.next++
	l.watchers[key] = w
	return func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		delete(l.watchers, key)
	}
}
