package core_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/starling-io/starling/core"
)

// PublishRun delivers what one Publish per message would, in order: to a lone socket
// subscriber (the run's frames appended at once), and message by message to anything else
// (a second subscriber, a queue group, an in-process handler). It refuses, delivering
// nothing, a run with a message over max_payload or a bad subject.
func TestConnPublishRun(t *testing.T) {
	s := startCore(t, nil)
	ic, err := s.Connect("internal")
	if err != nil {
		t.Fatal(err)
	}
	defer ic.Close()
	run := func(msgs ...string) ([]byte, []int) {
		var data []byte
		var ends []int
		for _, m := range msgs {
			data = append(data, m...)
			ends = append(ends, len(data))
		}
		return data, ends
	}

	c, _ := dial(t, s)
	c.send("CONNECT {\"verbose\":false}\r\nSUB in.1 7\r\nPING\r\n")
	c.expect("PONG\r\n")
	data, ends := run("one", "", "three")
	if err := ic.PublishRun("in.1", data, ends); err != nil {
		t.Fatal(err)
	}
	ic.Flush()
	c.expect("MSG in.1 7 3\r\none\r\nMSG in.1 7 0\r\n\r\nMSG in.1 7 5\r\nthree\r\n")

	// Two subscribers on one connection, a queue group and an in-process handler: each
	// gets every message in order, as from Publish (message by message, the socket's
	// frames interleaved per message).
	c.send("SUB in.* 8\r\nSUB in.1 q 9\r\nPING\r\n")
	c.expect("PONG\r\n")
	var got []string
	if _, err := ic.Subscribe("in.1", "", func(m core.Msg) { got = append(got, string(m.Data)) }); err != nil {
		t.Fatal(err)
	}
	data, ends = run("a", "bb")
	if err := ic.PublishRun("in.1", data, ends); err != nil {
		t.Fatal(err)
	}
	ic.Flush()
	var lines []string
	for range 12 {
		lines = append(lines, c.line())
	}
	frames := strings.Join(lines, "\n")
	for _, sid := range []string{"7", "8", "9"} {
		i := strings.Index(frames, "MSG in.1 "+sid+" 1\r\n\na\r\n")
		j := strings.Index(frames, "MSG in.1 "+sid+" 2\r\n\nbb\r\n")
		if i < 0 || j < i {
			t.Fatalf("sid %s: not a then bb in\n%s", sid, frames)
		}
	}
	if strings.Join(got, ",") != "a,bb" {
		t.Fatalf("in-process handler got %q", got)
	}

	// An auto-unsubscribe limit: message by message, so the limit holds (the third is not
	// delivered, and the subscription is gone after the second).
	c2, _ := dial(t, s)
	c2.send("CONNECT {\"verbose\":false}\r\nSUB lim.1 4\r\nUNSUB 4 2\r\nPING\r\n")
	c2.expect("PONG\r\n")
	data, ends = run("x", "y", "z")
	if err := ic.PublishRun("lim.1", data, ends); err != nil {
		t.Fatal(err)
	}
	ic.Flush()
	c2.expect("MSG lim.1 4 1\r\nx\r\nMSG lim.1 4 1\r\ny\r\n")
	c2.send("PING\r\n")
	c2.expect("PONG\r\n") // and not the third message before it

	// Refused whole: a message over max_payload, a bad subject.
	data, ends = run("x", strings.Repeat("y", core.DefaultMaxPayload+1))
	if err := ic.PublishRun("in.1", data, ends); !errors.Is(err, core.ErrMaxPayload) {
		t.Fatalf("want ErrMaxPayload, got %v", err)
	}
	if err := ic.PublishRun("in 1", []byte("x"), []int{1}); !errors.Is(err, core.ErrBadSubject) {
		t.Fatalf("want ErrBadSubject, got %v", err)
	}
	ic.Flush()
	c.send("PING\r\n")
	c.expect("PONG\r\n") // nothing was delivered before it
	if len(got) != 2 {
		t.Fatalf("in-process handler got %q after the refusals", got)
	}
}
