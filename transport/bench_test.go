package transport

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// BenchmarkStreamThroughput streams activation-like frames (seqlen 128 ×
// hidden 4096 float32 = 2 MiB) between two connections through an embedded
// server on loopback. MB/s counts uncompressed float bytes.
func BenchmarkStreamThroughput(b *testing.B) {
	const rows, cols = 128, 4096
	for _, codec := range []Codec{CodecNone, CodecZstd, CodecS2} {
		for _, data := range []struct {
			name  string
			zeros float64
		}{{"gauss", 0}, {"zeros50", 0.5}} {
			b.Run(fmt.Sprintf("%s/%s", codec, data.name), func(b *testing.B) {
				benchStream(b, codec, activations(1, rows*cols, data.zeros), rows, cols)
			})
		}
	}
}

func benchStream(b *testing.B, codec Codec, payload []float32, rows, cols int) {
	srv := startServer(b, ServerConfig{})
	sc := connect(b, srv.ClientURL(), Options{Name: "bench-send"})
	rc := connect(b, srv.ClientURL(), Options{Name: "bench-recv"})
	subj := "unipruning.bench.stream.act.s0.s1"
	r, err := rc.NewReceiver(subj, StreamConfig{})
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	s, err := sc.NewSender(subj, StreamConfig{Codec: codec})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	b.SetBytes(int64(4 * len(payload)))
	b.ReportAllocs()
	b.ResetTimer()
	errc := make(chan error, 1)
	go func() {
		for i := 0; i < b.N; i++ {
			if err := s.Send(ctx, FrameHeader{Kind: "act", Step: int64(i), Rows: rows, Cols: cols}, payload); err != nil {
				errc <- err
				return
			}
		}
		errc <- s.Flush(ctx)
	}()
	for i := 0; i < b.N; i++ {
		if _, _, err := r.Recv(ctx); err != nil {
			b.Fatal(err)
		}
	}
	if err := <-errc; err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	st := s.Stats()
	b.ReportMetric(float64(st.WireBytes)/float64(st.PayloadBytes), "wire/raw")
	b.ReportMetric(float64(st.Retransmits), "retransmits")
}
