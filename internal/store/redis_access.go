package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ferryhq/ferry/internal/access"
	"github.com/ferryhq/ferry/internal/channel"
)

// Access keys (see doc.go). The token hashes share the hash tag {access}, so the scripts
// that touch several of them run in one Cluster slot; sessions and logins are one key
// each, spread over the slots.
const (
	tokensKey       = "ferry:{access}:tokens"        // id -> token JSON without LastUsed and RevokedAt
	tokenUsedKey    = "ferry:{access}:token_used"    // id -> LastUsed as tokenTime
	tokenRevokedKey = "ferry:{access}:token_revoked" // id -> RevokedAt as tokenTime
	tokenWritesKey  = "ferry:{access}:token_writes"  // id -> random token of the PutToken that created it
)

var tokenKeys = []string{tokensKey, tokenUsedKey, tokenRevokedKey, tokenWritesKey}

func sessionKey(idHash string) string { return "ferry:session:" + idHash }
func loginKey(state string) string    { return "ferry:login:" + state }

// tokenTime encodes a time as 20 decimal digits of unix nanoseconds, so the scripts can
// compare two of them as strings (Lua numbers are doubles: nanoseconds lose precision).
func tokenTime(t time.Time) string { return fmt.Sprintf("%020d", max(t.UnixNano(), 0)) }

func parseTokenTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("decode token time %q: %w", s, err)
	}
	return time.Unix(0, n).UTC(), nil
}

// assembleToken decodes a token's JSON and lays its LastUsed and RevokedAt over it.
func assembleToken(raw, used, revoked string) (*access.Token, error) {
	t, err := decodeToken([]byte(raw))
	if err != nil {
		return nil, err
	}
	if t.LastUsed, err = parseTokenTime(used); err != nil {
		return nil, err
	}
	if t.RevokedAt, err = parseTokenTime(revoked); err != nil {
		return nil, err
	}
	return t, nil
}

// putTokenScript creates a token unless its id exists. Finding this call's own random
// token (ARGV[5]) recorded means go-redis retried a script whose reply was lost: that is
// still our creation.
var putTokenScript = redis.NewScript(`
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then
  if redis.call('HGET', KEYS[4], ARGV[1]) == ARGV[5] then return 1 end
  return 0
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
if ARGV[3] ~= '' then redis.call('HSET', KEYS[2], ARGV[1], ARGV[3]) end
if ARGV[4] ~= '' then redis.call('HSET', KEYS[3], ARGV[1], ARGV[4]) end
redis.call('HSET', KEYS[4], ARGV[1], ARGV[5])
return 1
`)

// PutToken stores a new token with one script; an existing id is channel.ErrConflict.
// LastUsed and RevokedAt live in hashes of their own, so TouchToken and RevokeToken change
// them atomically without rewriting (or racing over) the token's JSON.
func (r *Redis) PutToken(ctx context.Context, t *access.Token) error {
	if err := checkToken(t); err != nil {
		return fmt.Errorf("put token: %w", err)
	}
	rec := *t
	rec.LastUsed, rec.RevokedAt = time.Time{}, time.Time{}
	val, err := json.Marshal(&rec)
	if err != nil {
		return fmt.Errorf("put token: %w", err)
	}
	var used, revoked string
	if !t.LastUsed.IsZero() {
		used = tokenTime(t.LastUsed)
	}
	if !t.RevokedAt.IsZero() {
		revoked = tokenTime(t.RevokedAt)
	}
	write := strconv.FormatUint(rand.Uint64(), 36) + strconv.FormatUint(rand.Uint64(), 36)
	op := "put token " + t.ID
	created, err := putTokenScript.Run(ctx, r.rdb, tokenKeys, t.ID, val, used, revoked, write).Int()
	if err != nil {
		return r.fail(ctx, op, err)
	}
	if created != 1 {
		return fmt.Errorf("%s: a token with this id exists: %w", op, channel.ErrConflict)
	}
	return nil
}

// GetToken returns one token (revoked and expired ones too), reading its three hashes in
// one MULTI/EXEC.
func (r *Redis) GetToken(ctx context.Context, id string) (*access.Token, error) {
	if err := checkAccessKey("token id", id); err != nil {
		return nil, fmt.Errorf("get token: %w", err)
	}
	op := "get token " + id
	var cmds [3]*redis.StringCmd
	_, err := r.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		for i, k := range tokenKeys[:3] {
			cmds[i] = p.HGet(ctx, k, id)
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, r.fail(ctx, op, err)
	}
	var vals [3]string
	for i, c := range cmds {
		v, err := c.Result()
		if err != nil && !errors.Is(err, redis.Nil) {
			return nil, r.fail(ctx, op, err)
		}
		vals[i] = v
	}
	if vals[0] == "" {
		return nil, fmt.Errorf("%s: %w", op, channel.ErrNotFound)
	}
	return assembleToken(vals[0], vals[1], vals[2])
}

// ListTokens returns every token, newest first: three HGETALLs in one MULTI/EXEC.
func (r *Redis) ListTokens(ctx context.Context) ([]*access.Token, error) {
	var cmds [3]*redis.MapStringStringCmd
	_, err := r.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		for i, k := range tokenKeys[:3] {
			cmds[i] = p.HGetAll(ctx, k)
		}
		return nil
	})
	if err != nil {
		return nil, r.fail(ctx, "list tokens", err)
	}
	raw, used, revoked := cmds[0].Val(), cmds[1].Val(), cmds[2].Val()
	out := make([]*access.Token, 0, len(raw))
	for id, v := range raw {
		t, err := assembleToken(v, used[id], revoked[id])
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	sortTokens(out)
	return out, nil
}

// revokeTokenScript sets RevokedAt unless it is set (HSETNX, so a retried call changes
// nothing), publishes ARGV[4] on ARGV[3], and returns the token's three values; nil for
// an unknown id.
var revokeTokenScript = redis.NewScript(`
local tok = redis.call('HGET', KEYS[1], ARGV[1])
if not tok then return false end
redis.call('HSETNX', KEYS[3], ARGV[1], ARGV[2])
redis.call('PUBLISH', ARGV[3], ARGV[4])
return {tok, redis.call('HGET', KEYS[2], ARGV[1]) or '', redis.call('HGET', KEYS[3], ARGV[1])}
`)

// RevokeToken sets the token's RevokedAt to at (a zero at means now) unless it is revoked
// already, and publishes [AccessChanged] on [ChangesChannel], in one script.
func (r *Redis) RevokeToken(ctx context.Context, id string, at time.Time) (*access.Token, error) {
	if err := checkAccessKey("token id", id); err != nil {
		return nil, fmt.Errorf("revoke token: %w", err)
	}
	if at.IsZero() {
		at = now()
	}
	op := "revoke token " + id
	res, err := revokeTokenScript.Run(ctx, r.rdb, tokenKeys, id, tokenTime(at), ChangesChannel, AccessChanged).StringSlice()
	if errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("%s: %w", op, channel.ErrNotFound)
	}
	if err != nil {
		return nil, r.fail(ctx, op, err)
	}
	if len(res) != 3 {
		return nil, fmt.Errorf("%s: unexpected script reply %v", op, res)
	}
	return assembleToken(res[0], res[1], res[2])
}

// touchTokenScript moves LastUsed forward (tokenTime strings compare like the times).
var touchTokenScript = redis.NewScript(`
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return 0 end
local cur = redis.call('HGET', KEYS[2], ARGV[1])
if cur and cur >= ARGV[2] then return 0 end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
return 1
`)

// TouchToken moves the token's LastUsed forward to at, in one script; an unknown id is no
// error.
func (r *Redis) TouchToken(ctx context.Context, id string, at time.Time) error {
	if err := checkAccessKey("token id", id); err != nil {
		return fmt.Errorf("touch token: %w", err)
	}
	if at.IsZero() {
		return nil
	}
	if err := touchTokenScript.Run(ctx, r.rdb, tokenKeys, id, tokenTime(at)).Err(); err != nil {
		return r.fail(ctx, "touch token "+id, err)
	}
	return nil
}

// PutSession stores or replaces a session with SET PXAT its ExpiresAt: Redis deletes it
// then.
func (r *Redis) PutSession(ctx context.Context, s *access.Session) error {
	if err := checkSession(s); err != nil {
		return fmt.Errorf("put session: %w", err)
	}
	val, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("put session: %w", err)
	}
	if err := r.setAt(ctx, sessionKey(s.IDHash), val, s.ExpiresAt); err != nil {
		return r.fail(ctx, "put session", err)
	}
	return nil
}

// setAt sets key to val until at (SET PXAT; one in the past deletes the key).
func (r *Redis) setAt(ctx context.Context, key string, val []byte, at time.Time) error {
	return r.rdb.Do(ctx, "SET", key, val, "PXAT", at.UnixMilli()).Err()
}

// GetSession returns the session stored under idHash (GET) unless it expired.
func (r *Redis) GetSession(ctx context.Context, idHash string) (*access.Session, error) {
	if err := checkAccessKey("session id hash", idHash); err != nil {
		return nil, fmt.Errorf("get session: %w", err)
	}
	raw, err := r.rdb.Get(ctx, sessionKey(idHash)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("get session: %w", channel.ErrNotFound)
	}
	if err != nil {
		return nil, r.fail(ctx, "get session", err)
	}
	s, err := decodeSession(raw, now())
	if err != nil {
		return nil, fmt.Errorf("get session: %w", err)
	}
	return s, nil
}

// touchSessionScript replaces the session's JSON with ARGV[2], keeping its expiry, only if
// it is still ARGV[1]: the JSON TouchSession read. A session deleted or changed since is
// left alone (0); TouchSession reads again after a change.
var touchSessionScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'KEEPTTL')
return 1
`)

// maxTouchAttempts bounds TouchSession's compare-and-set rounds against concurrent writers.
const maxTouchAttempts = 10

// TouchSession moves the session's LastSeen forward to at: it reads the session, and a
// script replaces it only if it is unchanged since (compare-and-set, keeping its TTL), so a
// touch never recreates a deleted session nor overwrites a concurrent change. An unknown or
// expired session is no error.
func (r *Redis) TouchSession(ctx context.Context, idHash string, at time.Time) error {
	if err := checkAccessKey("session id hash", idHash); err != nil {
		return fmt.Errorf("touch session: %w", err)
	}
	key := sessionKey(idHash)
	for range maxTouchAttempts {
		raw, err := r.rdb.Get(ctx, key).Bytes()
		if errors.Is(err, redis.Nil) {
			return nil
		}
		if err != nil {
			return r.fail(ctx, "touch session", err)
		}
		s, err := decodeSession(raw, now())
		if errors.Is(err, channel.ErrNotFound) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("touch session: %w", err)
		}
		if !at.After(s.LastSeen) {
			return nil
		}
		s.LastSeen = at
		val, err := json.Marshal(s)
		if err != nil {
			return fmt.Errorf("touch session: %w", err)
		}
		swapped, err := touchSessionScript.Run(ctx, r.rdb, []string{key}, raw, val).Int()
		if err != nil {
			return r.fail(ctx, "touch session", err)
		}
		if swapped == 1 {
			return nil
		}
	}
	return fmt.Errorf("touch session: changed concurrently %d times in a row: %w", maxTouchAttempts, channel.ErrUnavailable)
}

// deleteSessionScript deletes a session and publishes ARGV[2] on ARGV[1].
var deleteSessionScript = redis.NewScript(`
redis.call('DEL', KEYS[1])
redis.call('PUBLISH', ARGV[1], ARGV[2])
return 0
`)

// DeleteSession removes a session and publishes [AccessChanged] on [ChangesChannel], in
// one script; an unknown one is no error.
func (r *Redis) DeleteSession(ctx context.Context, idHash string) error {
	if err := checkAccessKey("session id hash", idHash); err != nil {
		return fmt.Errorf("delete session: %w", err)
	}
	err := deleteSessionScript.Run(ctx, r.rdb, []string{sessionKey(idHash)}, ChangesChannel, AccessChanged).Err()
	if err != nil {
		return r.fail(ctx, "delete session", err)
	}
	return nil
}

// PutLogin stores a login in progress with SET PXAT its ExpiresAt.
func (r *Redis) PutLogin(ctx context.Context, l *access.Login) error {
	if err := checkLogin(l); err != nil {
		return fmt.Errorf("put login: %w", err)
	}
	val, err := json.Marshal(l)
	if err != nil {
		return fmt.Errorf("put login: %w", err)
	}
	if err := r.setAt(ctx, loginKey(l.State), val, l.ExpiresAt); err != nil {
		return r.fail(ctx, "put login", err)
	}
	return nil
}

// TakeLogin returns and deletes the login stored under state with GETDEL, so of concurrent
// callers one gets it. (If go-redis retries a GETDEL whose reply was lost, nobody gets it:
// the person signs in again.)
func (r *Redis) TakeLogin(ctx context.Context, state string) (*access.Login, error) {
	if err := checkAccessKey("login state", state); err != nil {
		return nil, fmt.Errorf("take login: %w", err)
	}
	raw, err := r.rdb.GetDel(ctx, loginKey(state)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("take login: %w", channel.ErrNotFound)
	}
	if err != nil {
		return nil, r.fail(ctx, "take login", err)
	}
	l, err := decodeLogin(raw, now())
	if err != nil {
		return nil, fmt.Errorf("take login: %w", err)
	}
	return l, nil
}
