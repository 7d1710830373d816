package etcdstore_test

import (
	"testing"

	"github.com/kiln-serving/kiln/internal/store"
	"github.com/kiln-serving/kiln/internal/store/storetest"
	"github.com/kiln-serving/kiln/internal/testenv"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return testenv.StartEtcd(t) })
}
