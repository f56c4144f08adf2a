package store

import "github.com/ferryhq/ferry/internal/store/storetest"

// storetest.Store repeats Store's method set (storetest cannot import this package, whose
// tests import it); these conversions stop compiling when the two drift apart.
var (
	_ storetest.Store = Store(nil)
	_ Store           = storetest.Store(nil)
)
