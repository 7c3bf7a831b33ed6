package osv

import (
	"io"
)

// prefetcher decompresses in a goroutine of its own, a few chunks ahead of
// the parser, so that on a machine with two cores decompression and parsing
// overlap: for the gzip-compressed AlmaLinux database, decompression is a
// third of the work.
//
// The goroutine owns src until it has exited; Close stops it, waits for it,
// and only then closes src.
type prefetcher struct {
	src    io.ReadCloser
	full   chan chunk    // decompressed chunks, in order
	free   chan []byte   // buffers back from the parser
	done   chan struct{} // closed by Close
	exited chan struct{} // closed by the goroutine on its way out
	buf    []byte        // the buffer of the chunk being read
	cur    []byte        // what is left of it
	err    error         // the source's final error (io.EOF at the end)
}

type chunk struct {
	b   []byte
	err error
}

const (
	prefetchChunks = 4
	prefetchSize   = 64 << 10
)

func newPrefetcher(src io.ReadCloser) *prefetcher {
	p := &prefetcher{
		src:    src,
		full:   make(chan chunk, prefetchChunks),
		free:   make(chan []byte, prefetchChunks),
		done:   make(chan struct{}),
		exited: make(chan struct{}),
	}
	for range prefetchChunks {
		p.free <- make([]byte, prefetchSize)
	}
	go p.run()
	return p
}

func (p *prefetcher) run() {
	defer close(p.exited)
	for {
		var b []byte
		select {
		case b = <-p.free:
		case <-p.done:
			return
		}
		n, err := io.ReadFull(p.src, b)
		if err == io.ErrUnexpectedEOF {
			err = io.EOF // a short last chunk; the source's own errors pass as they are
		}
		select {
		case p.full <- chunk{b[:n], err}:
		case <-p.done:
			return
		}
		if err != nil {
			return
		}
	}
}

func (p *prefetcher) Read(b []byte) (int, error) {
	for len(p.cur) == 0 {
		if p.buf != nil {
			p.free <- p.buf[:cap(p.buf)] // never blocks: free has room for every buffer
			p.buf = nil
		}
		if p.err != nil {
			return 0, p.err
		}
		c := <-p.full
		p.buf, p.cur, p.err = c.b, c.b, c.err
	}
	n := copy(b, p.cur)
	p.cur = p.cur[n:]
	return n, nil
}

func (p *prefetcher) Close() error {
	close(p.done)
	<-p.exited
	return p.src.Close()
}
