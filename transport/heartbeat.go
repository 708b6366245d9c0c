package transport

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nuid"
)

// beat is one heartbeat message (JSON, so it is readable with `nats sub`).
type beat struct {
	ID          string `json:"id"`
	Epoch       uint64 `json:"epoch"`
	Incarnation string `json:"inc"` // random per StartHeartbeat: reveals restarts
	Seq         uint64 `json:"seq"`
	Leaving     bool   `json:"leaving,omitempty"`
}

// StartHeartbeat publishes a heartbeat for id on subject now and then every
// `every`, carrying epoch() (nil: 0). stop ends it and publishes a final
// "leaving" beat so watchers see a clean shutdown at once instead of after
// their timeout. stop is idempotent.
func StartHeartbeat(conn *Conn, subject, id string, epoch func() uint64, every time.Duration) (stop func()) {
	if every <= 0 {
		every = time.Second
	}
	b := beat{ID: id, Incarnation: nuid.Next()}
	publish := func() {
		b.Seq++
		if epoch != nil {
			b.Epoch = epoch()
		}
		data, _ := json.Marshal(b)
		if err := conn.publish(subject, data); err != nil {
			conn.log.Debug("heartbeat publish failed", "subject", subject, "err", err)
		}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			publish()
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			close(done)
			wg.Wait()
			b.Leaving = true
			publish()
			_ = conn.nc.FlushTimeout(time.Second)
		})
	}
}

// HeartbeatEvent is a liveness change of one process.
type HeartbeatEvent struct {
	ID          string
	Alive       bool
	Epoch       uint64 // last epoch the process reported
	Incarnation string // changes when the process restarted
}

// WatchHeartbeats tracks the heartbeats on subject and calls onChange when a
// process appears (alive), misses beats for longer than timeout or leaves
// (not alive), or comes back. A process that restarts within the timeout is
// reported not-alive then alive. Calls are serialised on one goroutine.
func WatchHeartbeats(conn *Conn, subject string, timeout time.Duration,
	onChange func(id string, alive bool)) (stop func(), err error) {
	return WatchHeartbeatEvents(conn, subject, timeout, func(ev HeartbeatEvent) { onChange(ev.ID, ev.Alive) })
}

// WatchHeartbeatEvents is WatchHeartbeats with the epoch and incarnation.
func WatchHeartbeatEvents(conn *Conn, subject string, timeout time.Duration,
	onChange func(HeartbeatEvent)) (stop func(), err error) {
	if timeout <= 0 {
		return nil, fmt.Errorf("transport: heartbeat timeout must be positive")
	}
	beats := make(chan beat, 1024)
	perID := strings.HasSuffix(subject, ".*")
	unsub, err := conn.Subscribe(subject, func(msgSubject string, data []byte) {
		var b beat
		if err := json.Unmarshal(data, &b); err != nil || b.ID == "" {
			conn.log.Warn("ignoring malformed heartbeat", "subject", msgSubject, "err", err)
			return
		}
		if perID && msgSubject[strings.LastIndexByte(msgSubject, '.')+1:] != b.ID {
			// Permissions bind hb.<id> to id's credential; a beat naming
			// another process is a spoof.
			conn.log.Warn("ignoring a heartbeat whose id differs from its subject", "subject", msgSubject, "id", b.ID)
			return
		}
		select {
		case beats <- b:
		default: // the tracker is far behind; one lost beat is harmless
		}
	})
	if err != nil {
		return nil, err
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tr := newLivenessTracker(timeout)
		t := time.NewTicker(max(timeout/4, time.Millisecond))
		defer t.Stop()
		for {
			var evs []HeartbeatEvent
			select {
			case <-done:
				return
			case b := <-beats:
				evs = tr.observe(b, time.Now())
			case now := <-t.C:
				evs = tr.expire(now)
			}
			for _, ev := range evs {
				onChange(ev)
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			unsub()
			close(done)
			wg.Wait()
		})
	}, nil
}

// livenessTracker is the clock-free core of WatchHeartbeats: times are
// passed in, so tests drive it deterministically.
type livenessTracker struct {
	timeout time.Duration
	peers   map[string]*peerState
}

type peerState struct {
	last  time.Time
	alive bool
	epoch uint64
	inc   string
}

func newLivenessTracker(timeout time.Duration) *livenessTracker {
	return &livenessTracker{timeout: timeout, peers: map[string]*peerState{}}
}

func (t *livenessTracker) observe(b beat, now time.Time) []HeartbeatEvent {
	p := t.peers[b.ID]
	if p == nil {
		p = &peerState{}
		t.peers[b.ID] = p
	}
	var evs []HeartbeatEvent
	ev := func(alive bool) {
		p.alive = alive
		evs = append(evs, HeartbeatEvent{ID: b.ID, Alive: alive, Epoch: p.epoch, Incarnation: p.inc})
	}
	if b.Leaving {
		if p.alive && p.inc == b.Incarnation {
			ev(false)
		}
		return evs
	}
	if p.alive && p.inc != b.Incarnation {
		ev(false) // restarted without us noticing a gap
	}
	p.last, p.epoch, p.inc = now, b.Epoch, b.Incarnation
	if !p.alive {
		ev(true)
	}
	return evs
}

func (t *livenessTracker) expire(now time.Time) []HeartbeatEvent {
	var evs []HeartbeatEvent
	for id, p := range t.peers {
		if p.alive && now.Sub(p.last) > t.timeout {
			p.alive = false
			evs = append(evs, HeartbeatEvent{ID: id, Alive: false, Epoch: p.epoch, Incarnation: p.inc})
		}
	}
	sort.Slice(evs, func(i, j int) bool { return evs[i].ID < evs[j].ID })
	return evs
}
