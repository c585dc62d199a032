package tests

import (
	"fmt"
	"math/rand"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestCoreDiff: a differential test of the core protocol. Seeded random sessions of raw
// protocol bytes (valid and invalid CONNECT, PUB, HPUB, SUB, UNSUB, PING, junk) over several
// connections are played against nats-server and Starling with the same limits; what each
// connection receives (+OK, -ERR texts, PONG, MSG/HMSG with payloads, the close) must be the
// same. A few fixed seeds run by default; COREDIFF_SEEDS=N runs N random ones,
// COREDIFF_SEED=S replays one.
func TestCoreDiff(t *testing.T) {
	for _, mode := range []struct {
		name, conf string
		auth       bool
		seeds      int64
	}{
		{"no auth", "", false, 150},
		// The auth timer long enough not to fire within a session: its timing is not
		// protocol.
		{"user auth", "authorization { user: u, password: p, timeout: 30 }\n", true, 50},
		{"no headers", "no_header_support: true\n", false, 30},
	} {
		t.Run(mode.name, func(t *testing.T) {
			var seeds []int64
			for s := range mode.seeds {
				seeds = append(seeds, s+1)
			}
			if s := os.Getenv("COREDIFF_SEED"); s != "" {
				n, err := strconv.ParseInt(s, 10, 64)
				must(t, err)
				seeds = []int64{n}
			} else if s := os.Getenv("COREDIFF_SEEDS"); s != "" {
				n, err := strconv.Atoi(s)
				must(t, err)
				base := time.Now().UnixNano()
				seeds = seeds[:0]
				for i := range n {
					seeds = append(seeds, base+int64(i))
				}
			}
			ref, star := startDiffServers(t, mode.conf)
			failed := 0
			for _, seed := range seeds {
				acts, qsids := genDiffSession(seed, mode.auth)
				if !diffMismatch(ref, star, acts, qsids, diffWait) {
					continue
				}
				// Again, to rule out timing; then shrink it for the report.
				if !diffMismatch(ref, star, acts, qsids, diffWaitLong) {
					t.Logf("seed %d: mismatch did not repeat", seed)
					continue
				}
				acts = shrinkDiff(ref, star, acts, qsids)
				t.Errorf("seed %d: servers differ (replay: COREDIFF_SEED=%d), shrunk session:\n%s", seed, seed, diffReport(ref, star, acts, qsids))
				if failed++; failed >= 5 {
					break
				}
			}
		})
	}
}

func diffMismatch(ref, star string, acts []diffAction, qsids map[string]string, wait time.Duration) bool {
	rc := make(chan map[int][]diffTok, 1)
	go func() { rc <- runDiffSession(ref, acts, wait) }()
	s := runDiffSession(star, acts, wait)
	r := <-rc
	cutResets(r, s)
	rp, rq := normDiff(r, qsids)
	sp, sq := normDiff(s, qsids)
	return !equalMaps(rp, sp) || !equalMaps(rq, sq)
}

// cutResets: a server that closes with bytes unread resets the connection, and the reset
// may drop what it sent just before (an -ERR): where either side was reset, both streams
// of that connection are compared up to the step before, and must both end there.
func cutResets(a, b map[int][]diffTok) {
	for c := range a {
		step := -1
		for _, ts := range [][]diffTok{a[c], b[c]} {
			if n := len(ts); n > 0 && ts[n-1].s == "RESET" {
				step = ts[n-1].step
			}
		}
		if step < 0 {
			continue
		}
		for _, m := range []map[int][]diffTok{a, b} {
			ts := m[c]
			i := slices.IndexFunc(ts, func(t diffTok) bool { return t.step >= step })
			if i >= 0 && ts[len(ts)-1].step == step &&
				(ts[len(ts)-1].s == "RESET" || ts[len(ts)-1].s == "CLOSED") {
				m[c] = append(ts[:i:i], diffTok{step, "CLOSED (or reset)"})
			}
		}
	}
}

func equalMaps(a, b map[int][]string) bool {
	for k, v := range a {
		if !slices.Equal(v, b[k]) {
			return false
		}
	}
	for k, v := range b {
		if !slices.Equal(v, a[k]) {
			return false
		}
	}
	return true
}

// shrinkDiff drops steps (greedily, one at a time) while the servers still differ.
func shrinkDiff(ref, star string, acts []diffAction, qsids map[string]string) []diffAction {
	for i := len(acts) - 1; i >= 0; i-- {
		if acts[i].open {
			continue
		}
		try := slices.Delete(slices.Clone(acts), i, i+1)
		if diffMismatch(ref, star, try, qsids, diffWait) && diffMismatch(ref, star, try, qsids, diffWaitLong) {
			acts = try
		}
	}
	return acts
}

func diffReport(ref, star string, acts []diffAction, qsids map[string]string) string {
	var b strings.Builder
	for i, a := range acts {
		if a.open {
			fmt.Fprintf(&b, "  %2d c%d open\n", i, a.conn)
		} else {
			fmt.Fprintf(&b, "  %2d c%d > %q", i, a.conn, a.data)
			if a.cuts != nil {
				fmt.Fprintf(&b, " written in pieces cut at %v", a.cuts)
			}
			b.WriteString("\n")
		}
	}
	r, s := runDiffSession(ref, acts, diffWaitLong), runDiffSession(star, acts, diffWaitLong)
	cutResets(r, s)
	rp, rq := normDiff(r, qsids)
	sp, sq := normDiff(s, qsids)
	for c := range len(acts) {
		if !slices.Equal(rp[c], sp[c]) {
			fmt.Fprintf(&b, "  c%d nats-server:\n    %s\n  c%d starling:\n    %s\n", c,
				strings.Join(rp[c], "\n    "), c, strings.Join(sp[c], "\n    "))
		}
	}
	if !equalMaps(rq, sq) {
		fmt.Fprintf(&b, "  queue deliveries nats-server: %v\n  starling: %v\n", rq, sq)
	}
	return b.String()
}

// coreDiffGen produces one session's steps from a seed; it never looks at the servers' answers,
// so both get exactly the same bytes.
type coreDiffGen struct {
	r     *rand.Rand
	qsids map[string]string // "conn/sid" ever used for a queue subscription
	nr    map[int]bool      // connections that ever asked for no_responders
	auth  bool              // the servers want user u, password p
	// crOK: the next control line may carry a CR inside its arguments (see crLine); only
	// the first op of a step, which starts a read of its own on nats-server. crUsed: the
	// step has such a line, so it is written whole.
	crOK, crUsed bool
	// mayClose: the step has an op the server may close the connection on.
	mayClose bool
}

func (g *coreDiffGen) pick(xs ...string) string { return xs[g.r.Intn(len(xs))] }

var diffSubjects = []string{"foo", "foo", "foo.bar", "foo.bar", "foo.*", "foo.>", ">", "*", "*.bar",
	"foo.bar.baz", "a.>.b", "a*", "f>o", "foo..bar", ".foo", "foo.", "_INBOX.x.*", "_INBOX.x.y",
	"föö.bar", "*.*", "foo.*.baz", ">.foo", "foo.>.", "x", "$NRG.x", "_GR_.x", "$GR.y", "a\x01b", "foo.bar\x7f"}

var diffReplies = []string{"", "", "", "_INBOX.x.y", "_INBOX.x.z", "reply", "foo.bar", "r.*", "_R_.abc", "a..b"}

func (g *coreDiffGen) subject() string { return diffSubjects[g.r.Intn(len(diffSubjects))] }

// verb returns op in one of the spellings the server must accept.
func (g *coreDiffGen) verb(op string) string {
	switch g.r.Intn(8) {
	case 0:
		return strings.ToLower(op)
	case 1:
		return strings.ToLower(op[:1]) + op[1:]
	case 2:
		b := []byte(op)
		for i := range b {
			if g.r.Intn(2) == 0 {
				b[i] = strings.ToLower(string(b[i]))[0]
			}
		}
		return string(b)
	}
	return op
}

// sep returns a field separator: mostly one space, sometimes tabs or several.
func (g *coreDiffGen) sep() string { return g.pick(" ", " ", " ", " ", " ", "  ", "\t", " \t ") }

func (g *coreDiffGen) eol() string {
	return g.pick("\r\n", "\r\n", "\r\n", "\r\n", "\r\n", "\n", " \r\n", "\t\r\n", "  \r\n")
}

// crLine returns verb, separators, args and eol as one control line, sometimes (only where
// crOK allows) with a CR inside the arguments: in a field, in place of or next to a
// separator, or before the end of line. nats-server keeps such a CR in a PUB or HPUB field
// (so "PUB foo\r 1" publishes to "foo\r" and "PUB foo 1\r \r\n" has a bad size) and splits
// SUB and UNSUB arguments at it.
//
// Not generated, accepted differences (nats-server parser accidents, no client sends them):
//   - any CR inside PUB or HPUB arguments: nats-server keeps it in the field and so writes
//     it into the MSG line of every subscriber ("MSG foo\rbar 1 1"), which nats.go splits
//     at the CR (subject foo, reply bar): a publisher could forge the reply subscribers see.
//     Starling splits PUB and HPUB arguments at a CR as nats.go splits MSG's, so a subject
//     never carries one onto the wire;
//   - an inner CR with a bare '\n' ending the line: nats-server's "drop the CR" count stays
//     set from the inner CR and it cuts the line's last byte instead ("PUB foo\r 3\n" loses
//     the size and closes; "SUB foo\r 1\n" too); Starling keeps the byte;
//   - an inner CR in a line that nats-server gets in two reads: it then drops every CR of
//     the line, and the last byte of the first read if a CR came before it in that read;
//     Starling reads the line as if it came in one piece. So the line is kept short (it is
//     in nats-server's first read of the step, at least 64 bytes) and the step is not split.
//
// split says the op is SUB or UNSUB, where a CR inside a field would make two fields out
// of it: that changes what the generator tracks (a queue group, an UNSUB max that does not
// parse), so there the CR goes only at a field's ends.
func (g *coreDiffGen) crLine(verb string, args []string, eol string, split bool) string {
	line := func() string {
		var b strings.Builder
		b.WriteString(verb)
		for _, a := range args {
			b.WriteString(g.sep())
			b.WriteString(a)
		}
		return b.String()
	}
	if !split || !g.crOK || len(args) == 0 || g.r.Intn(6) != 0 {
		g.crOK = false
		return line() + eol
	}
	g.crOK = false
	args = slices.Clone(args)
	j := g.r.Intn(len(args))
	switch g.r.Intn(4) {
	case 0: // inside or at either end of a field
		k := g.r.Intn(len(args[j]) + 1)
		if split && k > 0 {
			k = len(args[j])
		}
		args[j] = args[j][:k] + "\r" + args[j][k:]
	case 1: // a separator of its own, or around one
		args[j] = g.pick("\r", "\r ", " \r", "\r\t") + args[j]
	case 2: // before the end of line
		eol = g.pick("\r\r\n", "\r \r\n", "\r\t\r\n", " \r\r\n")
	default:
		args[j] += "\r"
	}
	if !strings.HasSuffix(eol, "\r\n") {
		eol = "\r\n"
	}
	l := line() + eol
	if len(l) > 60 {
		return strings.ReplaceAll(strings.TrimSuffix(l, "\n"), "\r", "") + "\r\n"
	}
	g.crUsed = true
	return l
}

func (g *coreDiffGen) payload() string {
	switch g.r.Intn(6) {
	case 0:
		return ""
	case 1:
		return "a\r\nb"
	case 2:
		return strings.Repeat("z", diffMaxPayload)
	}
	return g.pick("hi", "hello", "x", "PING")
}

// connect returns a CONNECT; with all set it gives every option the generator varies.
func (g *coreDiffGen) connect(all bool) string {
	if g.r.Intn(12) == 0 {
		return g.pick("CONNECT {\r\n", "CONNECT\r\n", "CONNECT [1]\r\n", `CONNECT {"verbose":"yes"}`+"\r\n",
			"CONNECT "+`{"name":"`+strings.Repeat("n", diffMaxControl)+`"}`+"\r\n")
	}
	var f []string
	for _, k := range []string{"verbose", "pedantic", "headers", "no_responders", "echo"} {
		switch g.r.Intn(3) {
		case 0:
			f = append(f, fmt.Sprintf("%q:true", k))
		case 1:
			f = append(f, fmt.Sprintf("%q:false", k))
		default:
			if all {
				f = append(f, fmt.Sprintf("%q:%v", k, k == "verbose" || k == "pedantic" || k == "echo"))
			}
		}
	}
	p := g.r.Intn(5)
	if all && p == 4 {
		p = 0
	}
	switch p {
	case 0:
		f = append(f, `"protocol":0`)
	case 1, 2:
		f = append(f, `"protocol":1`)
	case 3:
		f = append(f, `"protocol":`+g.pick("2", "-1"))
	}
	if g.auth {
		creds := []string{`"user":"u","pass":"p"`, `"user":"u","pass":"p"`, `"user":"u","pass":"x"`, `"user":"x","pass":"p"`}
		if !all { // a later CONNECT keeps nats-server's earlier user and password unless it names both
			creds = append(creds, `"user":"x"`, `"auth_token":"p"`)
		}
		f = append(f, g.pick(creds...))
	}
	switch g.r.Intn(16) {
	case 0, 1:
		f = append(f, `"lang":"go","version":"1.55.0","name":"x","unknown_field":[1,2]`)
	case 2:
		if !g.auth {
			f = append(f, `"user":"u","pass":"p","auth_token":"t"`) // no auth configured: ignored
		}
	case 3:
		f = append(f, g.pick(`"account":"A"`, `"new_account":true`, `"verbose":1`, `"name":7`))
	}
	pre, eol := g.pick(" ", " ", "", "\t"), g.eol()
	if g.crOK && g.r.Intn(6) == 0 {
		// The JSON may have CRs around it as whitespace: nats-server drops only the last
		// one, the JSON decoder the rest. Not with a bare '\n' (see crLine).
		pre, eol = g.pick("\r", " \r", "\r "), g.pick("\r\n", "\r \r\n", "\r\r\n")
		g.crUsed = true
	}
	g.crOK = false
	return g.verb("CONNECT") + pre + "{" + strings.Join(f, ",") + "}" + eol
}

// sid returns one of a few sids, so that duplicates and unknown ones happen.
func (g *coreDiffGen) sid() string { return g.pick("1", "2", "3", "4", "5", "x", "ü") }

func (g *coreDiffGen) sub(conn int) string {
	subj, sid := g.subject(), g.sid()
	if g.r.Intn(30) == 0 {
		subj = strings.Repeat("s", diffMaxControl-3+g.r.Intn(6))
	}
	args := []string{subj}
	if g.r.Intn(4) == 0 {
		q := g.pick("q", "q", "w", "_sys_", "q.*", ">")
		args = append(args, q)
		g.qsids[fmt.Sprintf("%d/%s", conn, sid)] = q
	}
	args = append(args, sid)
	switch g.r.Intn(20) {
	case 0:
		args = args[:1]
	case 1:
		args = append(args, "extra", "more")
	}
	return g.crLine(g.verb("SUB"), args, g.eol(), true)
}

func (g *coreDiffGen) unsub(conn int) string {
	sid := g.sid()
	args := []string{sid}
	if _, q := g.qsids[fmt.Sprintf("%d/%s", conn, sid)]; !q && !g.nr[conn] && g.r.Intn(3) == 0 {
		// Not on queue members: which one got a message differs between servers, and so
		// would what their limits do afterwards. Not with no_responders: nats-server's
		// 503 status does not count as a delivery toward the limit, Starling's does (as
		// nats.go counts it), so nats-server keeps a request's "UNSUB sid 1" inbox after it.
		args = append(args, g.pick("0", "1", "2", "3"))
	}
	switch g.r.Intn(20) {
	case 0:
		args = nil
	case 1:
		args = append(args, "1", "2")
	}
	// Not a max that does not parse ("-1", "x", 10 digits): nats-server then unsubscribes
	// at once, Starling closes the connection as the spec says (§1: a size or max that does
	// not parse is a protocol error).
	eol := g.eol()
	if args == nil {
		// Not "UNSUB \n": nats-server then takes the next line for the arguments (its
		// parser starts the argument at the '\n'); Starling refuses the empty line.
		eol = "\r\n"
	}
	if args == nil {
		g.crOK = false
		return g.verb("UNSUB") + g.sep() + eol
	}
	return g.crLine(g.verb("UNSUB"), args, eol, true)
}

// size returns the byte count to declare for n bytes: mostly n, sometimes a small error
// (small enough that the barrier's PING ends the confusion) or over max_payload.
func (g *coreDiffGen) size(n int) int {
	switch g.r.Intn(25) {
	case 0:
		return n + []int{-3, -1, 1, 2, 3, 5}[g.r.Intn(6)]
	case 1:
		return diffMaxPayload + 1
	}
	return n
}

func (g *coreDiffGen) pub() string {
	p := g.payload()
	args := []string{g.subject()}
	if r := g.pick(diffReplies...); r != "" {
		args = append(args, r)
	}
	size := strconv.Itoa(g.size(len(p)))
	if g.r.Intn(30) == 0 {
		// Leading zeros, within nats-server's 9 digits (it refuses longer sizes as
		// unparsable, where Starling reads the number: both refuse what is too large,
		// nats-server without an -ERR).
		size = ("00000000" + size)[len(size)-1:]
	}
	args = append(args, size)
	if g.r.Intn(25) == 0 {
		args = append(args[:1], "a", "b", "1")
	}
	if g.r.Intn(25) == 0 {
		args[len(args)-1] = g.pick("x", "-1", "99999999999999999999", "1a")
	}
	return g.crLine(g.verb("PUB"), args, g.eol(), false) + p + "\r\n"
}

func (g *coreDiffGen) hpub() string {
	h := g.pick("NATS/1.0\r\n\r\n", "NATS/1.0\r\nA: b\r\n\r\n", "NATS/1.0 503\r\n\r\n", "X\r\n\r\n", "")
	p := g.payload()
	if len(h)+len(p) > diffMaxPayload {
		p = p[:diffMaxPayload-len(h)]
	}
	args := []string{g.subject()}
	if r := g.pick(diffReplies...); r != "" {
		args = append(args, r)
	}
	hl, tl := len(h), g.size(len(h)+len(p))
	if g.r.Intn(15) == 0 {
		hl = tl + 1 + g.r.Intn(3)
	}
	args = append(args, strconv.Itoa(hl), strconv.Itoa(tl))
	if g.r.Intn(25) == 0 {
		args = args[len(args)-1:]
	}
	return g.crLine(g.verb("HPUB"), args, g.eol(), false) + h + p + "\r\n"
}

// op returns one protocol operation, and whether it must be the last of its step.
func (g *coreDiffGen) op(conn int) (string, bool) {
	switch n := g.r.Intn(100); {
	case n < 22:
		return g.sub(conn), false
	case n < 30:
		return g.unsub(conn), false
	case n < 58:
		return g.pub(), false
	case n < 74:
		return g.hpub(), false
	case n < 80:
		return g.pick("PING\r\n", "ping\r\n", "PiNg\r\n", "PING junk\r\n", "PING\n", "PING\r\r\n",
			"PING \r \r\n", "pInG\t\r\n"), false
	case n < 83:
		return g.pick("PONG\r\n", "pong\r\n", "PONG \r\n", "PoNg\r\r\n"), false
	case n < 86:
		// A later CONNECT says everything: nats-server decodes it over the previous one's
		// options, Starling over the defaults (spec §3.2); no client sends two.
		return g.connect(true), false
	case n < 88:
		// A client's -ERR last: nats-server closes on it but still runs what follows in
		// the same read (a message is delivered); Starling stops there.
		g.mayClose = true
		return g.pick("INFO {}\r\n", "+OK\r\n", "-ERR 'x'\r\n", "MSG foo 1 2\r\nhi\r\n"), true
	case n < 92:
		g.mayClose = true
		return g.pick("FOO bar\r\n", "PUBX foo 1\r\n", "SUBSCRIBE foo 1\r\n", "P\r\n", "\r\n", "\x00\x01\r\n",
			"PINGX\r\n", " PING\r\n", "UNSUB\r\n", "HPUB\r\n", "PUB\r\n",
			"SUB\vfoo 3\r\n", "PUB foo 2\r\nhi\n", "PUB foo 2\r\nhi\r\r\n", "SUB foo 1\r\r\n",
			"PUB\r\nfoo 1\r\n"), false
		// A CR inside arguments: see crLine. Not generated: a form feed in a SUB subject:
		// the spec (7.1) makes it invalid, nats-server's index takes it.
	case n < 96:
		g.mayClose = true
		return g.verb("PUB") + " " + strings.Repeat("p", diffMaxControl-4+g.r.Intn(8)) + " 0\r\n\r\n", false
	default:
		return "SUB " + g.pick("foo", "foo.bar", ">") + " " + g.sid() + "\r\n" + g.pub(), false
	}
}

// cuts returns where to split a step of n bytes into separate writes: a few random points,
// or (short steps) every byte, so that the servers read an op in pieces (see barrier).
func (g *coreDiffGen) cuts(n int) []int {
	if n < 2 {
		return nil
	}
	if n <= 48 && g.r.Intn(3) == 0 {
		cs := make([]int, n-1)
		for i := range cs {
			cs[i] = i + 1
		}
		return cs
	}
	var cs []int
	for range 1 + g.r.Intn(3) {
		cs = append(cs, 1+g.r.Intn(n-1))
	}
	slices.Sort(cs)
	return slices.Compact(cs)
}

func genDiffSession(seed int64, auth bool) ([]diffAction, map[string]string) {
	g := &coreDiffGen{r: rand.New(rand.NewSource(seed)), qsids: map[string]string{}, nr: map[int]bool{}, auth: auth}
	nconn := 2 + g.r.Intn(3)
	var acts []diffAction
	for c := range nconn {
		acts = append(acts, diffAction{conn: c, open: true})
		switch g.r.Intn(10) {
		case 0: // telnet style: no CONNECT at all
		default:
			d := g.connect(false)
			g.nr[c] = strings.Contains(d, `"no_responders":true`)
			acts = append(acts, diffAction{conn: c, data: d})
		}
	}
	for range 20 + g.r.Intn(20) {
		c := g.r.Intn(nconn)
		a := diffAction{conn: c}
		g.crOK, g.crUsed, g.mayClose = true, false, false
		for range 1 + g.r.Intn(3) + g.r.Intn(2)*g.r.Intn(4) {
			d, last := g.op(c)
			g.crOK = false
			a.data += d
			g.nr[c] = g.nr[c] || strings.Contains(d, `"no_responders":true`)
			if last {
				break
			}
		}
		// Not a step the server may close on: the pieces written after the close would
		// reset the connection, and the reset can drop the -ERR sent before it.
		if !g.crUsed && !g.mayClose && g.r.Intn(12) == 0 {
			a.cuts = g.cuts(len(a.data))
		}
		acts = append(acts, a)
	}
	return acts, g.qsids
}
