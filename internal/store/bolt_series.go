package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/ferryhq/ferry/internal/channel"
)

// bSeries is an app's series bucket: one sub-bucket per resolution (seriesRes.name), whose
// keys are <bucket start, 8 bytes BE unix seconds><channel>\x00<version>\x00<metric> and
// values 8-byte BE counts.
var bSeries = []byte("series")

// seriesKey is the Bolt key of a counter.
func seriesKey(start time.Time, field string) []byte {
	return append(binary.BigEndian.AppendUint64(nil, uint64(start.Unix())), field...)
}

// AddSeries adds the points to app's fine and coarse buckets in one fsynced transaction;
// see the [Series] contract. The same transaction deletes the resolution's buckets that
// fell out of retention: keys are ordered by bucket start, so that is a cursor walk from
// the first key that stops at the first one kept (one seek when there is nothing to
// delete).
func (b *Bolt) AddSeries(ctx context.Context, app string, points []channel.SeriesPoint) error {
	t := b.clock()
	adds, err := seriesAdds(app, points, t)
	if err != nil {
		return fmt.Errorf("add series: %w", err)
	}
	if len(adds) == 0 {
		return nil
	}
	return b.update(ctx, "add series of "+app, func(tx *bolt.Tx) error {
		if _, err := appWrite(tx, app, bBundles); err != nil {
			return err
		}
		series, err := appBucket(tx, app).CreateBucketIfNotExists(bSeries)
		if err != nil {
			return err
		}
		for _, r := range seriesResolutions {
			rb, err := series.CreateBucketIfNotExists([]byte(r.name))
			if err != nil {
				return err
			}
			if err := pruneSeries(rb, r.oldest(t)); err != nil {
				return err
			}
		}
		for _, a := range adds {
			rb := series.Bucket([]byte(a.res.name))
			k := seriesKey(a.start, a.field)
			n := uint64(0)
			if v := rb.Get(k); len(v) == 8 {
				n = binary.BigEndian.Uint64(v)
			}
			if err := rb.Put(k, u64(n+uint64(a.n))); err != nil {
				return err
			}
		}
		return nil
	})
}

// pruneSeries deletes the keys of buckets that start before oldest.
func pruneSeries(rb *bolt.Bucket, oldest time.Time) error {
	limit := binary.BigEndian.AppendUint64(nil, uint64(oldest.Unix()))
	c := rb.Cursor()
	for k, _ := c.First(); k != nil && bytes.Compare(k, limit) < 0; k, _ = c.First() {
		if err := c.Delete(); err != nil {
			return err
		}
	}
	return nil
}

// Series returns app's counters selected by q; see the [Series] contract.
func (b *Bolt) Series(ctx context.Context, app string, q channel.SeriesQuery) ([]channel.SeriesPoint, error) {
	r, from, to, err := seriesRange(app, q, b.clock())
	if err != nil {
		return nil, fmt.Errorf("series: %w", err)
	}
	out := []channel.SeriesPoint{}
	if !from.Before(to) {
		return out, nil
	}
	err = b.view(ctx, "series of "+app, func(tx *bolt.Tx) error {
		series := appSub(tx, app, bSeries)
		if series == nil {
			return nil
		}
		rb := series.Bucket([]byte(r.name))
		if rb == nil {
			return nil
		}
		// Two walks over the range: the first counts the matching counters so the points
		// are allocated once (a 30-day read is ~10^5 points, and growing the slice cost
		// more than the reads), the second fills them in.
		fields := newSeriesFields(q)
		first, end := binary.BigEndian.AppendUint64(nil, uint64(from.Unix())), uint64(to.Unix())
		walk := func(each func(start uint64, f seriesFieldOf, v []byte)) error {
			c := rb.Cursor()
			for k, v := c.Seek(first); k != nil; k, v = c.Next() {
				if len(k) < 8 || len(v) != 8 {
					return fmt.Errorf("malformed series key %q", k)
				}
				start := binary.BigEndian.Uint64(k)
				if start >= end {
					break
				}
				f, ok := fields.get(k[8:])
				if !ok {
					return fmt.Errorf("malformed series key %q", k)
				}
				if f.match {
					each(start, f, v)
				}
			}
			return nil
		}
		n := 0
		if err := walk(func(uint64, seriesFieldOf, []byte) { n++ }); err != nil {
			return err
		}
		out = make([]channel.SeriesPoint, 0, n)
		return walk(func(start uint64, f seriesFieldOf, v []byte) {
			out = append(out, channel.SeriesPoint{
				Start: time.Unix(int64(start), 0).UTC(), Channel: f.ch, Version: f.version, Metric: f.metric,
				N: int64(binary.BigEndian.Uint64(v)),
			})
		})
	})
	if err != nil {
		return nil, err
	}
	// Keys are ordered by start and field, which is the contract's order.
	return out, nil
}
