// Package archive turns a web build directory into a bundle the Capgo updater plugin
// accepts: a deterministic zip, optionally encrypted with Capgo's v2 scheme, with its
// checksum. It also holds the reverse operations the device side needs.
package archive
