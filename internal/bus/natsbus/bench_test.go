package natsbus_test

import (
	"context"
	"testing"
	"time"

	"github.com/switchboard-gateway/switchboard/internal/bus/natsbus"
	"github.com/switchboard-gateway/switchboard/internal/natsembed"
)

// BenchmarkSend measures an addressed call to another node through an
// embedded server on loopback: request, the holder's handler, reply.
func BenchmarkSend(b *testing.B) {
	s, err := natsembed.Start(natsembed.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	buses := make([]*natsbus.Bus, 2)
	for i, name := range []string{"a", "b"} {
		nc, err := natsbus.Connect(s.ClientURL(), natsbus.ConnectOptions{})
		if err != nil {
			b.Fatal(err)
		}
		defer nc.Close()
		buses[i] = natsbus.New(nc, natsbus.Options{})
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := buses[i].Run(ctx, name, newHandler(map[string]error{"c": nil})); err != nil {
			b.Fatal(err)
		}
		cancel()
		defer buses[i].Close()
	}
	data := []byte(`{"message":"hello"}`)
	b.ReportAllocs()
	for b.Loop() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := buses[0].Send(ctx, "b", "c", data); err != nil {
			b.Fatal(err)
		}
		cancel()
	}
}
