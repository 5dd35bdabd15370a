package serve

import (
	"io"
	"net"
	"net/http"
	"slices"
	"testing"
	"time"
)

// BenchmarkRequest measures what the proxy adds to one HTTP request, with
// a connection per request and with keep-alive, against the same requests
// sent to the child directly. It reports the median and 99th percentile
// latency.
func BenchmarkRequest(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("v1\n"))
	})}
	go srv.Serve(ln)
	defer srv.Close()
	p := startProxy(b)
	p.SetBackend(ln.Addr().String())

	for _, via := range []struct{ name, addr string }{
		{"direct", ln.Addr().String()},
		{"proxy", p.Addr().String()},
	} {
		for _, keepAlive := range []bool{false, true} {
			name := via.name + "/keepalive=off"
			if keepAlive {
				name = via.name + "/keepalive=on"
			}
			b.Run(name, func(b *testing.B) {
				tr := &http.Transport{DisableKeepAlives: !keepAlive}
				defer tr.CloseIdleConnections()
				client := &http.Client{Transport: tr}
				url := "http://" + via.addr + "/"
				var took []time.Duration
				b.ReportAllocs()
				for b.Loop() {
					start := time.Now()
					resp, err := client.Get(url)
					if err != nil {
						b.Fatal(err)
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					took = append(took, time.Since(start))
				}
				reportLatency(b, took)
			})
		}
	}
}

func reportLatency(b *testing.B, took []time.Duration) {
	slices.Sort(took)
	at := func(q float64) float64 {
		return float64(took[int(q*float64(len(took)-1))].Nanoseconds()) / 1e3
	}
	b.ReportMetric(at(0.50), "p50-µs")
	b.ReportMetric(at(0.99), "p99-µs")
}

// BenchmarkThroughput measures bytes from a child to a client, through the
// proxy and directly, on one long connection.
func BenchmarkThroughput(b *testing.B) {
	const chunk = 1 << 20
	data := make([]byte, chunk)
	child := startBackend(b, func(c net.Conn) {
		for {
			if _, err := c.Write(data); err != nil {
				return
			}
		}
	})
	p := startProxy(b)
	p.SetBackend(child.addr())
	for _, via := range []struct{ name, addr string }{
		{"direct", child.addr()},
		{"proxy", p.Addr().String()},
	} {
		b.Run(via.name, func(b *testing.B) {
			c, err := net.Dial("tcp", via.addr)
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			buf := make([]byte, chunk)
			b.SetBytes(chunk)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := io.ReadFull(c, buf); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
