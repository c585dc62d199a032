package app

import (
	"fmt"
	"io"
	"strings"
)

// section groups flags in --help and in the configuration reference, in
// nats-streaming-server's order: the streaming layer's options first, then the server's.
type section uint8

const (
	secStreaming        section = iota
	secStreamingCluster         // Raft clustering: shown once it has flags
	secStreamingStore
	secStreamingLog
	secServer
	secMonitoring
	secLogging
	secAuth
	secTLS
	secCluster
	secCommon
	numSections
)

func (s section) String() string {
	switch s {
	case secStreaming:
		return "Streaming Server Options"
	case secStreamingCluster:
		return "Streaming Server Clustering Options"
	case secStreamingStore:
		return "Streaming Server File Store Options"
	case secStreamingLog:
		return "Streaming Server Logging Options"
	case secServer:
		return "Server Options"
	case secMonitoring:
		return "Monitoring Options"
	case secLogging:
		return "Logging Options"
	case secAuth:
		return "Authorization Options"
	case secTLS:
		return "TLS Options"
	case secCluster:
		return "Cluster Options"
	case secCommon:
		return "Common Options"
	}
	return fmt.Sprintf("section %d", uint8(s))
}

// bySection returns the options of sec in definition order.
func (f *flags) bySection(sec section) []*option {
	var out []*option
	for _, o := range f.opts {
		if o.sec == sec {
			out = append(out, o)
		}
	}
	return out
}

const (
	helpColumn = 40  // where the descriptions start
	helpWidth  = 100 // where they wrap
)

// writeHelp writes --help: every option once, its aliases on its line, grouped in
// sections; a section without options is left out.
func (f *flags) writeHelp(w io.Writer) {
	var b strings.Builder
	b.WriteString("\nUsage: starling [options]\n")
	b.WriteString("       starling store verify DIR | starling store repair [--quarantine] DIR   (offline store checks: file or bolt)\n")
	b.WriteString("       starling store import --from-nss DIR --dir TARGET [--store file|bolt] [--dry-run]   (from nats-streaming-server)\n")
	for sec := range numSections {
		opts := f.bySection(sec)
		if len(opts) == 0 {
			continue
		}
		fmt.Fprintf(&b, "\n%s:\n", sec)
		if sec == secCommon {
			helpLine(&b, "-h, --help", strings.Fields("show this message"))
		}
		for _, o := range opts {
			left := strings.Join(o.names, ", ")
			if strings.HasPrefix(left, "--") {
				left = "    " + left // under the long names of "-a, --addr"
			}
			if o.arg != "" {
				left += " " + o.arg
			}
			words := strings.Fields(o.usage)
			if o.def != "" {
				words = append(words, "(default: "+o.def+")") // never split
			}
			helpLine(&b, left, words)
		}
	}
	b.WriteString("\nThe configuration file (-c) takes nats-server's format; every flag and key: docs/configuration.md.\n")
	_, _ = io.WriteString(w, b.String())
}

// helpLine writes "    left   words", the words wrapped at helpWidth under helpColumn.
func helpLine(b *strings.Builder, left string, words []string) {
	left = "    " + left
	b.WriteString(left)
	if len(left) < helpColumn-1 {
		b.WriteString(strings.Repeat(" ", helpColumn-len(left)))
	} else {
		b.WriteString("\n" + strings.Repeat(" ", helpColumn))
	}
	col := helpColumn
	for i, word := range words {
		if i > 0 {
			if col+1+len(word) > helpWidth {
				b.WriteString("\n" + strings.Repeat(" ", helpColumn))
				col = helpColumn
			} else {
				b.WriteByte(' ')
				col++
			}
		}
		b.WriteString(word)
		col += len(word)
	}
	b.WriteByte('\n')
}
