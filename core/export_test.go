package core

// Hooks for the external tests (package core_test) of the in-place state
// update (inplace.go).

// InPlaceUpdates returns how many effective state updates r applied in
// place, and how many of them found earlier ones still unpublished (and so
// changed nodes already copied since the last publication).
func InPlaceUpdates(r *Registry) (n, chained uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.inPlace.n, r.inPlace.chained
}
