package tests

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/starling-io/starling/core"
	"github.com/starling-io/starling/raftlog"
	"github.com/starling-io/starling/stores/filestore"
	"github.com/starling-io/starling/stores/filestore/crashtest"
	"github.com/starling-io/starling/streaming"
)

// crashPower is an in-process server (core + streaming over the file store) on a fixed
// port whose crash is a power cut: the disk freezes (every later write, file change and
// fsync fails), the server stops, and every file is cut back to what its last fsync
// covered with the unsynced rest torn (crashtest.PowerLoss) before the restart.
type crashPower struct {
	dir  string
	port int
	disk *crashtest.Disk
	rng  *rand.Rand
	stop func()
}

func newCrashPower(seed uint64) func(t *testing.T) crashTarget {
	return func(t *testing.T) crashTarget {
		seed++ // each iteration cuts differently
		return &crashPower{dir: t.TempDir(), port: freePort(t), disk: crashtest.New(), rng: rand.New(rand.NewPCG(seed, 0xc0ffee))}
	}
}

func (p *crashPower) start(t *testing.T) string {
	t.Helper()
	cs, err := core.New(core.Options{Host: "127.0.0.1", Port: p.port})
	must(t, err)
	must(t, cs.Start())
	conn, err := cs.Connect("_STARLING-test")
	must(t, err)
	opts := filestore.Options{}
	p.disk.Install(&opts)
	store, err := filestore.Open(p.dir, opts)
	if err != nil {
		t.Fatalf("open after the power cut: %v", err)
	}
	st, err := streaming.New(streaming.InProcess(conn), store, raftlog.Standalone,
		streaming.Options{ClusterID: "test-cluster"})
	must(t, err)
	must(t, st.Start())
	stopped := false
	p.stop = func() {
		if stopped {
			return
		}
		stopped = true
		_ = st.Shutdown()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = cs.Shutdown(ctx)
	}
	t.Cleanup(p.stop)
	return fmt.Sprintf("nats://127.0.0.1:%d", p.port)
}

func (p *crashPower) crash(t *testing.T) {
	t.Helper()
	p.disk.Freeze()
	p.stop()
	must(t, p.disk.PowerLoss(p.dir, p.rng))
	p.disk.Thaw()
}

func (p *crashPower) restart(t *testing.T) string { return p.start(t) }

// lateAcksCount: no; an answer read after the cut began may rest on an fsync it undid.
func (p *crashPower) lateAcksCount() bool { return false }

// The crash harness with power cuts instead of SIGKILL: the same publisher, subscribers
// and checks, on a file store whose files lose their unsynced tails.
func TestPowerLossHarness(t *testing.T) {
	tally := crashIterations(t, "power", newCrashPower(1), 3)
	t.Logf("power loss: %v", tally)
}
