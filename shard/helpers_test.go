package shard_test

import "github.com/unipruning/unipruning/internal/testnats"

// Helpers shared by the tests of this package.
var (
	startNATS     = testnats.Start
	dial          = testnats.Dial
	quietLogger   = testnats.Quiet
	captureLogger = testnats.Capture
	testCtx       = testnats.Ctx
)
