// Command holdconns is what an outsider does to an MQTT broker before
// logging in: it opens many TCP connections and either sends nothing, or
// starts a CONNECT packet that claims a large body and never finishes it.
// It reports how many the broker closed and, given -pid, the broker's
// resident set before and while they are held. It measures; it asserts
// nothing (the tests in server/integration and server/internal/broker do).
//
//	holdconns -addr 127.0.0.1:1883 -n 1000 -bytes 200000 -hold 15s -pid 1234
//
// With -sources N the connections come from N loopback addresses in turn,
// as from N hosts (the embedded broker caps those waiting per address).
package main

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"sort"
	"strings"
	"sync"
	"time"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:1883", "broker address")
	n := flag.Int("n", 1000, "connections to open")
	size := flag.Int("bytes", 0, "bytes of a never-finished CONNECT to send on each (0: send nothing)")
	hold := flag.Duration("hold", 15*time.Second, "how long to hold them")
	pid := flag.Int("pid", 0, "the broker's process id, to read its resident set")
	sources := flag.Int("sources", 1, "loopback addresses to connect from, in turn (127.2.x.y); 1: the system's choice")
	flag.Parse()
	if err := run(*addr, *n, *size, *hold, *pid, *sources); err != nil {
		fmt.Fprintln(os.Stderr, "holdconns:", err)
		os.Exit(1)
	}
}

func run(addr string, n, size int, hold time.Duration, pid, sources int) error {
	before, err := rss(pid)
	if err != nil {
		return err
	}
	payload := connect(size)
	start := time.Now()
	var (
		mu      sync.Mutex
		closed  []time.Duration
		refused int
		wg      sync.WaitGroup
	)
	conns := make([]net.Conn, 0, n)
	for i := range n {
		d := net.Dialer{Timeout: 5 * time.Second}
		if sources > 1 {
			j := i % sources
			d.LocalAddr = &net.TCPAddr{IP: net.IPv4(127, 2, byte(j>>8), byte(j))}
		}
		c, err := d.Dial("tcp", addr)
		if err != nil {
			refused++
			continue
		}
		conns = append(conns, c)
		if len(payload) > 0 {
			// A refused CONNECT may close the socket under the write.
			c.SetWriteDeadline(time.Now().Add(5 * time.Second))
			c.Write(payload)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.SetReadDeadline(start.Add(hold))
			_, err := c.Read(make([]byte, 1))
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return // still held when the hold ended
			}
			mu.Lock()
			closed = append(closed, time.Since(start))
			mu.Unlock()
		}()
	}
	sent := time.Since(start)
	time.Sleep(min(2*time.Second, hold/2))
	held, err := rss(pid)
	if err != nil {
		return err
	}
	wg.Wait()
	for _, c := range conns {
		c.Close()
	}
	sort.Slice(closed, func(i, j int) bool { return closed[i] < closed[j] })
	fmt.Printf("opened %d, refused at dial %d, all sent in %v\n", len(conns), refused, sent.Round(time.Millisecond))
	if pid != 0 {
		fmt.Printf("broker resident set: %.1f MB before, %.1f MB while held\n", float64(before)/1024, float64(held)/1024)
	}
	fmt.Printf("closed by the broker within %v: %d", hold, len(closed))
	if len(closed) > 0 {
		fmt.Printf(" (first at %v, median %v, last %v)", closed[0].Round(time.Millisecond),
			closed[len(closed)/2].Round(time.Millisecond), closed[len(closed)-1].Round(time.Millisecond))
	}
	fmt.Printf("; still held at the end: %d\n", len(conns)-len(closed))
	return nil
}

// connect is the start of an MQTT CONNECT whose fixed header claims size
// bytes more than it sends (size bytes of body follow, the rest never
// does). Empty for size 0.
func connect(size int) []byte {
	if size == 0 {
		return nil
	}
	var b bytes.Buffer
	b.WriteByte(0x10)
	for rem := size + 1024; ; {
		d := byte(rem % 128)
		rem /= 128
		if rem > 0 {
			d |= 0x80
		}
		b.WriteByte(d)
		if rem == 0 {
			break
		}
	}
	b.Write([]byte{0, 4, 'M', 'Q', 'T', 'T', 4, 2, 0, 60})
	b.Write(bytes.Repeat([]byte{'x'}, max(size-10, 0)))
	return b.Bytes()
}

// rss is VmRSS of pid in KiB (0 for pid 0).
func rss(pid int) (int, error) {
	if pid == 0 {
		return 0, nil
	}
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), "VmRSS:"); ok {
			var kb int
			_, err := fmt.Sscanf(strings.TrimSpace(v), "%d kB", &kb)
			return kb, err
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}
