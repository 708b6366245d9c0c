package consensus

import "sync"

// leaderFanout copies raft's single leadership channel to any number of
// subscribers. Raft's channel is buffered and overwritten when unread, and
// so are the subscribers' (capacity 1, latest value wins): nothing here can
// block raft or the fan-out goroutine.
type leaderFanout struct {
	current func() bool

	mu     sync.Mutex
	subs   map[chan bool]struct{}
	closed bool

	quit chan struct{}
	done chan struct{}
}

func newLeaderFanout(src <-chan bool, current func() bool) *leaderFanout {
	f := &leaderFanout{
		current: current,
		subs:    map[chan bool]struct{}{},
		quit:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	go f.run(src)
	return f
}

func (f *leaderFanout) run(src <-chan bool) {
	defer close(f.done)
	for {
		select {
		case v := <-src:
			f.publish(v)
		case <-f.quit:
			return
		}
	}
}

func (f *leaderFanout) publish(v bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for ch := range f.subs {
		offer(ch, v)
	}
}

// offer replaces any unread value in ch with v. Only the holder of f.mu
// sends, so after draining there is room.
func offer(ch chan bool, v bool) {
	select {
	case <-ch:
	default:
	}
	ch <- v
}

// subscribe registers a channel primed with the current leadership, so a
// subscriber never misses an election that happened before it subscribed.
func (f *leaderFanout) subscribe() (<-chan bool, func()) {
	ch := make(chan bool, 1)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		close(ch)
		return ch, func() {}
	}
	f.subs[ch] = struct{}{}
	ch <- f.current()
	cancel := func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		if _, ok := f.subs[ch]; ok {
			delete(f.subs, ch)
			close(ch)
		}
	}
	return ch, cancel
}

// stop ends the fan-out goroutine and closes every subscriber channel.
func (f *leaderFanout) stop() {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return
	}
	f.closed = true
	close(f.quit)
	for ch := range f.subs {
		close(ch)
	}
	f.subs = nil
	f.mu.Unlock()
	<-f.done
}
