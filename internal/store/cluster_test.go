package store

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ferryhq/ferry/internal/store/storetest"
	"github.com/ferryhq/ferry/internal/testpeers"
)

// startCluster starts three redis-server masters with cluster mode on, assigns each a
// third of the slots, joins them and waits for cluster_state:ok. It returns their
// addresses.
func startCluster(t *testing.T) []string {
	t.Helper()
	ctx := t.Context()
	var addrs []string
	var buses []int
	var nodes []*redis.Client
	for range 3 {
		bus := testpeers.FreePort(t)
		buses = append(buses, bus)
		p := testpeers.Redis(t, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
			"--cluster-port", fmt.Sprint(bus), "--cluster-node-timeout", "2000")
		addrs = append(addrs, p.Addr)
		c := redis.NewClient(&redis.Options{Addr: p.Addr})
		t.Cleanup(func() { c.Close() })
		nodes = append(nodes, c)
	}
	const slots = 16384
	for i, c := range nodes {
		lo, hi := i*slots/3, (i+1)*slots/3-1
		if err := c.ClusterAddSlotsRange(ctx, lo, hi).Err(); err != nil {
			t.Fatalf("add slots %d-%d to %s: %v", lo, hi, addrs[i], err)
		}
	}
	for i, a := range addrs[1:] {
		host, port, _ := net.SplitHostPort(a)
		// The bus port is not the default port+10000, so MEET names it.
		if err := nodes[0].Do(ctx, "CLUSTER", "MEET", host, port, buses[i+1]).Err(); err != nil {
			t.Fatalf("cluster meet %s: %v", a, err)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for _, c := range nodes {
		for {
			info, err := c.ClusterInfo(ctx).Result()
			if err == nil && strings.Contains(info, "cluster_state:ok") && strings.Contains(info, "cluster_known_nodes:3") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("cluster not ready after 30s: %v\n%s", err, info)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return addrs
}

// TestRedisClusterConformance runs the whole suite on a three-master Redis Cluster: every
// script and MULTI of an app touches one slot thanks to the {<app>} hash tag.
func TestRedisClusterConformance(t *testing.T) {
	t.Parallel()
	addrs := startCluster(t)
	url := "redis-cluster://" + strings.Join(addrs, ",")
	open := func(t *testing.T) storetest.Store {
		r, err := OpenRedis(t.Context(), url, RedisOptions{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Close() })
		if _, ok := r.rdb.(*redis.ClusterClient); !ok {
			t.Fatalf("OpenRedis(%s) built a %T, want a cluster client", url, r.rdb)
		}
		return r
	}
	t.Run("Suite", func(t *testing.T) { storetest.Run(t, open) })
	t.Run("Shared", func(t *testing.T) { storetest.RunShared(t, open) })
	t.Run("AppsSpreadOverNodes", func(t *testing.T) {
		// The suite's random app ids must have landed on more than one master, or the
		// cluster run proved nothing about cross-node routing.
		r := open(t).(*Redis)
		cc := r.rdb.(*redis.ClusterClient)
		var mu sync.Mutex
		used := map[string]bool{}
		err := cc.ForEachMaster(t.Context(), func(ctx context.Context, c *redis.Client) error {
			n, err := c.DBSize(ctx).Result()
			if err != nil {
				return err
			}
			if n > 0 {
				mu.Lock()
				used[c.Options().Addr] = true
				mu.Unlock()
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(used) < 2 {
			t.Errorf("keys on %d masters, want at least 2", len(used))
		}
	})
	t.Run("FailedDevicesBounded", func(t *testing.T) {
		// The eviction script deletes sets it derives from the index: same slot, by the tag.
		r, err := OpenRedis(t.Context(), url, RedisOptions{MaxFailedDevices: 20})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Close() })
		storetest.FailedDevicesBounded(t, r, 20)
	})
	t.Run("CheckEviction", func(t *testing.T) {
		r := open(t).(*Redis)
		if err := r.CheckEviction(t.Context()); err != nil {
			t.Fatalf("CheckEviction on a cluster without maxmemory = %v", err)
		}
		// One master with an evicting policy is enough to refuse the cluster. (A limit far
		// above what the tests store, so nothing is evicted meanwhile.)
		node := redis.NewClient(&redis.Options{Addr: addrs[2]})
		t.Cleanup(func() { node.Close() })
		for k, v := range map[string]string{"maxmemory": "1gb", "maxmemory-policy": "allkeys-lru"} {
			if err := node.ConfigSet(t.Context(), k, v).Err(); err != nil {
				t.Fatal(err)
			}
		}
		err := r.CheckEviction(t.Context())
		if !errors.Is(err, ErrEvictionPolicy) || !strings.Contains(err.Error(), addrs[2]) {
			t.Errorf("CheckEviction with %s on allkeys-lru = %v, want ErrEvictionPolicy naming it", addrs[2], err)
		}
	})
}
