package nn

import "sync"

// parallelFor runs f(w, j) for every job j in [0, jobs) on at most workers
// goroutines; w in [0, workers) names the worker, so f can use per-worker
// scratch. Jobs write disjoint outputs, so results do not depend on which
// worker runs which job. One worker (or one job) runs inline.
func parallelFor(jobs, workers int, f func(w, j int)) {
	workers = min(workers, jobs)
	if workers <= 1 {
		for j := 0; j < jobs; j++ {
			f(0, j)
		}
		return
	}
	next := make(chan int, jobs)
	for j := 0; j < jobs; j++ {
		next <- j
	}
	close(next)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range next {
				f(w, j)
			}
		}()
	}
	wg.Wait()
}
