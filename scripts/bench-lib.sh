# bench-lib.sh: what the relay benchmarks share (sourced by bench-relay.sh and bench-fleet.sh):
# a free loopback port, the benchmark app's relay configuration, and a signed registration.
# Expects APP and HMAC_SECRET to be set.

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }

# write_bench_config FILE: one app with three channels and the usual ref rules.
write_bench_config() {
  cat >"$1" <<YAML
apps:
  - id: $APP
    repository: acme/bench-app
    default_channel: production
    channels:
      production: { public: true }
      beta: { allow_device_self_set: true }
      canary: { allow_device_self_set: true }
    rules:
      - { ref: refs/heads/main, channel: beta }
      - { ref: refs/heads/canary, channel: canary }
      - { ref: "refs/tags/v*", channel: production }
YAML
}

# register BASE VERSION REF: a bundle registration signed with the HMAC secret.
register() {
  local base=$1 version=$2 ref=$3 sum body ts sig
  sum=$(printf '%s' "$version" | sha256sum | cut -d' ' -f1)
  body=$(printf '{"app_id":"%s","version":"%s","url":"https://cdn.example.com/bench/%s.zip","checksum":"%s","sha256":"%s","size":123456,"commit":"%s","ref":"%s"}' \
    "$APP" "$version" "$version" "$sum" "$sum" "$(printf '%s' "$version" | sha1sum | cut -d' ' -f1)" "$ref")
  ts=$(date +%s)
  sig=$(printf '%s.%s' "$ts" "$body" | openssl dgst -sha256 -hmac "$HMAC_SECRET" -r | cut -d' ' -f1)
  curl -fsS -o /dev/null -X POST "$base/api/v1/bundles" -H 'Content-Type: application/json' \
    -H "X-Ferry-Timestamp: $ts" -H "X-Ferry-Signature-256: sha256=$sig" --data "$body"
}
