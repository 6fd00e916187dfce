// Command goipfix_collect is go-ipfix's collecting process (github.com/vmware/go-ipfix/pkg/collector,
// the collector Antrea's own tests and the Flow Aggregator use) with a counting JSON Lines writer,
// so that benchmarks/bench_peers.py can measure it on the same datagrams and files as
// ipfix-collect.
//
// go-ipfix's example collector (cmd/collector) keeps the last 4096 records in memory for an HTTP
// endpoint and logs a line per message, which cannot be counted. This program does what a user of
// the package does instead: it starts a CollectingProcess (UDP or TCP, LenientKeepUnknown
// decoding), reads every message from its channel and writes one JSON object per data record:
// every element by its go-ipfix registry name (or "en<PEN>:id<ID>" when the registry has none),
// integers as numbers, addresses as text, dateTimeSeconds as epoch seconds, octetArray as hex.
//
// go-ipfix has no receive-buffer setting: its UDP socket gets the kernel default. With -rcvbuf,
// this program finds that socket among its own file descriptors once it is bound and sets
// SO_RCVBUF on it (capped by net.core.rmem_max, as for every peer).
//
// It prints "listening on <transport>://<addr>" to stderr when ready, and on SIGTERM or SIGINT
// flushes the output and prints "records N" before exiting 0.
package main

import (
	"bufio"
	"encoding/hex"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/vmware/go-ipfix/pkg/collector"
	"github.com/vmware/go-ipfix/pkg/entities"
	"github.com/vmware/go-ipfix/pkg/registry"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:4739", "listen address")
	transport := flag.String("transport", "udp", "udp or tcp")
	out := flag.String("out", "", "JSON Lines output file (required)")
	rcvbuf := flag.Int("rcvbuf", 0, "SO_RCVBUF for the UDP socket, bytes (0: the kernel default)")
	flag.Parse()
	if *out == "" {
		fmt.Fprintln(os.Stderr, "goipfix_collect: -out is required")
		os.Exit(2)
	}
	f, err := os.Create(*out)
	if err != nil {
		fmt.Fprintln(os.Stderr, "goipfix_collect:", err)
		os.Exit(1)
	}
	w := bufio.NewWriterSize(f, 1<<20)

	registry.LoadRegistry()
	cp, err := collector.InitCollectingProcess(collector.CollectorInput{
		Address:       *addr,
		Protocol:      *transport,
		MaxBufferSize: 65535,
		DecodingMode:  collector.DecodingModeLenientKeepUnknown,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "goipfix_collect:", err)
		os.Exit(1)
	}
	go cp.Start()
	var bound net.Addr
	for deadline := time.Now().Add(10 * time.Second); bound == nil; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			fmt.Fprintln(os.Stderr, "goipfix_collect: the collecting process did not start")
			os.Exit(1)
		}
		bound = cp.GetAddress()
	}
	if *transport == "udp" && *rcvbuf > 0 {
		if err := setRcvbuf(bound.(*net.UDPAddr).Port, *rcvbuf); err != nil {
			fmt.Fprintln(os.Stderr, "goipfix_collect:", err)
			os.Exit(1)
		}
	}
	fmt.Fprintf(os.Stderr, "listening on %s://%s\n", *transport, bound)

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	msgs := cp.GetMsgChan()
	var records int64
	buf := make([]byte, 0, 8192)
	for {
		select {
		case msg := <-msgs:
			set := msg.GetSet()
			if set.GetSetType() != entities.Data {
				continue
			}
			for _, rec := range set.GetRecords() {
				buf = appendRecord(buf[:0], rec)
				w.Write(buf)
				records++
			}
		case <-sig:
			w.Flush()
			f.Close()
			fmt.Fprintf(os.Stderr, "records %d\n", records)
			os.Exit(0)
		}
	}
}

// setRcvbuf sets SO_RCVBUF on this process's UDP socket bound to port.
func setRcvbuf(port, size int) error {
	fds, _ := filepath.Glob("/proc/self/fd/*")
	for _, p := range fds {
		fd, err := strconv.Atoi(filepath.Base(p))
		if err != nil {
			continue
		}
		if t, err := syscall.GetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_TYPE); err != nil || t != syscall.SOCK_DGRAM {
			continue
		}
		sa, err := syscall.Getsockname(fd)
		if err != nil {
			continue
		}
		if in4, ok := sa.(*syscall.SockaddrInet4); ok && in4.Port == port {
			return syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_RCVBUF, size)
		}
		if in6, ok := sa.(*syscall.SockaddrInet6); ok && in6.Port == port {
			return syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_RCVBUF, size)
		}
	}
	return fmt.Errorf("no UDP socket on port %d among this process's descriptors", port)
}

// appendRecord appends the record as one JSON object and a newline.
func appendRecord(b []byte, rec entities.Record) []byte {
	b = append(b, '{')
	for i, ie := range rec.GetOrderedElementList() {
		if i > 0 {
			b = append(b, ',')
		}
		e := ie.GetInfoElement()
		if e.Name != "" {
			b = appendString(b, e.Name)
		} else {
			b = appendString(b, fmt.Sprintf("en%d:id%d", e.EnterpriseId, e.ElementId))
		}
		b = append(b, ':')
		switch e.DataType {
		case entities.Unsigned8:
			b = strconv.AppendUint(b, uint64(ie.GetUnsigned8Value()), 10)
		case entities.Unsigned16:
			b = strconv.AppendUint(b, uint64(ie.GetUnsigned16Value()), 10)
		case entities.Unsigned32, entities.DateTimeSeconds:
			b = strconv.AppendUint(b, uint64(ie.GetUnsigned32Value()), 10)
		case entities.Unsigned64, entities.DateTimeMilliseconds:
			b = strconv.AppendUint(b, ie.GetUnsigned64Value(), 10)
		case entities.Signed8:
			b = strconv.AppendInt(b, int64(ie.GetSigned8Value()), 10)
		case entities.Signed16:
			b = strconv.AppendInt(b, int64(ie.GetSigned16Value()), 10)
		case entities.Signed32:
			b = strconv.AppendInt(b, int64(ie.GetSigned32Value()), 10)
		case entities.Signed64:
			b = strconv.AppendInt(b, ie.GetSigned64Value(), 10)
		case entities.Float32:
			b = strconv.AppendFloat(b, float64(ie.GetFloat32Value()), 'g', -1, 32)
		case entities.Float64:
			b = strconv.AppendFloat(b, ie.GetFloat64Value(), 'g', -1, 64)
		case entities.Boolean:
			b = strconv.AppendBool(b, ie.GetBooleanValue())
		case entities.Ipv4Address, entities.Ipv6Address:
			b = appendString(b, ie.GetIPAddressValue().String())
		case entities.MacAddress:
			b = appendString(b, ie.GetMacAddressValue().String())
		case entities.String:
			b = appendString(b, ie.GetStringValue())
		default:
			b = appendString(b, hex.EncodeToString(ie.GetOctetArrayValue()))
		}
	}
	return append(b, '}', '\n')
}

// appendString appends s as a JSON string (RFC 8259 escapes; invalid UTF-8 as U+FFFD).
func appendString(b []byte, s string) []byte {
	const hexDigits = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c >= 0x20:
				b = append(b, c)
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, "\ufffd"...)
		} else {
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}
