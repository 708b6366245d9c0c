package shard

import "github.com/unipruning/unipruning/shardrpc"

// SetPipe replaces the worker's pipe. The server needs it when a shard
// moves to a new epoch with the same spec and layers: its weights and
// search state stay loaded, but the streams to its neighbours are per
// epoch and must be rebuilt. Call it only between operations (the server
// holds its operation lock).
func (wk *Worker) SetPipe(p shardrpc.Pipe) { wk.pipe = p }
