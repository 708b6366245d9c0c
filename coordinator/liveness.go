package coordinator

import (
	"sync"

	"github.com/unipruning/unipruning/transport"
)

// liveness tracks which shard processes are alive from their heartbeats.
// A restarted process (which lost its state) needs no check of its own
// here: the transport's tracker reports it not-alive before alive again.
type liveness struct {
	mu       sync.Mutex
	alive    map[string]bool
	watchers map[int]*watcher
	next     int
}

type watcher struct {
	ids    map[string]bool
	onLost func(id string)
	fired  bool
}

func newLiveness() *liveness {
	return &liveness{alive: map[string]bool{}, watchers: map[int]*watcher{}}
}

func (l *liveness) onEvent(ev transport.HeartbeatEvent) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.alive[ev.ID] = ev.Alive
	for _, w := range l.watchers {
		if w.ids[ev.ID] && !ev.Alive && !w.fired {
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

// watch calls onLost (once) when one of ids dies or restarts.
func (l *liveness) watch(ids []string, onLost func(id string)) (stop func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	w := &watcher{ids: map[string]bool{}, onLost: onLost}
	for _, id := range ids {
		w.ids[id] = true
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
