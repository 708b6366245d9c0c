package transport

import (
	"strings"
	"testing"
)

func TestSubjects(t *testing.T) {
	s := Subjects{Job: "job-1"}
	cases := []struct {
		got  func() (string, error)
		want string
	}{
		{s.Coordinator, "unipruning.job-1.coord"},
		{s.Heartbeat, "unipruning.job-1.hb.*"},
		{func() (string, error) { return s.HeartbeatOf("s0") }, "unipruning.job-1.hb.s0"},
		{s.Events, "unipruning.job-1.events"},
		{func() (string, error) { return s.Control("shard_3") }, "unipruning.job-1.ctl.shard_3"},
		{func() (string, error) { return s.Stream("act", "s0", "s1") }, "unipruning.job-1.stream.act.s0.s1"},
		{func() (string, error) { return s.StreamAck("act", "s0", "s1") }, "unipruning.job-1.stream.act.s0.s1.ack"},
		{func() (string, error) { return Subjects{Prefix: "org.up", Job: "j"}.Heartbeat() }, "org.up.j.hb.*"},
	}
	for _, c := range cases {
		got, err := c.got()
		if err != nil || got != c.want {
			t.Errorf("got %q, %v; want %q", got, err, c.want)
		}
	}
	sa, _ := s.StreamAck("grad", "s2", "s1")
	ss, _ := s.Stream("grad", "s2", "s1")
	if sa != DefaultAckSubject(ss) {
		t.Errorf("StreamAck %q != DefaultAckSubject(Stream) %q", sa, DefaultAckSubject(ss))
	}
}

func TestSubjectsRejectBadTokens(t *testing.T) {
	s := Subjects{Job: "j"}
	for _, bad := range []string{"", "a b", "a.b", "*", ">", "a*", "tab\t", "ü"} {
		_, err := s.Control(bad)
		if err == nil {
			t.Errorf("Control(%q) accepted", bad)
			continue
		}
		if !strings.Contains(err.Error(), "subject") {
			t.Errorf("unclear error for %q: %v", bad, err)
		}
	}
	if _, err := (Subjects{Job: "a.b"}).Coordinator(); err == nil || !strings.Contains(err.Error(), "job name") {
		t.Errorf("dotted job accepted or unclear: %v", err)
	}
	if _, err := (Subjects{Prefix: "x..y", Job: "j"}).Coordinator(); err == nil {
		t.Errorf("empty prefix token accepted")
	}
	if _, err := s.Stream("act", "s 0", "s1"); err == nil || !strings.Contains(err.Error(), `' '`) {
		t.Errorf("want error naming the space character, got %v", err)
	}
}
