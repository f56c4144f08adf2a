// Package notify delivers a relay's outgoing notifications: for every promotion, rollback
// and rollout change, a signed POST to each receiver the app configures
// (channel.App.Notifications), in the generic JSON format or as a Slack message.
//
// A [Notifier] never blocks its caller: [Notifier.Notify] queues one delivery per receiver
// and returns. Each receiver has its own queue and sender, so a slow or dead receiver
// delays only its own deliveries, which reach it in the order they were emitted. A delivery
// is retried with exponential backoff and jitter on network errors, 5xx and 429 (honouring
// Retry-After), never on other statuses, for a bounded number of attempts; a full queue
// drops the new delivery. Every delivery and attempt is kept in a bounded log per app
// ([Notifier.Deliveries]) and counted in ferry_notifications_total{app,result}.
//
// Deliveries are signed like the relay's HMAC registrations: X-Ferry-Signature-256 is
// "sha256=" + hex(HMAC-SHA256(secret, X-Ferry-Timestamp + "." + body)); [Verify] is the
// receiver's side.
//
// Guarantee: best effort, at least once while the relay runs. Each event is sent to each
// receiver until it answers 2xx or the attempts run out; a receiver may get an event twice
// (its answer lost after it processed it), so it deduplicates by X-Ferry-Delivery. The
// queue is in memory: events not yet delivered when the process dies, or when
// [Notifier.Close]'s deadline passes, are lost. The audit log, written in the same store
// transaction as the change, stays the durable record (docs/notifications.md).
package notify
