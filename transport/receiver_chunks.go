package transport

import (
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"
)

// onChunk handles one message on the data subject. NATS runs it for one
// message at a time, in arrival order.
func (r *Receiver) onChunk(m *nats.Msg) {
	h, err := parseChunkHeader(m.Data)
	if err != nil {
		if errors.Is(err, errHeaderCRC) {
			r.stats.crcFailures.Add(1)
		}
		r.log.Warn("dropping corrupt stream chunk; the sender will retransmit it", "err", err, "bytes", len(m.Data))
		return
	}
	r.stats.wireBytes.Add(uint64(len(m.Data)))
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return
	}
	if h.typ == msgProbe {
		r.answerProbeLocked(h.session)
		return
	}
	if h.typ != msgData {
		r.log.Warn("dropping stream message of unknown type", "type", h.typ)
		return
	}
	if s := r.routeLocked(h); s != nil {
		r.acceptLocked(s, h, m.Data[chunkHeaderSize:])
	}
}

func (r *Receiver) answerProbeLocked(session uint64) {
	if r.cur != nil && r.cur.id == session {
		r.ackLocked(r.cur)
		return
	}
	for _, rs := range r.retired {
		if rs.id == session {
			r.sendAckLocked(ackMsg{session: rs.id, through: rs.through, credit: rs.through, window: uint32(r.cfg.Window)})
			return
		}
	}
	// Unknown sender: tell it the window a fresh session starts with.
	a := ackMsg{window: uint32(r.cfg.Window)}
	if r.cur != nil {
		a = ackMsg{session: r.cur.id, through: r.cur.through,
			credit: r.cur.consumed + uint64(r.cfg.Window), window: uint32(r.cfg.Window)}
	}
	r.sendAckLocked(a)
}

// routeLocked decides which session a chunk belongs to, adopting a new
// sender session when that is safe. It returns nil if the chunk is dropped.
func (r *Receiver) routeLocked(h chunkHeader) *rxSession {
	if r.cur != nil && h.session == r.cur.id {
		return r.cur
	}
	for _, rs := range r.retired {
		if rs.id != h.session {
			continue
		}
		if h.seq <= rs.through {
			// An old sender still retransmitting something we had: ack it
			// so it can finish, deliver nothing.
			r.stats.duplicates.Add(1)
			r.sendAckLocked(ackMsg{session: rs.id, through: rs.through, credit: rs.through, window: uint32(r.cfg.Window)})
		} else if h.index == 0 {
			r.rejectLocked(h.session, h.seq, h.epoch, "sender session was superseded by a newer one")
		}
		return nil
	}
	if h.epoch < r.minEpoch {
		if h.index == 0 {
			r.rejectLocked(h.session, h.seq, h.epoch, "new sender session below the epoch fence")
		}
		return nil
	}
	// A new session is only taken over at its start (a session that began
	// elsewhere has frames we never saw), and only if it supersedes the
	// current one: a higher epoch, or the current one has nothing pending.
	fresh := h.seq <= uint64(r.cfg.Window)
	if fresh && (r.cur == nil || h.epoch > r.cur.maxEpoch || len(r.cur.frames) == 0) {
		r.adoptLocked(h)
		return r.cur
	}
	if !fresh && h.index == 0 {
		r.rejectLocked(h.session, h.seq, h.epoch, "unknown sender session past its start "+
			"(the receiver restarted mid-stream; the stream must be restarted)")
	} else if h.index == 0 {
		r.rejectLocked(h.session, h.seq, h.epoch, fmt.Sprintf(
			"another sender session (%016x) is active at epoch %d with frames in flight; "+
				"a replacing sender must use a higher epoch", r.cur.id, r.cur.maxEpoch))
	}
	return nil
}

func (r *Receiver) adoptLocked(h chunkHeader) {
	if old := r.cur; old != nil {
		if n := len(old.frames); n > 0 {
			r.stats.rejected.Add(uint64(n))
			r.log.Warn("discarding undelivered frames of the superseded sender session",
				"old_session", fmt.Sprintf("%016x", old.id), "frames", n)
		}
		r.retired = append(r.retired, retiredSession{id: old.id, through: old.through})
		if len(r.retired) > maxRetiredSessions {
			r.retired = r.retired[1:]
		}
	}
	r.log.Info("stream following sender session", "session", fmt.Sprintf("%016x", h.session), "epoch", h.epoch)
	r.cur = &rxSession{id: h.session, maxEpoch: h.epoch, frames: map[uint64]*rxFrame{}}
}

// acceptLocked stores one chunk of the current session.
func (r *Receiver) acceptLocked(s *rxSession, h chunkHeader, body []byte) {
	s.maxEpoch = max(s.maxEpoch, h.epoch)
	f := s.frames[h.seq]
	switch {
	case h.seq <= s.consumed || f != nil && f.done:
		r.stats.duplicates.Add(1)
		r.ackLocked(s) // our ack may have been lost: repeat it
		return
	case h.seq > s.consumed+uint64(r.cfg.Window):
		r.stats.outOfWindow.Add(1)
		r.log.Debug("dropping chunk beyond the credit window", "seq", h.seq, "consumed", s.consumed)
		return
	case h.epoch < r.minEpoch:
		// Fenced frame of the live session: acknowledge and skip it so the
		// sequence does not stall on it.
		r.rejectLocked(s.id, h.seq, h.epoch, "frame below the epoch fence")
		s.frames[h.seq] = &rxFrame{epoch: h.epoch, done: true, stale: true}
		r.frameDoneLocked(s)
		return
	}
	if f == nil {
		var err error
		if f, err = r.newFrame(h); err != nil {
			r.rejectLocked(s.id, h.seq, h.epoch, err.Error())
			return
		}
		s.frames[h.seq] = f
	}
	if err := f.fits(h); err != nil {
		r.rejectLocked(s.id, h.seq, h.epoch, "inconsistent chunk: "+err.Error())
		return
	}
	if f.got[h.index] {
		r.stats.duplicates.Add(1)
		return
	}
	r.storeChunkLocked(s, f, h, body)
}

func (r *Receiver) storeChunkLocked(s *rxSession, f *rxFrame, h chunkHeader, body []byte) {
	off := uint64(h.index) * uint64(f.chunkSize)
	dst := f.buf.bytes[off : off+uint64(h.rawLen) : off+uint64(h.rawLen)]
	if err := decompressInto(h.codec, dst, body); err != nil {
		r.stats.crcFailures.Add(1)
		r.log.Warn("dropping corrupt stream chunk (undecodable); the sender will retransmit it",
			"seq", h.seq, "chunk", h.index, "codec", h.codec, "err", err)
		return
	}
	if got := crc32c(dst); got != h.crc {
		r.stats.crcFailures.Add(1)
		r.log.Warn("dropping corrupt stream chunk (crc32c mismatch); the sender will retransmit it",
			"seq", h.seq, "chunk", h.index, "want_crc", fmt.Sprintf("%08x", h.crc), "got_crc", fmt.Sprintf("%08x", got))
		return
	}
	r.stats.chunks.Add(1)
	f.got[h.index] = true
	if f.nGot++; f.nGot < f.count {
		return
	}
	hdr, off2, err := decodeMeta(f.buf.bytes)
	if err != nil {
		r.rejectLocked(s.id, h.seq, h.epoch, err.Error())
		f.stale = true
	} else {
		hdr.Seq, hdr.Epoch = h.seq, f.epoch
		f.hdr, f.data = hdr, f.buf.floats(off2)
	}
	f.done, f.got, f.buf = true, nil, frameBuf{}
	r.frameDoneLocked(s)
}

// frameDoneLocked advances the cumulative ack point, acks and wakes Recv.
func (r *Receiver) frameDoneLocked(s *rxSession) {
	for {
		f := s.frames[s.through+1]
		if f == nil || !f.done {
			break
		}
		s.through++
	}
	r.ackLocked(s)
	r.changed.broadcast()
}

func (r *Receiver) newFrame(h chunkHeader) (*rxFrame, error) {
	switch {
	case h.total > uint64(r.cfg.MaxFrameBytes):
		return nil, fmt.Errorf("frame of %d bytes exceeds MaxFrameBytes %d", h.total, r.cfg.MaxFrameBytes)
	case h.total%4 != 0:
		return nil, fmt.Errorf("frame size %d is not a multiple of 4", h.total)
	case h.chunkSize == 0 || h.chunkSize%8 != 0:
		return nil, fmt.Errorf("bad chunk size %d", h.chunkSize)
	case uint64(h.count) != chunkCount(h.total, h.chunkSize):
		return nil, fmt.Errorf("chunk count %d does not match %d bytes in chunks of %d", h.count, h.total, h.chunkSize)
	}
	return &rxFrame{epoch: h.epoch, total: h.total, count: h.count, chunkSize: h.chunkSize,
		got: make([]bool, h.count), buf: newFrameBuf(int(h.total))}, nil
}

// fits checks a chunk against the frame its first chunk announced.
func (f *rxFrame) fits(h chunkHeader) error {
	if h.total != f.total || h.count != f.count || h.chunkSize != f.chunkSize || h.epoch != f.epoch {
		return fmt.Errorf("chunk says total=%d count=%d size=%d epoch=%d, frame has %d/%d/%d/%d",
			h.total, h.count, h.chunkSize, h.epoch, f.total, f.count, f.chunkSize, f.epoch)
	}
	if h.index >= h.count {
		return fmt.Errorf("chunk index %d of %d", h.index, h.count)
	}
	want := min(uint64(f.chunkSize), f.total-uint64(h.index)*uint64(f.chunkSize))
	if uint64(h.rawLen) != want {
		return fmt.Errorf("chunk %d has %d bytes, want %d", h.index, h.rawLen, want)
	}
	return nil
}
