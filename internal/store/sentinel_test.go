package store

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ferryhq/ferry/internal/channel"
	"github.com/ferryhq/ferry/internal/store/storetest"
	"github.com/ferryhq/ferry/internal/testpeers"
)

const sentinelMaster = "ferry-master"

// startSentinel starts a master, one replica and one Sentinel (quorum 1) watching them,
// and returns the Sentinel's address with the two servers.
func startSentinel(t *testing.T) (sentinel string, master, replica *testpeers.Process) {
	t.Helper()
	master = testpeers.Redis(t)
	mhost, mport, _ := net.SplitHostPort(master.Addr)
	replica = testpeers.Redis(t, "--replicaof", mhost, mport)

	bin := testpeers.Path(t, testpeers.RedisServer)
	port := testpeers.FreePort(t)
	dir := t.TempDir()
	conf := filepath.Join(dir, "sentinel.conf")
	cfg := fmt.Sprintf("port %d\nbind 127.0.0.1\ndir %s\n"+
		"sentinel monitor %s %s %s 1\n"+
		"sentinel down-after-milliseconds %s 1000\n"+
		"sentinel failover-timeout %s 10000\n",
		port, dir, sentinelMaster, mhost, mport, sentinelMaster, sentinelMaster)
	if err := os.WriteFile(conf, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, conf, "--sentinel")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
	})
	sentinel = fmt.Sprintf("127.0.0.1:%d", port)
	if err := testpeers.WaitPort(sentinel, 15*time.Second); err != nil {
		t.Fatal(err)
	}
	// Wait until the Sentinel has discovered the replica, or it cannot fail over.
	sc := redis.NewSentinelClient(&redis.Options{Addr: sentinel})
	defer sc.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		reps, err := sc.Replicas(t.Context(), sentinelMaster).Result()
		if err == nil && len(reps) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("sentinel did not discover the replica: %v %v", reps, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return sentinel, master, replica
}

// TestRedisSentinel runs the suite through a Sentinel URL, then kills the master and
// checks the store follows the failover to the promoted replica with its data.
func TestRedisSentinel(t *testing.T) {
	t.Parallel()
	sentinel, master, replica := startSentinel(t)
	url := "redis-sentinel://" + sentinel + "/" + sentinelMaster
	open := func(t *testing.T) storetest.Store { return openRedisT(t, url, RedisOptions{}) }
	t.Run("Suite", func(t *testing.T) { storetest.Run(t, open) })

	t.Run("Failover", func(t *testing.T) {
		ctx := t.Context()
		r := openRedisT(t, url, RedisOptions{})
		app := storetest.NewApp(t)
		want, _, err := r.PutBundle(ctx, storetest.Bundle(app, "1.0.0", "c"), nil)
		if err != nil {
			t.Fatal(err)
		}
		// Replication is asynchronous: wait until the replica has the write.
		for i := 0; ; i++ {
			n, err := r.rdb.Do(ctx, "WAIT", 1, 1000).Int()
			if err == nil && n == 1 {
				break
			}
			if i == 10 {
				t.Fatalf("WAIT 1 = %d, %v", n, err)
			}
		}
		master.Stop()
		unavailable := 0
		deadline := time.Now().Add(60 * time.Second)
		for {
			_, err := r.UpdateState(ctx, app, "production", func(s *channel.State) (*channel.AuditEntry, error) {
				s.Version = "1.0.0"
				return &channel.AuditEntry{Action: "promote", Version: "1.0.0"}, nil
			})
			if err == nil {
				break
			}
			if !errors.Is(err, channel.ErrUnavailable) {
				t.Fatalf("UpdateState during failover: %v, want an error wrapping ErrUnavailable", err)
			}
			unavailable++
			if time.Now().After(deadline) {
				t.Fatalf("store did not recover within 60s of the master's death: %v", err)
			}
			time.Sleep(200 * time.Millisecond)
		}
		t.Logf("failover took %d unavailable attempts", unavailable)
		got, err := r.GetBundle(ctx, app, "1.0.0")
		if err != nil {
			t.Fatal(err)
		}
		if got.Checksum != want.Checksum || !got.CreatedAt.Equal(want.CreatedAt) {
			t.Errorf("bundle after failover = %+v, want %+v", got, want)
		}
		addr, err := redis.NewSentinelClient(&redis.Options{Addr: sentinel}).GetMasterAddrByName(ctx, sentinelMaster).Result()
		if err != nil {
			t.Fatal(err)
		}
		if net.JoinHostPort(addr[0], addr[1]) != replica.Addr {
			t.Errorf("sentinel names master %v, want the promoted replica %s", addr, replica.Addr)
		}
	})
}
