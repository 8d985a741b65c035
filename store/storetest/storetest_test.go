package storetest_test

import (
	"testing"

	"github.com/raftsql/raftsql/consensus"
	"github.com/raftsql/raftsql/store/storetest"
)

// The core's in-memory reference storage passes the same contract as the
// bolt store (store_test.go runs it there).
func TestMemoryStorage(t *testing.T) {
	storetest.RunLogStoreTests(t, func(t *testing.T) storetest.LogStore {
		return consensus.NewMemoryStorage()
	})
}
