// Command go-bench measures the Go PROXY protocol libraries Debian packages on
// the byte cases bench_parse prints with --cases, so both sides read exactly
// the same input:
//
//	bench_parse --cases > cases.tsv
//	go-bench -cases cases.tsv [-runs 7] [-ms 40]
//
// Output, one line per measurement, tab-separated:
//
//	go <library> <op> <case> <ns/op> <status>
//
// Libraries and what one op is:
//   - pires parse: proxyproto.Read on a bufio.Reader that is Reset onto a
//     bytes.Reader holding the case, so no 4 KiB reader buffer is allocated
//     per header (a server using pires.Conn pays that too; we leave it out to
//     measure the parser alone).
//   - pires parse+tlv: the same, then Header.TLVs(), reading every value byte.
//   - pires build: Header.Format() of the parsed header. pires cannot compute
//     a CRC32C, so for the CRC case it copies the received TLV bytes as is.
//   - armon parse (v1 only): armon/go-proxyproto parses only inside its
//     net.Conn wrapper, so one op is NewConn over an in-memory net.Conn plus
//     RemoteAddr(), which reads and parses the line. That includes the
//     wrapper's own bufio.NewReader (4 KiB) per connection, which is what any
//     user of that API pays.
//
// A figure is the median of -runs measurements; each measurement runs long
// enough to take about -ms milliseconds, and the runs of one case are
// interleaved with the other cases'.
package main

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"flag"
	"fmt"
	"net"
	"os"
	"sort"
	"strings"
	"time"

	armon "github.com/armon/go-proxyproto"
	pires "github.com/pires/go-proxyproto"
)

type benchCase struct {
	name    string
	version int
	data    []byte
}

type bench struct {
	lib, op string
	c       *benchCase
	fn      func() int
	status  string
	iters   int
	samples []float64
}

var sink int

// memConn is the smallest net.Conn that serves a fixed byte string, so
// armon's wrapper can be driven without sockets or goroutines.
type memConn struct {
	r bytes.Reader
}

var memAddr = &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 9}

func (m *memConn) Read(b []byte) (int, error)         { return m.r.Read(b) }
func (m *memConn) Write(b []byte) (int, error)        { return len(b), nil }
func (m *memConn) Close() error                       { return nil }
func (m *memConn) LocalAddr() net.Addr                { return memAddr }
func (m *memConn) RemoteAddr() net.Addr               { return memAddr }
func (m *memConn) SetDeadline(t time.Time) error      { return nil }
func (m *memConn) SetReadDeadline(t time.Time) error  { return nil }
func (m *memConn) SetWriteDeadline(t time.Time) error { return nil }

func readCases(path string) ([]*benchCase, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var cases []*benchCase
	for _, line := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		f := strings.Split(line, "\t")
		if len(f) != 3 || (f[1] != "1" && f[1] != "2") {
			return nil, fmt.Errorf("bad case line %q", line)
		}
		data, err := hex.DecodeString(f[2])
		if err != nil {
			return nil, fmt.Errorf("case %s: %v", f[0], err)
		}
		cases = append(cases, &benchCase{name: f[0], version: int(f[1][0] - '0'), data: data})
	}
	return cases, nil
}

func piresParse(c *benchCase) (func() int, string) {
	br := bytes.NewReader(nil)
	rd := bufio.NewReader(br)
	fn := func() int {
		br.Reset(c.data)
		rd.Reset(br)
		h, err := pires.Read(rd)
		if err != nil {
			return -1
		}
		return int(h.Version)
	}
	br.Reset(c.data)
	rd.Reset(br)
	if _, err := pires.Read(rd); err != nil {
		return fn, "error: " + err.Error()
	}
	if rd.Buffered() != 0 {
		return fn, fmt.Sprintf("error: %d bytes left unread", rd.Buffered())
	}
	return fn, "ok"
}

func piresParseTLV(c *benchCase) (func() int, string) {
	br := bytes.NewReader(nil)
	rd := bufio.NewReader(br)
	fn := func() int {
		br.Reset(c.data)
		rd.Reset(br)
		h, err := pires.Read(rd)
		if err != nil {
			return -1
		}
		tlvs, err := h.TLVs()
		if err != nil {
			return -1
		}
		n := 0
		for _, t := range tlvs {
			n += int(t.Type) + len(t.Value)
			for _, b := range t.Value {
				n += int(b)
			}
		}
		return n
	}
	if fn() < 0 {
		return fn, "error"
	}
	return fn, "ok"
}

func piresBuild(c *benchCase) (func() int, string) {
	h, err := pires.Read(bufio.NewReader(bytes.NewReader(c.data)))
	if err != nil {
		return nil, "error: " + err.Error()
	}
	fn := func() int {
		b, err := h.Format()
		if err != nil {
			return -1
		}
		return len(b)
	}
	b, err := h.Format()
	switch {
	case err != nil:
		return fn, "error: " + err.Error()
	case !bytes.Equal(b, c.data):
		return fn, fmt.Sprintf("differs: %q", b)
	}
	return fn, "ok"
}

func armonParse(c *benchCase) (func() int, string) {
	mc := &memConn{}
	fn := func() int {
		mc.r.Reset(c.data)
		pc := armon.NewConn(mc, 0)
		a, ok := pc.RemoteAddr().(*net.TCPAddr)
		if !ok || a == memAddr {
			return -1
		}
		return a.Port
	}
	if fn() < 0 {
		return fn, "error: header not parsed"
	}
	return fn, "ok"
}

// measure runs b.fn b.iters times and returns ns per op.
func measure(b *bench) float64 {
	acc := 0
	t0 := time.Now()
	for i := 0; i < b.iters; i++ {
		acc += b.fn()
	}
	d := time.Since(t0)
	sink += acc
	return float64(d.Nanoseconds()) / float64(b.iters)
}

// calibrate picks an iteration count that makes one measurement take about
// target, so slow peers are not run for minutes and fast ones are not noise.
func calibrate(b *bench, target time.Duration) {
	n := 1000
	for {
		b.iters = n
		t0 := time.Now()
		measure(b)
		d := time.Since(t0)
		if d >= target/4 || n >= 1<<26 {
			per := float64(d.Nanoseconds()) / float64(n)
			b.iters = int(float64(target.Nanoseconds()) / per)
			if b.iters < 1000 {
				b.iters = 1000
			}
			return
		}
		n *= 4
	}
}

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func main() {
	casesPath := flag.String("cases", "", "case list from bench_parse --cases (required)")
	runs := flag.Int("runs", 7, "measurements per figure; the median is printed")
	ms := flag.Int("ms", 40, "approximate duration of one measurement, in milliseconds")
	flag.Parse()
	if *casesPath == "" || *runs < 1 || *ms < 1 {
		flag.Usage()
		os.Exit(2)
	}
	cases, err := readCases(*casesPath)
	if err != nil {
		fmt.Fprintln(os.Stderr, "go-bench:", err)
		os.Exit(2)
	}

	var benches []*bench
	add := func(lib, op string, c *benchCase, mk func(*benchCase) (func() int, string)) {
		fn, st := mk(c)
		benches = append(benches, &bench{lib: lib, op: op, c: c, fn: fn, status: st})
	}
	for _, c := range cases {
		add("pires", "parse", c, piresParse)
		add("pires", "parse+tlv", c, piresParseTLV)
		add("pires", "build", c, piresBuild)
		if c.version == 1 {
			add("armon", "parse", c, armonParse)
		}
	}

	target := time.Duration(*ms) * time.Millisecond
	for _, b := range benches {
		if b.fn != nil {
			calibrate(b, target)
		}
	}
	for r := 0; r < *runs; r++ {
		for _, b := range benches {
			if b.fn != nil {
				b.samples = append(b.samples, measure(b))
			}
		}
	}
	for _, b := range benches {
		ns := "NaN"
		if len(b.samples) > 0 {
			ns = fmt.Sprintf("%.2f", median(b.samples))
		}
		st := strings.NewReplacer("\t", " ", "\n", " ").Replace(b.status)
		fmt.Printf("go\t%s\t%s\t%s\t%s\t%s\n", b.lib, b.op, b.c.name, ns, st)
	}
	if sink == 42 {
		fmt.Fprintln(os.Stderr, "")
	}
}
