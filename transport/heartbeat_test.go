package transport

import (
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"
)

func TestLivenessTrackerDeterministic(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	tr := newLivenessTracker(100 * time.Millisecond)
	var log []string
	rec := func(evs []HeartbeatEvent) {
		for _, e := range evs {
			log = append(log, fmt.Sprintf("%s:%v:%d", e.ID, e.Alive, e.Epoch))
		}
	}
	rec(tr.observe(beat{ID: "b", Incarnation: "1", Epoch: 1}, at(0)))
	rec(tr.observe(beat{ID: "a", Incarnation: "1", Epoch: 1}, at(10)))
	rec(tr.observe(beat{ID: "a", Incarnation: "1", Epoch: 2}, at(60)))
	rec(tr.expire(at(100)))                                             // b at exactly the timeout: still alive
	rec(tr.expire(at(101)))                                             // b expires
	rec(tr.expire(at(161)))                                             // a expires
	rec(tr.observe(beat{ID: "a", Incarnation: "1", Epoch: 2}, at(170))) // a is back
	rec(tr.observe(beat{ID: "a", Incarnation: "2", Epoch: 3}, at(180))) // a restarted
	rec(tr.observe(beat{ID: "a", Incarnation: "1", Leaving: true}, at(185)))
	rec(tr.observe(beat{ID: "a", Incarnation: "2", Leaving: true}, at(190)))
	rec(tr.expire(at(1000)))
	want := []string{"b:true:1", "a:true:1", "b:false:1", "a:false:2", "a:true:2", "a:false:2", "a:true:3", "a:false:3"}
	if !reflect.DeepEqual(log, want) {
		t.Fatalf("events\n got %v\nwant %v", log, want)
	}
}

func TestHeartbeats(t *testing.T) {
	srv := startServer(t, ServerConfig{})
	watcher := connect(t, srv.ClientURL(), Options{})
	shard0 := connect(t, srv.ClientURL(), Options{})
	shard1 := connect(t, srv.ClientURL(), Options{})
	subj, _ := Subjects{Job: "hb"}.Heartbeat()

	var mu sync.Mutex
	state := map[string]bool{}
	var events []HeartbeatEvent
	stopWatch, err := WatchHeartbeatEvents(watcher, subj, 400*time.Millisecond, func(ev HeartbeatEvent) {
		mu.Lock()
		defer mu.Unlock()
		state[ev.ID] = ev.Alive
		events = append(events, ev)
	})
	if err != nil {
		t.Fatal(err)
	}
	defer stopWatch()
	alive := func(id string, want bool) func() bool {
		return func() bool { mu.Lock(); defer mu.Unlock(); v, ok := state[id]; return ok && v == want }
	}
	of := func(id string) string { s, _ := Subjects{Job: "hb"}.HeartbeatOf(id); return s }
	// A beat on another process's subject is a spoof and is ignored.
	spoof := StartHeartbeat(shard1, of("shard-1"), "shard-9", nil, 20*time.Millisecond)
	stop0 := StartHeartbeat(shard0, of("shard-0"), "shard-0", func() uint64 { return 7 }, 20*time.Millisecond)
	stop1 := StartHeartbeat(shard1, of("shard-1"), "shard-1", nil, 20*time.Millisecond)
	waitFor(t, 5*time.Second, "both alive", func() bool { return alive("shard-0", true)() && alive("shard-1", true)() })
	spoof()

	// A clean stop is seen at once (well before the timeout).
	start := time.Now()
	stop0()
	waitFor(t, 5*time.Second, "shard-0 left", alive("shard-0", false))
	if d := time.Since(start); d > 300*time.Millisecond {
		t.Errorf("leaving beat not honoured: took %v", d)
	}
	// A silent shard (its messages lost) is declared dead after the timeout.
	setHook(t, shard1, func(string, []byte) []byte { return nil })
	waitFor(t, 5*time.Second, "shard-1 dead", alive("shard-1", false))
	shard1.hook.Store(nil)
	waitFor(t, 5*time.Second, "shard-1 back", alive("shard-1", true))
	stop1()
	stop1() // idempotent
	mu.Lock()
	defer mu.Unlock()
	if _, ok := state["shard-9"]; ok {
		t.Errorf("a beat naming shard-9 on shard-1's subject was accepted")
	}
	if events[0].ID != "shard-0" && events[1].ID != "shard-0" {
		t.Fatalf("events %+v", events)
	}
	for _, ev := range events {
		if ev.ID == "shard-0" && ev.Epoch != 7 {
			t.Errorf("epoch not carried: %+v", ev)
		}
	}
}
