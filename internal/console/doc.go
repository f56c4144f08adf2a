// Package console is Ferry's web console: server-rendered pages (html/template, embedded
// templates and stylesheet, a small script only for copy buttons) mounted by the relay at
// /console/ on the same engine as the control plane, documented for users in
// docs/console.md.
//
// It holds no second implementation of anything: sessions, permissions and every action
// (promote, rollback, rollout, policy) are the control plane's ([control.API]); the console
// reads bundles, stats and series from the store through its own small interfaces. Every
// page checks the signed-in principal's permission on the app, forms a principal may not
// use are not rendered, and the control plane refuses them anyway. Every state-changing
// form carries the session's CSRF token in the field [CSRFField]; every response carries a
// strict Content-Security-Policy (no inline script or style) and refuses framing.
package console
